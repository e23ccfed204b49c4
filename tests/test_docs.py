"""The docs site: it builds strictly, its runnable code blocks run, and it says what the code does.

A code block in ``docs/`` is runnable when the line before its opening fence is
``<!-- runnable -->`` (an HTML comment: invisible on the site, kept by ``mkdocs build --strict``).
Python blocks run in a fresh interpreter (this one, the venv's), shell blocks in bash with the
interpreter's ``bin/`` first on PATH; both in an empty folder with ``$CODEFOCUS_DATA`` set. Mark
only blocks that are fast and need no real model weights (``tiny`` is built in code).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MARKER = "<!-- runnable -->"
FENCE = re.compile(r"^```(\w+)\s*$")
LANGUAGES = {"python", "bash"}

# the two commands the README opens with, byte for byte (CI calls the second)
MAIN_JOB = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[model]' && "
    "CODEFOCUS_DATA=../shared/data .venv/bin/codefocus demo"
)
TESTS = "bash scripts/test.sh"


@dataclass(frozen=True)
class Block:
    page: str  # relative to docs/
    line: int  # 1-based line of the opening fence
    language: str
    code: str


def runnable_blocks(docs: Path = DOCS) -> list[Block]:
    """Every block marked runnable in the docs pages; a marker that is not directly followed by a
    python or bash fence, or a fence that never closes, is an error."""
    blocks = []
    for page in sorted(docs.rglob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            if line.strip() != MARKER:
                continue
            where = f"{page.relative_to(docs)}:{index + 1}"
            fence = FENCE.match(lines[index + 1]) if index + 1 < len(lines) else None
            if not fence or fence.group(1) not in LANGUAGES:
                raise ValueError(f"{where}: {MARKER} must be followed by a python or bash fence")
            try:
                end = lines.index("```", index + 2)
            except ValueError:
                raise ValueError(f"{where}: the runnable block never closes") from None
            code = "\n".join(lines[index + 2 : end]) + "\n"
            blocks.append(Block(str(page.relative_to(docs)), index + 2, fence.group(1), code))
    return blocks


def _params():
    return [
        pytest.param(
            block,
            id=f"{block.page}:{block.line}",
            # a block that builds a model takes more than a few seconds
            marks=[pytest.mark.slow] if "load_model(" in block.code else [],
        )
        for block in runnable_blocks()
    ]


def test_runnable_markers_are_well_formed(tmp_path):
    blocks = runnable_blocks()
    assert {b.language for b in blocks} == LANGUAGES, "the docs run both python and bash blocks"
    assert len(blocks) >= 5
    (tmp_path / "page.md").write_text(f"{MARKER}\n\n```python\nprint(1)\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must be followed"):
        runnable_blocks(tmp_path)
    (tmp_path / "page.md").write_text(f"{MARKER}\n```bash\ntrue\n", encoding="utf-8")
    with pytest.raises(ValueError, match="never closes"):
        runnable_blocks(tmp_path)


@pytest.mark.parametrize("block", _params())
def test_runnable_block(block, data_dir, tmp_path):
    env = dict(os.environ)
    env["CODEFOCUS_DATA"] = str(data_dir)
    env["CODEFOCUS_CACHE"] = str(tmp_path / "cache")  # nothing written to the user's cache
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    if block.language == "python":
        command = [sys.executable, "-c", block.code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", block.code]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (
        f"docs/{block.page}:{block.line} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    )


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    # mkdocs comes with the docs extra, which scripts/test.sh installs: missing, this fails
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    api = (site / "api" / "attribute" / "index.html").read_text(encoding="utf-8")
    assert "task_or_prompt" in api  # attribute()'s parameters, read from its docstring
    assert "Unreleased" in (site / "changelog" / "index.html").read_text(encoding="utf-8")


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in DOCS.rglob("*.md"):
        assert str(page.relative_to(DOCS)) in config, f"docs/{page.relative_to(DOCS)} not in nav"


def test_the_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    fenced = re.findall(r"^```bash\n(.*?)\n```$", readme, flags=re.DOTALL | re.MULTILINE)
    assert fenced[:2] == [MAIN_JOB, TESTS], "the README opens with the two commands, verbatim"
    assert "<!-- figures:kou2024_live:headline -->" in readme
    for target in re.findall(r"\]\(((?:docs/)?[^)#]+\.(?:md|cff))\)", readme):
        assert (ROOT / target).is_file(), f"the README links to a missing {target}"


def test_the_architecture_page_names_every_package():
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    for package in sorted((ROOT / "src" / "codefocus").iterdir()):
        if (package / "__init__.py").is_file():
            assert f"  {package.name}/" in page, f"docs/architecture.md lacks {package.name}/"


def test_the_api_index_names_every_top_level_export():
    import codefocus

    page = (DOCS / "api" / "index.md").read_text(encoding="utf-8")
    for name, module in codefocus._LAZY.items():
        assert f"`{name}`" in page and module in page, f"docs/api/index.md: {name} ({module})"


def test_one_version_source():
    import importlib.metadata

    import codefocus

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "codefocus.__version__"}
    assert importlib.metadata.version("codefocus") == codefocus.__version__
    citation = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert not re.search(r"^version:", citation, flags=re.MULTILINE), "a second version source"


def test_citation_cites_the_software_and_the_three_papers():
    yaml = pytest.importorskip("yaml")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] == "1.2.0"
    assert citation["type"] == "software" and citation["title"] and citation["authors"]
    titles = {r["title"]: r for r in citation["references"]}
    assert len(titles) == 3
    for reference in titles.values():
        assert reference["authors"] and reference["year"]
    dois = {str(r.get("doi")) for r in titles.values()}
    assert {"10.1145/3660807", "10.1016/j.infsof.2022.107066"} <= dois
