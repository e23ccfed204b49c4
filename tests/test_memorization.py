"""Memorization study: noise injection, Gini, F1 measures, renaming, and a tiny end-to-end run."""

import csv
import importlib.util
import inspect
import json
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codefocus.errors import InvalidArgumentError, UnknownNameError
from codefocus.lab.datasets import LabDataset, Sample, load_algorithms
from codefocus.lab.memorization import MemorizationConfig, MemorizationResult, run_memorization
from codefocus.lab.noise import input_noise, label_noise
from codefocus.lab.parsing import parse
from codefocus.lab.renaming import (
    java_variables,
    python_variables,
    rename_java,
    rename_python,
    single_renamings,
)
from codefocus.metrics.classification import gini, macro_f1, subtoken_f1, subtokens
from codefocus.reports.memorization import reading, write_csvs

# ---------------------------------------------------------------- noise


@pytest.mark.parametrize("share", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_label_noise_changes_exactly_that_share_and_never_keeps_the_label(share):
    rng = np.random.default_rng(1)
    labels = [int(x) for x in rng.integers(0, 10, size=203)]
    noised = label_noise(labels, share, 10, seed=7)
    changed = [i for i, (a, b) in enumerate(zip(labels, noised, strict=True)) if a != b]
    assert len(changed) == round(share * len(labels))
    assert all(0 <= label < 10 for label in noised)
    assert noised == label_noise(labels, share, 10, seed=7)  # seeded
    if 0 < share < 1:
        assert noised != label_noise(labels, share, 10, seed=8)


def test_label_noise_levels_are_nested_and_the_wrong_label_is_stable():
    labels = [i % 4 for i in range(100)]
    quarter, half = label_noise(labels, 0.25, 4, 3), label_noise(labels, 0.5, 4, 3)
    for index, (original, q) in enumerate(zip(labels, quarter, strict=True)):
        if q != original:
            assert half[index] == q  # same sample, same wrong label at the higher level
    # wrong labels are spread over the other classes, not always the next one
    wrong = label_noise(labels, 1.0, 4, 3)
    assert len({(w - o) % 4 for o, w in zip(labels, wrong, strict=True)}) == 3


def test_label_noise_rejects_bad_shares():
    with pytest.raises(InvalidArgumentError):
        label_noise([0, 1], 1.5, 2, 0)
    with pytest.raises(InvalidArgumentError):
        label_noise([0, 0], 0.5, 1, 0)


def test_input_noise_damages_exactly_that_share_and_keeps_labels():
    code = "def f(x):\n    y = x + 1\n    z = y * 2\n    if z:\n        z -= 1\n    return z\n"
    samples = [Sample(code.replace("1", str(i)), i % 3, f"s{i}") for i in range(40)]
    noised = input_noise(samples, 0.5, "python", seed=0)
    changed = [n for n, s in zip(noised, samples, strict=True) if n.code != s.code]
    assert len(changed) == 20
    assert [n.label for n in noised] == [s.label for s in samples]
    for sample in changed:
        assert not parse(sample.code, "python").has_error
        assert len(sample.code) < len(code) + 2


# ---------------------------------------------------------------- metrics


def brute_gini(values):
    x = np.asarray(values, dtype=float)
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) * x.sum()))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1e3, allow_nan=False), min_size=1, max_size=60))
def test_gini_equals_the_quadratic_definition(values):
    if sum(values) <= 0:
        assert gini(values) == 0.0
    else:
        assert gini(values) == pytest.approx(brute_gini(values), abs=1e-9)


def test_gini_extremes():
    assert gini([2.0] * 10) == pytest.approx(0.0)
    assert gini([0.0] * 9 + [5.0]) == pytest.approx(0.9)  # (n - 1) / n
    assert gini([]) == 0.0


def test_macro_f1_equals_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        truth = rng.integers(0, 5, size=50)
        predicted = np.where(rng.random(50) < 0.6, truth, rng.integers(0, 5, size=50))
        ours = macro_f1(truth, predicted, 5)
        theirs = f1_score(truth, predicted, average="macro", labels=range(5), zero_division=0)
        assert ours == pytest.approx(theirs)


