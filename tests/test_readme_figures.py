"""The README's measured figures are the ones in benchmarks/results (rendered, never typed)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_figures_match_the_benchmark_results():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_figures.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_changed_figure_is_caught(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import readme_figures
    finally:
        sys.path.pop(0)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_figures.render(readme) == readme
    tampered = readme.replace("<!-- figures:demo -->\n", "<!-- figures:demo -->\nOn 99 cores, ", 1)
    assert readme_figures.render(tampered) == readme
