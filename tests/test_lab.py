"""The code-classification lab: parsing, deletion, AutoFocus analysis, datasets, a tiny run."""

import io
import tarfile

import numpy as np
import pytest

from codefocus.lab.autofocus import (
    _correlations,
    analyse,
    deletion_effects,
    grey_levels,
    minimal_program,
    summary,
)
from codefocus.lab.classifier import CodeClassifier, Vocabulary
from codefocus.lab.datasets import load_algorithms, split
from codefocus.lab.parsing import delete, parse
from codefocus.reports.autofocus import analysis_html

JAVA = """class Sort {
  void sort(int[] a) {
    int n = a.length;
    for (int i = 0; i < n; i++) {
      if (a[i] > a[i + 1]) {
        swap(a, i);
      }
    }
    System.out.println(n);
  }
}
"""


def test_java_statements_in_post_order_and_deletion_keeps_syntax():
    parsed = parse(JAVA, "java")
    kinds = [s.kind for s in parsed.statements]
    assert kinds == [
        "local_variable_declaration",
        "expression_statement",
        "if_statement",
        "for_statement",
        "expression_statement",
    ]
    # children come before their parents
    assert parsed.text(parsed.statements[1]) == "swap(a, i);"
    assert parsed.statements[2].contains(parsed.statements[1].start, parsed.statements[1].end)
    without_loop = delete(parsed, {3})
    assert "swap" not in without_loop and not parse(without_loop, "java").has_error
    without_call = delete(parsed, {1})
    assert not parse(without_call, "java").has_error


def test_python_statements_and_deletion():
    code = "def f(x):\n    y = 1\n    if x:\n        y += x\n    return y\n"
    parsed = parse(code, "python")
    assert [parsed.text(s) for s in parsed.statements] == [
        "y = 1",
        "y += x",
        "if x:\n        y += x",
        "return y",
    ]
    smaller = delete(parsed, {2})
    assert not parse(smaller, "python").has_error
    namespace = {}
    exec(smaller, namespace)  # still a runnable program
    assert namespace["f"](5) == 1


def rule_classifier(codes):
    """Class 1 ('sorting') when the code swaps, more sure the more it swaps and loops."""
    rows = []
    for code in codes:
        evidence = 2.0 * code.count("swap") + 0.5 * code.count("for") + 0.1 * code.count("println")
        p = 1 / (1 + np.exp(-(evidence - 1.0)))
        rows.append([1 - p, p])
    return np.array(rows)


def test_deletion_effects_and_backtracking_minimal_program():
    parsed = parse(JAVA, "java")
    confidence, delta = deletion_effects(parsed, 1, rule_classifier)
    assert confidence == pytest.approx(rule_classifier([JAVA])[0, 1])
    # deleting the swap, its if, or the loop costs confidence; the declaration costs nothing
    assert delta[0] == pytest.approx(0.0)
    assert delta[1] < 0 and delta[2] < 0 and delta[3] < delta[1]
    smallest, kept = minimal_program(parsed, 1, rule_classifier)
    # post-order: the declaration goes; deleting the swap would flip the class: backtracked;
    # then its enclosing if and for cannot go either (they hold the swap); the println goes
    assert kept == [1, 2, 3]
    assert "swap" in smallest and "println" not in smallest and "int n" not in smallest
    assert rule_classifier([smallest])[0].argmax() == 1


class RuleModel:
    """``rule_classifier`` behind the transformer classifier's interface (uniform attention)."""

    language, max_len = "java", 400

    def __init__(self) -> None:
        self.vocabulary = Vocabulary([])

    def predict(self, codes):
        attention = [
            np.full(n, 1 / n)
            for n in (len(self.vocabulary.encode(c, "java", 400).ids) or 1 for c in codes)
        ]
        return rule_classifier(codes), attention