def test_subtoken_f1():
    assert subtokens("getFileName") == ["get", "file", "name"]
    assert subtokens("get_file_name") == ["get", "file", "name"]
    assert subtokens("parseHTTPResponse2") == ["parse", "http", "response", "2"]
    assert subtoken_f1(["get_name"], ["get_name"]) == 1.0
    # predicted "get_value" for "get_name": tp 1, fp 1, fn 1 -> P = R = 0.5
    assert subtoken_f1(["get_name"], ["get_value"]) == pytest.approx(0.5)
    # tp 1 (get), fp 1 (close), fn 2 (run, name): P = 1/2, R = 1/3, F1 = 0.4
    assert subtoken_f1(["run", "get_name"], ["close", "get"]) == pytest.approx(0.4)
    assert subtoken_f1(["run"], ["close"]) == 0.0


# ---------------------------------------------------------------- renaming

PROGRAM = '''
import math as m


def area(shapes, scale=1.0):
    """Sum of areas; nested scopes, comprehensions, closures and attributes."""
    total = 0.0
    for kind, size in shapes:
        if kind == "circle":
            total += m.pi * size ** 2
        else:
            side = size
            total += side * side
    factor = scale

    def scaled(value):
        return value * factor

    sizes = [s for _, s in shapes]
    try:
        biggest = max(sizes)
    except ValueError as error:
        biggest = str(error)
    return scaled(total), biggest, len(sizes)


class Box:
    def __init__(self, width):
        self.width = width

    def grow(self, by):
        width = self.width + by
        self.width = width
        return width
'''


def _run(code):
    namespace = {}
    exec(code, namespace)
    box = namespace["Box"](2)
    return (
        namespace["area"]([("circle", 1.0), ("square", 2.0)], 2.0),
        namespace["area"]([]),
        box.grow(3),
        box.width,
    )


def test_python_renaming_keeps_the_program_running_with_the_same_results():
    expected = _run(PROGRAM)
    variables = python_variables(PROGRAM)
    assert {"total", "kind", "size", "side", "factor", "sizes", "biggest", "_"} <= set(variables)
    # never: imports, self, builtins, function names, except-as names, keyword-passable
    # parameters (a caller may write area(shapes=...)) and names shared with them (width)
    assert not {"m", "self", "max", "area", "scaled", "error", "shapes", "width"} & set(variables)
    variants = single_renamings(PROGRAM, "python", limit=None)
    assert len(variants) == len(variables)
    for variant in variants:
        assert variant != PROGRAM and "var0" in variant
        assert _run(variant) == expected
        # exactly one name changed: the token streams differ in one identifier only
        changed = {a for a, b in zip(PROGRAM.split(), variant.split(), strict=True) if a != b}
        names = {name for name in variables if any(name in token for token in changed)}
        assert len(names) >= 1


def test_python_renaming_refuses_what_it_cannot_prove_safe():
    assert rename_python("def f(x):\n    return x\n", "y") is None  # absent
    assert rename_python("def f(:\n", "x") is None  # does not parse
    keyword_use = "def f(a, /, *rest):\n    b = a\n    return b\n\nprint(f(b=1))\n"
    assert python_variables(keyword_use) == ["a", "rest"]  # positional-only and *args are safe
    assert python_variables("class C:\n    x = 1\n    def m(self):\n        y = self.x\n") == ["y"]
    assert rename_python("var0 = 1\nx = var0\n", "x") == "var0 = 1\nvar1 = var0\n"
    with pytest.raises(ValueError):
        rename_python("def f(x):\n    return x\n", "x", "class")


