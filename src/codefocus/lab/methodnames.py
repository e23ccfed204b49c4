"""A method-name prediction dataset built from the sources of this project's pinned packages.

Like the memorization study's Java-Top10: the most frequent method names (methods defined in a
class body; dunder and test names excluded), up to ``per_name`` bodies each, with the method's
name replaced by ``_`` wherever it occurs in its own source. Exact duplicate bodies are kept once.

Which sources: only the Python files of the packages that codefocus pins exactly (``name==version``
among its core requirements in pyproject.toml, read back from the installed metadata), each
package's files as its own install record lists them. Packages, files, methods and names are taken
in sorted order and sampled with a fixed seed, so two machines with the same install (and the same
Python, whose parser decides what parses) build the same dataset. The manifest in the dataset
names every package with its installed version, the Python version, the counts, and a SHA-256 of
the samples that tells at once whether two builds are the same.
"""

from __future__ import annotations

import ast
import importlib.metadata
import io
import platform
import random
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from codefocus.errors import DataError, InvalidArgumentError
from codefocus.lab.datasets import LabDataset, Sample, split

PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*$")


def pinned_packages() -> list[tuple[str, str]]:
    """(name, pinned version) of codefocus's exactly pinned core requirements, sorted by name.

    Read from the installed codefocus metadata (built from pyproject.toml); requirements that
    belong to an extra (``; extra == ...``) or allow a range are not pins of the core install.
    """
    try:
        requirements = importlib.metadata.requires("codefocus") or []
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            "codefocus is not installed as a package, so its pins cannot be read: "
            "pip install -e . in the repository"
        ) from None
    pins = {}
    for requirement in requirements:
        match = PIN.match(requirement)
        if match:
            pins[_normal(match.group(1))] = match.group(2)
    return sorted(pins.items())


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def package_sources(
    packages: Iterable[str] | None = None,
) -> list[tuple[dict, list[tuple[str, Path]]]]:
    """For each pinned package (or the named subset): its manifest entry and its ``.py`` files as
    (``name==version:relative/path``, absolute path), sorted by relative path. A pinned package
    that is missing or installed at another version is a ``DataError``: the dataset would not be
    the pinned one."""
    pins = dict(pinned_packages())
    wanted = sorted(pins) if packages is None else sorted({_normal(p) for p in packages})
    unknown = [name for name in wanted if name not in pins]
    if unknown:
        raise InvalidArgumentError(
            f"not a pinned package of codefocus: {', '.join(unknown)}; "
            f"pinned: {', '.join(sorted(pins))}"
        )
    found = []
    for name in wanted:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise DataError(
                f"{name}=={pins[name]} is pinned but not installed: pip install -e ."
            ) from None
        version = distribution.version
        if version.split("+")[0] != pins[name]:  # a local label (+cpu, +cu124) is the same release
            raise DataError(
                f"{name} is {version} here but codefocus pins {pins[name]}: pip install -e ."
            )
        files = sorted(
            str(f)
            for f in distribution.files or []
            if str(f).endswith(".py") and not str(f).startswith("..")
        )
        entry = {"name": name, "version": version, "pinned": pins[name], "python_files": len(files)}
        located = [
            (f"{name}=={version}:{f}", Path(str(distribution.locate_file(f)))) for f in files
        ]
        found.append((entry, located))
    return found


def _wanted(name: str) -> bool:
    return not (name.startswith("__") and name.endswith("__")) and not name.lower().startswith(
        ("test", "_test")
    )


def _segment(lines: list[str], node: ast.stmt) -> str | None:
    """The node's source, like ``ast.get_source_segment`` but without re-splitting the whole
    file for every node (that made large site-packages quadratic)."""
    if node.end_lineno is None or node.end_col_offset is None:
        return None
    first, last = node.lineno - 1, node.end_lineno - 1
    chunk = [line.encode("utf-8") for line in lines[first : last + 1]]
    if not chunk:
        return None
    if first == last:
        return chunk[0][node.col_offset : node.end_col_offset].decode("utf-8")
    chunk[0] = chunk[0][node.col_offset :]
    chunk[-1] = chunk[-1][: node.end_col_offset]
    return b"".join(chunk).decode("utf-8")


def _methods_of(text: str, source: str) -> list[tuple[str, str, str]]:
    tree = ast.parse(text)
    lines = io.StringIO(text, newline="").readlines()  # as ast counts lines
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _wanted(item.name):
                body = _segment(lines, item)
                if body:
                    hidden = re.sub(rf"\b{re.escape(item.name)}\b", "_", body)
                    found.append((item.name, hidden, source))
    return found


def collect_methods(
    files: Iterable[tuple[str, Path]], report: Counter
) -> list[tuple[str, str, str]]:
    """(name, source with the name removed, source label) for every method in ``files``, given as
    (label, path) in the order to read them; files under ``test``/``tests`` folders are skipped."""
    found = []
    for label, path in files:
        if any(part in ("test", "tests") for part in label.split(":")[-1].split("/")[:-1]):
            continue
        try:
            found += _methods_of(path.read_text(encoding="utf-8"), label)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            report["files skipped (unreadable or not parsable)"] += 1
            continue
        report["files read"] += 1
    return found


def _tree_files(roots: list[Path]) -> list[tuple[str, Path]]:
    """Every ``.py`` file under ``roots`` as (``root-index:relative/path``, path), sorted."""
    return [
        (f"{index}:{path.relative_to(root).as_posix()}", path)
        for index, root in enumerate(roots)
        for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix())
    ]


def build_methodnames(
    roots: list[Path] | None = None,
    top: int = 10,
    per_name: int = 1000,
    seed: int = 0,
    packages: Iterable[str] | None = None,
) -> LabDataset:
    """The dataset from the pinned packages (all, or the named ones), or from source ``roots``
    (directories, for tests and experiments; the manifest then lists the roots)."""
    report: Counter = Counter()
    if roots is not None:
        manifest: dict = {"source": "directories", "roots": [str(r) for r in roots]}
        files = _tree_files(roots)
    else:
        sources = package_sources(packages)
        manifest = {"source": "pinned packages", "packages": [entry for entry, _ in sources]}
        files = [file for _, package_files in sources for file in package_files]
    methods = collect_methods(files, report)
    counts = Counter(name for name, _, _ in methods)
    names = [name for name, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0]))[:top]]
    rng = random.Random(seed)
    samples: list[Sample] = []
    for label, name in enumerate(names):
        seen, bodies = set(), []
        for method_name, body, source in methods:
            if method_name == name and body not in seen:
                seen.add(body)
                bodies.append(Sample(body, label, source))
        report[f"duplicates dropped: {name}"] = counts[name] - len(bodies)
        rng.shuffle(bodies)
        samples += bodies[:per_name]
    report["methods"] = len(methods)
    report["kept"] = len(samples)
    train, valid, test = split(samples, seed)
    dataset = LabDataset(
        "methodnames", "python", names, train, valid, test, dict(sorted(report.items()))
    )
    manifest.update(
        python=platform.python_version(),
        settings={"names": top, "per_name": per_name, "seed": seed},
        size={"samples": len(samples), "train": len(train), "valid": len(valid), "test": len(test)},
        sha256=dataset.sha256(),
    )
    dataset.manifest = manifest
    return dataset