def test_minimal_program_statistics():
    model = RuleModel()
    right = analyse(JAVA, 1, model)  # predicted 1: the search keeps class 1
    assert right.predicted == 1 and right.kept_statements == [1, 2, 3]
    assert right.kept_share == pytest.approx(3 / 5) and right.minimal_predicted == 1
    # the search keeps the true class: on a misclassified program its minimal program is
    # classified as the label, no longer as the whole program was
    wrong = analyse(JAVA, 0, model)
    assert wrong.predicted == 1 and wrong.kept_statements == [0]
    assert wrong.minimal_predicted == 0 and wrong.kept_share == pytest.approx(1 / 5)
    skipped = analyse(JAVA, 1, model, minimal=False)
    assert skipped.minimal_predicted is None and skipped.kept_share is None
    assert skipped.minimal_program == "" and skipped.delta == right.delta
    figures = summary([right, wrong, skipped])
    assert figures["minimal_programs"] == 2
    assert figures["minimal_kept_share_mean"] == pytest.approx(0.4)
    assert figures["minimal_keeps_prediction"] == pytest.approx(0.5)
    assert figures["minimal_true_class"] == pytest.approx(1.0)
    again = type(right).from_dict(right.to_dict())
    assert again.minimal_predicted == 1 and again.kept_share == right.kept_share
    assert summary([skipped])["minimal_keeps_prediction"] is None


def test_grey_levels_per_program_and_absolute():
    from codefocus.errors import InvalidArgumentError

    scores = [0.05, -0.2, 0.1, 0.0]
    # per program (the default): |score| over the largest |score|, the darkest is black
    assert np.allclose(grey_levels(scores), [0.25, 1.0, 0.5, 0.0])
    # absolute: |score| on the fixed 0-1 scale, clipped at 1 (a gate's sum can pass 1)
    assert np.allclose(grey_levels(scores, "absolute"), [0.05, 0.2, 0.1, 0.0])
    assert np.allclose(grey_levels([0.5, 3.0], "absolute"), [0.5, 1.0])
    # the same scores halved: per program the picture is the same, absolute it is paler
    half = [s / 2 for s in scores]
    assert np.allclose(grey_levels(half), grey_levels(scores))
    assert np.allclose(grey_levels(half, "absolute"), grey_levels(scores, "absolute") / 2)
    assert np.allclose(grey_levels([0.0, 0.0]), [0.0, 0.0]) and len(grey_levels([])) == 0
    with pytest.raises(InvalidArgumentError, match="program, absolute"):
        grey_levels(scores, "log")


def test_the_page_draws_program_or_absolute_grey_levels():
    import re

    analysis = analyse(JAVA, 1, RuleModel())  # uniform token attention: a(s) well below 1
    shades = {
        scale: {
            int(v)
            for v in re.findall(r"rgb\((\d+),", analysis_html(analysis, "java", ["x", "y"], scale))
        }
        for scale in ("program", "absolute")
    }
    # per program the statement with the most attention is drawn at full strength (255 - 200)
    assert min(shades["program"]) == 55
    # absolute: a(s) on the 0-1 scale, so these small shares stay pale
    expected = {int(255 - 200 * v) for v in grey_levels(analysis.attention, "absolute")}
    assert min(shades["absolute"]) == min(expected) > 55


def test_correlations():
    attention = np.array([0.1, 0.5, 0.2, 0.9])
    pearson, spearman = _correlations(attention, -attention * 2)
    assert pearson == pytest.approx(1.0) and spearman == pytest.approx(1.0)
    assert _correlations(np.array([1.0, 1.0, 1.0]), np.array([0.1, 0.2, 0.3])) == (None, None)


def _tar(tmp_path, files):
    path = tmp_path / "algorithm-classification" / "bi-tbcnn-java.tar.gz"
    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return tmp_path