def _textwrap_outputs(module):
    sample = "The quick brown fox jumps over the lazy dog, " * 12
    indented = "    a\n      b\n\n    c  \n"
    return (
        module.fill(sample, width=33, initial_indent="> "),
        module.shorten(sample, width=40, placeholder=" [..]"),
        module.dedent(indented),
        module.indent(indented, "+ ", lambda line: bool(line.strip())),
        module.wrap("a-very-long-hyphenated-word " * 5, width=12, break_on_hyphens=True),
    )


def test_python_renaming_of_real_library_code_still_runs():
    """textwrap from the standard library: rename each safe variable, re-run its functions."""
    source = inspect.getsource(textwrap)
    expected = _textwrap_outputs(textwrap)
    names = python_variables(source)
    assert len(names) >= 10 and "width" not in names  # width is also a keyword parameter
    checked = 0
    for name in names:
        renamed = rename_python(source, name)
        assert renamed is not None and renamed != source
        spec = importlib.util.spec_from_loader("renamed_textwrap", loader=None)
        module = importlib.util.module_from_spec(spec)
        exec(compile(renamed, "renamed_textwrap", "exec"), module.__dict__)
        assert _textwrap_outputs(module) == expected, name
        checked += 1
    assert checked == len(names)


JAVA = """class Sorter {
  int count;
  void sort(int[] data) {
    int n = data.length;
    for (int i = 0; i < n; i++) {
      for (int j = 0; j + 1 < n - i; j++) {
        if (data[j] > data[j + 1]) { int tmp = data[j]; data[j] = data[j + 1]; data[j + 1] = tmp; }
      }
    }
    this.count = n;
  }
  int count() { int count = 3; return this.count + count; }
}
"""


def test_java_renaming_renames_locals_in_their_method_and_still_parses():
    variables = java_variables(JAVA)
    assert variables == ["data", "n", "i", "j", "tmp"]  # 'count' is also a field: left alone
    renamed = rename_java(JAVA, "n")
    assert "int var0 = data.length" in renamed and "this.count = var0" in renamed
    assert not parse(renamed, "java").has_error
    assert renamed.count("var0") == JAVA.count("n;") + JAVA.count("n -") + JAVA.count("n =")
    assert rename_java(JAVA, "count") is None or "this.count" in rename_java(JAVA, "count")
    assert len(single_renamings(JAVA, "java", limit=3)) == 3


# ---------------------------------------------------------------- end to end


def _tiny_dataset() -> LabDataset:
    templates = {
        0: "def _(items):\n    total = 0\n    for item in items:\n        total += item\n"
        "    return total{i}\n",
        1: "def _(text):\n    parts = text.split()\n    joined = '-'.join(parts)\n"
        "    return joined{i}\n",
    }
    samples = [
        Sample(templates[i % 2].format(i=f" + {i}" if i % 2 == 0 else f".strip() * {i}"), i % 2, "")
        for i in range(36)
    ]
    return LabDataset("tiny", "python", ["sum", "join"], samples[:24], samples[24:28], samples[28:])


