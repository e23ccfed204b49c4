"""The measured figures of the README and the docs are the ones in benchmarks/results (rendered
by scripts/readme_figures.py, never typed)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^<!-- figures:([\w:.-]+) -->$", flags=re.MULTILINE)


@pytest.fixture(scope="module")
def readme_figures():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import readme_figures
    finally:
        sys.path.pop(0)
    return readme_figures


def test_readme_and_docs_figures_match_the_benchmark_results():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "readme_figures.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_blocks_are_where_the_pages_need_them(readme_figures):
    names = {
        page.relative_to(ROOT).as_posix(): set(BLOCK.findall(page.read_text(encoding="utf-8")))
        for page in readme_figures.pages()
    }
    assert {"kou2024_live:headline", "demo:summary"} <= names["README.md"]
    assert {"kou2024_live", "demo"} <= names["docs/benchmarks.md"]
    used = {name for found in names.values() for name in found}
    assert used <= set(readme_figures.RENDERERS)
    results = {results for results, _ in readme_figures.RENDERERS.values()}
    assert results == {p.stem for p in (ROOT / "benchmarks" / "results").glob("*.json")}


def test_a_changed_figure_is_caught_in_every_page(readme_figures):
    for page in readme_figures.pages():
        text = page.read_text(encoding="utf-8")
        for name in set(BLOCK.findall(text)):
            assert readme_figures.render(text) == text
            opening = f"<!-- figures:{name} -->\n"
            tampered = text.replace(opening, opening + "On 99 cores, ", 1)
            assert tampered != text
            assert readme_figures.render(tampered) == text, f"{page.name}: {name}"


def test_check_reads_the_docs_pages_too(readme_figures, tmp_path, monkeypatch, capsys):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    monkeypatch.setattr(readme_figures, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "argv", ["readme_figures.py", "--check"])
    assert readme_figures.main() == 0
    page = tmp_path / "docs" / "benchmarks.md"
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("| method |", "| typed by hand |", 1), encoding="utf-8")
    assert readme_figures.main() == 1
    assert "docs/benchmarks.md" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["readme_figures.py"])
    assert readme_figures.main() == 0  # rewritten from the results
    assert page.read_text(encoding="utf-8") == text


def test_an_unknown_block_is_an_error(readme_figures):
    with pytest.raises(ValueError, match="unknown figures block 'nope'"):
        readme_figures.render("<!-- figures:nope -->\n<!-- /figures:nope -->\n")


def test_the_disagreements_are_said_plainly(readme_figures):
    rows = [
        ("A", [0.30, 0.28, 0.32], 0.40, [0.10, 0.05, 0.15], 0.12),  # F1 below, α within
        ("B", [0.50, 0.45, 0.55], 0.40, [0.30, 0.25, 0.35], 0.10),  # F1 above, α above
        ("C", [0.40, 0.35, 0.45], 0.40, [0.20, 0.15, 0.25], 0.20),  # agrees on both
    ]
    lines = readme_figures.summarise_disagreements(rows)
    assert lines[0].startswith("- F1 at K = 10: below the mean for 1 of the 3 methods, by 10.0")
    assert "above the mean for 1 of the 3 methods" in lines[0]
    assert lines[1].startswith("- α at K = 10: below the mean for none; above the mean for 1")
    assert lines[2] == "- Within the interval on both: C."


def test_the_gradient_floor_bound_is_the_floors_over_the_study_prompts(readme_figures):
    floors = {
        "gradient_reading": {"seconds_per_prompt_humaneval": 3.0, "seconds_per_prompt_mbpp": 1.0},
        "gradient_coding": {"seconds_per_prompt_humaneval": 6.0, "seconds_per_prompt_mbpp": 2.0},
    }
    record = {"methods": {"floors": floors}}
    # (3 + 6) s x 164 HumanEval prompts + (1 + 2) s x 970 MBPP prompts
    assert readme_figures._gradient_floor_minutes(record) == pytest.approx((9 * 164 + 3 * 970) / 60)
    assert readme_figures._gradient_floor_minutes({"methods": None}) is None


def test_the_faithfulness_reading_is_computed_from_the_table():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lab_figures
    finally:
        sys.path.pop(0)

    def row(method, tasks, f1, aopc, low, lowest=None):
        return {
            "method": method,
            "tasks": tasks,
            "f1_at_10": None if f1 is None else {"estimate": f1, "low": f1, "high": f1},
            "aopc": {"estimate": aopc, "low": low, "high": aopc + 0.1},
            "lowest_aopc": None if lowest is None else {"estimate": lowest[0], "low": lowest[1]},
        }

    control = row("random", 30, None, 0.10, 0.05)  # AOPC 0.10 [0.05, 0.20]
    methods = [
        row("a", 30, 0.6, 0.30, 0.25, (0.05, 0.0)),  # faithful: interval above the control's
        row("b", 30, 0.5, 0.20, 0.08, (0.10, 0.0)),  # interval overlaps the control's
        row("c", 30, 0.4, 0.05, 0.01, (0.20, 0.16)),  # upside down, intervals apart
        row("e", 30, 0.35, 0.04, 0.0, (0.06, 0.02)),  # upside down in the estimates only
        row("f", 30, 0.3, 0.03, 0.0),
        row("d", 3, 0.9, 0.01, 0.00, (0.0, 0.0)),  # fewer tasks: not ranked
        control,
    ]
    text = " ".join(lab_figures.faithfulness_reading(methods))
    assert "Over the 5 methods run on all 30 tasks, the Spearman correlation " in text
    assert "between F1@10 and AOPC (point estimates) is 1.00: the methods that agree" in text
    assert "random control's (0.1000 [0.0500, 0.2000]): a." in text
    assert "upside down for the model): c, e; with the two intervals apart: c." in text
    reversed_ = [row(m, 30, f1, 0.4 - f1 / 2, 0.0) for m, f1 in (("a", 0.6), ("b", 0.4))]
    reversed_.append(row("c", 30, 0.2, 0.35, 0.3))
    reversed_ += [row("d", 30, 0.1, 0.38, 0.0), row("e", 30, 0.05, 0.39, 0.0)]
    text = " ".join(lab_figures.faithfulness_reading([*reversed_, control]))
    assert "is -1.00: the methods that agree more with the programmers tend to pick words" in text
    assert "control's (0.1000 [0.0500, 0.2000]): c." in text
    assert "model): none; with the two intervals apart: none." in text
    methods = [  # F1 ranks a > b > c > e > f, AOPC ranks b > e > f > a > c: rho = -0.1
        row("a", 30, 0.6, 0.2, 0.1),
        row("b", 30, 0.5, 0.4, 0.3),
        row("c", 30, 0.4, 0.1, 0.0),
        row("e", 30, 0.3, 0.3, 0.2),
        row("f", 30, 0.2, 0.25, 0.2),
        control,
    ]
    text = " ".join(lab_figures.faithfulness_reading(methods))
    assert "is -0.10: agreeing with the programmers says little about faithfulness" in text
    assert lab_figures.faithfulness_reading(methods[:2]) == []  # no control
    few = " ".join(lab_figures.faithfulness_reading([*methods[:4], control]))
    assert "Spearman" not in few and few.startswith(" AOPC interval wholly above")


def test_hierarchical_is_read_per_benchmark():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lab_figures
    finally:
        sys.path.pop(0)

    def row(task, full, fast, recall):
        return {
            "task": task, "full_seconds": full, "hierarchical_seconds": fast, "top_recall": recall
        }  # fmt: skip

    tasks = [row("HumanEval/0", 30.0, 10.0, 0.5), row("HumanEval/1", 10.0, 10.0, 1.0)]
    tasks += [row("Mbpp/2", 5.0, 5.0, 1.0)]
    text = lab_figures.hierarchical_reading({"tasks": tasks, "k": 10})
    assert "on the 2 HumanEval tasks, 20 s against 40 s (speed-up 2.00×) and 75% of" in text
    assert "1 MBPP tasks (one line each: there it is full leave-one-out), 5 s against 5 s" in text
    only = lab_figures.hierarchical_reading({"tasks": tasks[:1], "k": 10})
    assert "MBPP" not in only and "speed-up 3.00×" in only