def test_dataset_drops_broken_and_duplicate_files(tmp_path):
    files = {}
    for cls in ("bfs", "stack"):
        for i in range(10):
            files[f"code/{cls}/java/{i}.java"] = (
                f"class C{i} {{ int {cls}{i}() {{ return {i} + {i * i}; }} }}"
            )
        files[f"code/{cls}/java/dup.java"] = files[f"code/{cls}/java/0.java"]  # exact copy
        files[f"code/{cls}/java/near.java"] = (
            "class Zz { int other() { return 7 + 8; } }" if cls == "bfs" else "class B {"
        )
    dataset = load_algorithms(_tar(tmp_path, files))
    report = dataset.report
    assert report["dropped: exact duplicate"] == 1
    assert report["dropped: does not parse"] == 1
    # near duplicates: same code up to names and literals (bfs/near.java is a renamed copy)
    assert report["dropped: near duplicate (same code up to names and literals)"] >= 1
    assert report["kept"] == len(dataset.train) + len(dataset.valid) + len(dataset.test)


def test_split_is_stratified_and_seeded():
    from codefocus.lab.datasets import Sample

    samples = [Sample(str(i), i % 2, str(i)) for i in range(100)]
    a = split(samples, 3)
    b = split(list(samples), 3)
    assert [[s.source for s in part] for part in a] == [[s.source for s in part] for part in b]
    assert [len(part) for part in a] == [70, 10, 20]
    assert sum(s.label for s in a[2]) == 10


@pytest.mark.slow
def test_tiny_end_to_end_training_and_analysis(data_dir):
    dataset = load_algorithms(data_dir, per_class=8, seed=0)
    model = CodeClassifier(
        Vocabulary.build(dataset.train, "java"), dataset.classes, "java", dim=32, layers=1
    )
    result = model.fit(dataset, epochs=2)
    assert len(result["history"]) == 2
    analyses = [analyse(s.code, s.label, model) for s in dataset.test[:3]]
    for a in analyses:
        assert len(a.attention) == len(a.delta) == len(a.statements)
        assert a.pearson is None or -1 <= a.pearson <= 1
    assert summary(analyses)["programs"] == 3
    page = analysis_html(analyses[0], "java", dataset.classes)
    assert "<script" not in page.lower() and "rgb(" in page


def test_methodnames_dataset_from_a_source_tree(tmp_path):
    from codefocus.lab.methodnames import build_methodnames

    package = tmp_path / "pkg"
    (package / "tests").mkdir(parents=True)
    body = (
        "class A{i}:\n    def get(self, k):\n        return self.get(k - 1) if k else {i}\n"
        "    def __init__(self):\n        pass\n    def test_it(self):\n        pass\n"
        "    def put(self, v):\n        self.v = v + {i}\n"
    )
    for i in range(6):
        (package / f"m{i}.py").write_text(body.format(i=i))
    (package / "tests" / "t.py").write_text("class T:\n    def skipped(self):\n        pass\n")
    (package / "broken.py").write_text("class (:\n")
    dataset = build_methodnames([tmp_path], top=2, per_name=5)
    assert dataset.classes == ["get", "put"]
    assert dataset.report["files skipped (unreadable or not parsable)"] == 1
    everything = dataset.train + dataset.valid + dataset.test
    assert len(everything) == 10
    assert all("get" not in s.code and "put" not in s.code for s in everything)
    assert all(s.code.startswith("def _(") for s in everything)
    again = build_methodnames([tmp_path], top=2, per_name=5)
    assert [s.code for s in again.train] == [s.code for s in dataset.train]


def test_lab_imports_no_report_and_has_no_cycle():
    """Every import of the lab, lazy ones included: the compute layer never reaches into
    ``reports`` (the report layer reads its results), and no two lab modules import each other
    round (``datasets`` <-> ``methodnames`` was such a knot)."""
    import ast
    from pathlib import Path

    import codefocus.lab

    folder = Path(codefocus.lab.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        assert not {n for n in names if n.startswith("codefocus.reports")}, path.name
        graph[f"codefocus.lab.{path.stem}"] = {n for n in names if n.startswith("codefocus.lab.")}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for dep in graph.get(start, ()):
            if dep == target or (
                dep not in seen and not seen.add(dep) and reaches(dep, target, seen)
            ):
                return True
        return False

    assert [m for m in graph if reaches(m, m, set())] == []
    assert "codefocus.lab.methodnames" not in graph["codefocus.lab.datasets"]