@pytest.mark.browser  # starts Playwright itself, to open the report
def test_tiny_end_to_end_run_writes_csvs_resumes_and_reads(tmp_path):
    config = MemorizationConfig(dataset="tiny", noise=[0, 50, 100], epochs=3, batch_size=8)
    out = tmp_path / "run"
    epochs_seen = []
    result = run_memorization(
        config, out, dataset=_tiny_dataset(), on_epoch=lambda n, r: epochs_seen.append(n)
    )
    assert epochs_seen == [0] * 3 + [50] * 3 + [100] * 3
    assert [level.noised_samples for level in result.levels] == [0, 12, 24]
    assert not list(out.glob("*.csv"))  # the run computes; its report layer writes the CSVs
    write_csvs(result, out)
    with open(out / "gini.csv") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["epoch", "0_percent", "50_percent", "100_percent"]
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"]
    for name in ("train_f1", "test_f1", "csr", "train_accuracy", "test_accuracy"):
        assert (out / f"{name}.csv").is_file()
    final = list(csv.reader(open(out / "test_scores_final.csv")))
    assert len(final) == 1 + len(_tiny_dataset().test)
    over_epochs = list(csv.reader(open(out / "test_scores_over_epochs.csv")))
    assert [float(v) for v in over_epochs[1][1:]] == pytest.approx(
        [level.scores_over_epochs()[0] for level in result.levels], abs=1e-6
    )
    for level in result.levels:
        for record in level.epochs:
            assert 0 <= record.gini <= 1 and 0 <= record.csr <= 1
            assert len(record.test_scores) == 8
    loaded = MemorizationResult.load(out / "memorization.json")
    assert loaded.to_dict() == json.loads(json.dumps(result.to_dict()))
    assert any("Gini" in line for line in reading(result))

    # resume: finished levels are reused, a missing one is retrained identically (seeded)
    (out / "levels" / "label_50.json").unlink()
    epochs_seen.clear()
    again = run_memorization(
        config, out, dataset=_tiny_dataset(), on_epoch=lambda n, r: epochs_seen.append(n)
    )
    assert again.to_dict() == loaded.to_dict()
    # a different configuration never reuses those levels
    other = MemorizationConfig(dataset="tiny", noise=[0], epochs=3, batch_size=8, seed=1)
    assert run_memorization(other, out, dataset=_tiny_dataset()).levels[0].config_key != (
        result.levels[0].config_key
    )

    from codefocus.reports.memorization import write_report

    report = write_report(result, out)
    text = report.read_text()
    assert text.count("data:image/png;base64,") == 4 and "http" not in text
    assert (out / "f1.png").read_bytes()[:4] == b"\x89PNG"

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        requests = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri())
        widths = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
        assert len(widths) == 4 and all(w > 300 for w in widths)  # every plot decoded
        assert page.locator("table tr").count() == 1 + 3  # header + one row per level
        assert page.locator("li").count() >= 3  # the reading
        browser.close()
    assert all(url.startswith(("file:", "data:")) for url in requests)


def test_input_noise_run_and_bad_configurations(tmp_path):
    config = MemorizationConfig(dataset="tiny", noise_kind="input", noise=[0, 100], epochs=1)
    result = run_memorization(config, tmp_path / "input", dataset=_tiny_dataset())
    assert result.levels[1].noised_samples == 24
    bag = MemorizationConfig(dataset="tiny", model="attention-bag", noise=[0], epochs=2)
    assert len(run_memorization(bag, tmp_path / "bag", dataset=_tiny_dataset()).levels) == 1
    names = _tiny_dataset()
    names.name = "methodnames"  # method names: sub-token F1 stands for F1
    config = MemorizationConfig(dataset="methodnames", noise=[0, 100], epochs=1)
    result = run_memorization(config, tmp_path / "names", dataset=names)
    record = result.levels[0].epochs[0]
    assert record.test_subtoken_f1 is not None
    assert result.primary_f1(record, "test") == record.test_subtoken_f1
    assert any(line.startswith("Test sub-token F1") for line in reading(result))
    with pytest.raises(UnknownNameError):
        run_memorization(
            MemorizationConfig(dataset="tiny", model="gpt"), tmp_path, dataset=_tiny_dataset()
        )
    with pytest.raises(InvalidArgumentError):
        run_memorization(
            MemorizationConfig(dataset="tiny", noise=[150]), tmp_path, dataset=_tiny_dataset()
        )
    with pytest.raises(UnknownNameError):
        run_memorization(MemorizationConfig(dataset="nope"), tmp_path)


@pytest.mark.slow
def test_algorithm_data_run_on_a_small_subset(tmp_path, data_dir):
    dataset = load_algorithms(data_dir, per_class=5, seed=0)
    config = MemorizationConfig(dataset="algorithms", noise=[0, 100], epochs=2, per_class=5)
    result = run_memorization(config, tmp_path, dataset=dataset)
    assert result.sizes["csr_programs_with_variables"] >= len(dataset.test) // 2
    assert result.levels[1].noised_samples == len(dataset.train)
