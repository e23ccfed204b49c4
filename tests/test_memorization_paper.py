"""The memorization study as Rabin et al. ran it (issue #28): predicted scores averaged over all
epochs, CSR over each variable, two model capacities that both train (warmup and decay, pre-norm
layers), a method-name dataset built from the pinned packages only, and the benchmark's JSON,
seeds and last lines."""

import importlib.metadata
import json
import math
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from codefocus.errors import InvalidArgumentError, UnknownNameError
from codefocus.lab.classifier import (
    CodeClassifier,
    EncodedPrograms,
    Vocabulary,
    lr_scheduler,
    schedule_factor,
)
from codefocus.lab.datasets import LabDataset, Sample
from codefocus.lab.memorization import (
    MODELS,
    EpochRecord,
    LevelResult,
    MemorizationConfig,
    csr_variants,
    parameter_count,
    prepare,
    run_memorization,
)
from codefocus.lab.methodnames import build_methodnames, pinned_packages
from codefocus.lab.renaming import java_variables, python_variables, single_renamings

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------- predicted scores


def _level(scores: list[list[float]]) -> LevelResult:
    epochs = [
        EpochRecord(e + 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, list(s))
        for e, s in enumerate(scores)
    ]
    return LevelResult(0, "label", 0, epochs, "key")


def test_scores_over_epochs_are_sorted_then_averaged_like_a_naive_loop():
    rng = np.random.default_rng(3)
    scores = [[float(x) for x in rng.random(17)] for _ in range(6)]
    level = _level(scores)
    expected = []
    for rank in range(17):
        total = 0.0
        for epoch in scores:
            total += sorted(epoch, reverse=True)[rank]
        expected.append(total / len(scores))
    assert level.scores_over_epochs() == pytest.approx(expected, abs=1e-12)
    assert level.scores_last_epoch() == sorted(scores[-1], reverse=True)
    # not the same thing as averaging each program's score over epochs, then sorting
    per_program = sorted(np.mean(scores, axis=0), reverse=True)
    assert not np.allclose(level.scores_over_epochs(), per_program)
    assert _level([[0.2, 0.9]]).scores_over_epochs() == [0.9, 0.2]  # one epoch: that epoch


def test_a_run_records_parameters_and_both_score_views(tmp_path):
    dataset = _tiny_dataset()
    config = MemorizationConfig(dataset="tiny", noise=[0], epochs=2, batch_size=8)
    level = run_memorization(config, tmp_path, dataset=dataset).levels[0]
    vocabulary, _ = prepare(config, dataset)
    assert level.parameters == parameter_count("transformer", vocabulary, dataset.classes, "python")
    assert len(level.scores_over_epochs()) == len(level.scores_last_epoch()) == len(dataset.test)
    again = LevelResult.from_dict(json.loads(json.dumps(level.to_dict())))
    assert again.parameters == level.parameters
    assert again.scores_over_epochs() == pytest.approx(level.scores_over_epochs())


# ---------------------------------------------------------------- critical sample ratio

PYTHON = """
def area(shapes, /, *extra):
    total = 0.0
    for kind, size in shapes:
        side = size
        total += side * side if kind == "square" else 3.14 * size * size
    count = len(shapes)
    label = "n=" + str(count)
    return total, label, extra
"""

JAVA = """class Sorter {
  void sort(int[] data) {
    int n = data.length;
    for (int i = 0; i < n; i++) {
      for (int j = 0; j + 1 < n - i; j++) {
        if (data[j] > data[j + 1]) { int tmp = data[j]; data[j] = data[j + 1]; data[j + 1] = tmp; }
      }
    }
  }
}
"""


def test_by_default_the_critical_sample_ratio_renames_each_variable_once():
    config = MemorizationConfig(dataset="tiny")
    assert config.renamings is None  # the default is "all"
    variables = python_variables(PYTHON)
    assert len(variables) > 5  # more than the old bound of 5
    (variants,) = csr_variants([Sample(PYTHON, 0, "")], "python", config.renamings)
    assert len(variants) == len(variables)
    renamed = []
    for variant in variants:
        after = python_variables(variant)
        gone = [name for name in variables if name not in after]
        assert len(gone) == 1 and "var0" in after  # one variable, renamed to var0
        assert after == [("var0" if name == gone[0] else name) for name in variables]
        renamed.append(gone[0])
    assert sorted(renamed) == sorted(variables)  # each variable once, none twice

    java = java_variables(JAVA)
    (variants,) = csr_variants([Sample(JAVA, 0, "")], "java", config.renamings)
    assert len(variants) == len(java) == 5
    assert [next(n for n in java if n not in java_variables(v)) for v in variants] == java
    assert single_renamings(PYTHON, "python") == variants_of(PYTHON)
    assert len(single_renamings(PYTHON, "python", limit=2)) == 2  # the bound, when asked


def variants_of(code):
    return csr_variants([Sample(code, 0, "")], "python", None)[0]


def test_prepare_renames_each_variable_of_each_test_program(tmp_path):
    dataset = _tiny_dataset()
    _, renamed = prepare(MemorizationConfig(dataset="tiny"), dataset)
    assert [len(group) for group in renamed] == [
        len(python_variables(s.code)) for s in dataset.test
    ]
    _, bounded = prepare(MemorizationConfig(dataset="tiny", renamings=1), dataset)
    assert [len(group) for group in bounded] == [min(1, len(g)) for g in renamed]


# ---------------------------------------------------------------- capacity


def test_the_large_model_has_over_ten_times_the_parameters_at_any_vocabulary_size():
    for size in (10, 500, 5000):  # Vocabulary.build keeps at most 5,000 tokens
        vocabulary = Vocabulary([f"t{i}" for i in range(size)])
        classes = [f"c{i}" for i in range(10)]
        small = parameter_count("transformer", vocabulary, classes, "java")
        large = parameter_count("transformer-large", vocabulary, classes, "java")
        assert large >= 10 * small, (size, small, large)
    assert {k: MODELS["transformer"][k] for k in ("dim", "layers")} == {"dim": 64, "layers": 2}


# ---------------------------------------------------------------- training schedule


def test_the_schedule_warms_up_linearly_then_decays_as_computed_by_hand():
    # 10 steps, 2 of warmup: 1/2, 2/2, then p = (step - 2) / 8 from step 2 on
    cosine = [schedule_factor(step, 10, 2, "cosine") for step in range(10)]
    assert cosine[:3] == pytest.approx([0.5, 1.0, 1.0])
    assert cosine[6] == pytest.approx(0.5)  # p = 1/2: halfway down
    assert cosine[4] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))
    assert cosine[9] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(a >= b for a, b in zip(cosine[1:], cosine[2:], strict=False))
    linear = [schedule_factor(step, 10, 2, "linear") for step in range(10)]
    assert linear == pytest.approx([0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])
    assert [schedule_factor(step, 10, 2, "constant") for step in (0, 1, 5, 9)] == [0.5, 1, 1, 1]
    assert schedule_factor(0, 10, 0, "cosine") == 1.0  # no warmup: the peak at once
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule_factor(0, 10, 2, "step")


def test_training_steps_the_schedule_once_per_batch_and_clips(monkeypatch):
    import torch

    dataset = _tiny_dataset()
    vocabulary = Vocabulary.build(dataset.train, "python")
    model = CodeClassifier(vocabulary, dataset.classes, "python", 16, 1, norm_first=True)
    encoded = EncodedPrograms(model, [s.code for s in dataset.train])
    labels = [s.label for s in dataset.train]
    optimiser = torch.optim.Adam(model.net.parameters(), lr=0.01)
    scheduler = lr_scheduler(optimiser, total=6, warmup=2, kind="linear")
    clipped, seen = [], []
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip(parameters, norm):
        clipped.append(norm)
        return real_clip(parameters, norm)

    # the rate each step uses
    optimiser.register_step_pre_hook(lambda opt, *_: seen.append(opt.param_groups[0]["lr"]))
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    for _ in range(2):  # 24 programs in batches of 8: three steps an epoch
        model.train_epoch(encoded, labels, range(24), 8, optimiser, scheduler, clip_norm=0.5)
    expected = [0.01 * schedule_factor(k, 6, 2, "linear") for k in range(6)]
    assert seen == pytest.approx(expected) and clipped == [0.5] * 6


def test_the_level_records_how_it_trained_and_pre_norm_survives_a_checkpoint(tmp_path):
    config = MemorizationConfig(dataset="tiny", noise=[0], epochs=2, batch_size=8, seed=2)
    level = run_memorization(config, tmp_path, dataset=_tiny_dataset()).levels[0]
    assert level.seed == 2
    assert level.training == config.training(24) == {
        "optimizer": "adam", "learning_rate": MODELS["transformer"]["learning_rate"],
        "schedule": "cosine", "warmup_steps": 1, "total_steps": 6, "clip_norm": 1.0,
        "batch_size": 8, "norm_first": True,
    }  # fmt: skip
    assert LevelResult.from_dict(json.loads(json.dumps(level.to_dict()))).training == (
        level.training
    )
    assert MemorizationConfig(dataset="x", learning_rate=0.5).peak_learning_rate() == 0.5
    vocabulary = Vocabulary(["a", "b"])
    model = CodeClassifier(vocabulary, ["x", "y"], "python", 16, 1, norm_first=True)
    model.save(tmp_path / "pre")
    loaded = CodeClassifier.load(tmp_path / "pre")
    assert loaded.norm_first and loaded.net.encoder.layers[0].norm_first
    # a checkpoint from before the setting was kept is post-norm, and loads as such
    CodeClassifier(vocabulary, ["x", "y"], "python", 16, 1).save(tmp_path / "post")
    meta = json.loads((tmp_path / "post" / "classifier.json").read_text())
    del meta["norm_first"]
    (tmp_path / "post" / "classifier.json").write_text(json.dumps(meta))
    assert not CodeClassifier.load(tmp_path / "post").net.encoder.layers[0].norm_first
    for bad, message in (
        ({"schedule": "step"}, "unknown schedule"),
        ({"warmup": 1.0}, "warmup"),
        ({"learning_rate": 0.0}, "learning-rate"),
        ({"clip_norm": -1.0}, "clip-norm"),
    ):
        with pytest.raises((InvalidArgumentError, UnknownNameError), match=message):
            run_memorization(
                MemorizationConfig(dataset="tiny", **bad), tmp_path, dataset=_tiny_dataset()
            )


# ---------------------------------------------------------------- method-name dataset


def test_the_pins_are_those_of_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"]:
        name, _, version = requirement.partition("==")
        if version:
            pins[name.strip().lower()] = version.strip()
    assert dict(pinned_packages()) == pins
    assert "torch" in pins and "numpy" not in pins  # a range is not a pin


def test_method_names_are_built_deterministically_from_pinned_packages(tmp_path):
    first = build_methodnames(top=3, per_name=20, packages=["shap"])
    second = build_methodnames(top=3, per_name=20, packages=["SHAP"])
    assert first.classes == second.classes and len(first.classes) == 3
    for split in ("train", "valid", "test"):
        assert [s.to_dict() for s in getattr(first, split)] == [
            s.to_dict() for s in getattr(second, split)
        ]
    assert first.manifest == second.manifest
    manifest = first.manifest
    version = importlib.metadata.version("shap")
    assert manifest["packages"] == [
        {"name": "shap", "version": version, "pinned": dict(pinned_packages())["shap"],
         "python_files": manifest["packages"][0]["python_files"]}
    ]  # fmt: skip
    assert manifest["packages"][0]["python_files"] > 10
    samples = first.train + first.valid + first.test
    assert manifest["size"]["samples"] == len(samples) == first.report["kept"]
    assert manifest["sha256"] == first.sha256() == second.sha256()
    # sources name the package and version and a path inside it: no machine's own folders
    assert all(s.source.startswith(f"shap=={version}:shap/") for s in samples)
    first.save(tmp_path / "names")
    loaded = LabDataset.load(tmp_path / "names")
    assert loaded.manifest == manifest and loaded.sha256() == manifest["sha256"]
    other_seed = build_methodnames(top=3, per_name=20, packages=["shap"], seed=1)
    assert other_seed.sha256() != first.sha256()
    with pytest.raises(InvalidArgumentError, match="not a pinned package"):
        build_methodnames(packages=["numpy"])


# ---------------------------------------------------------------- the benchmark


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


@pytest.fixture()
def benchmark():
    from benchmark_modules import load_benchmark

    return load_benchmark("memorization_run")


PROGRESS = re.compile(r"^\s+\S+\s+\d+% seed \d+ epoch\s+\d+: train acc")
FIGURE = r"(?:\d\.\d{3}|nan)±(?:\d\.\d{3}|nan)"
LAST = re.compile(
    rf"^(?:(transformer|attention-bag) )?noise (\d+)%: gini {FIGURE} test_f1 {FIGURE} "
    rf"csr {FIGURE} mean_score {FIGURE} seeds (\d+)$"
)


def test_the_benchmark_writes_json_resumes_and_ends_with_one_line_per_level(
    benchmark, tmp_path, capsys, monkeypatch
):
    _tiny_dataset().save(tmp_path / "data")
    out = tmp_path / "results" / "memorization.json"
    args = ["--dataset", str(tmp_path / "data"), "--epochs", "2", "--noise", "0,100"]
    args += ["--model", "transformer,attention-bag", "--out", str(out), "--seeds", "2"]
    benchmark.main(args)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [LAST.match(line).groups() for line in lines[-4:]] == [
        ("transformer", "0", "2"), ("transformer", "100", "2"), ("attention-bag", "0", "2"),
        ("attention-bag", "100", "2"),
    ]  # fmt: skip
    assert any(re.match(r"model transformer: [\d,]+ parameters", line) for line in lines)
    assert sum(bool(PROGRESS.match(line)) for line in lines) == 2 * 2 * 2 * 2  # x seeds
    document = json.loads(out.read_text())
    assert document["schema"] == benchmark.SCHEMA == 2
    assert sorted(document["entries"]) == [
        f"{model}/label/{noise}/seed{seed}"
        for model in ("attention-bag", "transformer") for noise in (0, 100) for seed in (0, 1)
    ]  # fmt: skip
    entry = document["entries"]["transformer/label/100/seed1"]
    assert entry["seed"] == 1 and entry["training"] == document["models"]["transformer"]["training"]
    assert entry["parameters"] == document["models"]["transformer"]["parameters"] > 0
    level = LevelResult.from_dict(entry["level"])
    assert level.seed == 1 and level.training == entry["training"]
    assert entry["summary"]["mean_score"] == pytest.approx(np.mean(level.scores_over_epochs()))
    assert entry["summary"]["scores_last_epoch"] == level.scores_last_epoch()
    assert document["dataset"]["sizes"]["test"] == 8
    assert document["dataset_sha256"] == _tiny_dataset().sha256()
    # the seeds differ (initialisation, order, noise draw); the models share each seed's noise
    seeds = [document["entries"][f"transformer/label/0/seed{s}"]["level"] for s in (0, 1)]
    assert seeds[0]["epochs"][0]["test_scores"] != seeds[1]["epochs"][0]["test_scores"]
    # mean ± sd across the seeds, as numpy computes them, and in the last lines
    stats = document["across_seeds"]["transformer/label/100"]
    pair = [document["entries"][f"transformer/label/100/seed{s}"]["summary"] for s in (0, 1)]
    for name, field in (("gini", "gini"), ("fit", "train_accuracy"), ("test_f1", "test_f1")):
        values = [summary[field] for summary in pair]
        assert stats[name]["mean"] == pytest.approx(np.mean(values))
        assert stats[name]["sd"] == pytest.approx(np.std(values, ddof=1))
    assert stats["seeds"] == [0, 1]
    assert f"gini {stats['gini']['mean']:.3f}±{stats['gini']['sd']:.3f}" in lines[-3]

    # a rerun resumes every finished entry and prints the same last lines
    benchmark.main(args)
    again = capsys.readouterr().out.strip().splitlines()
    assert again[-4:] == lines[-4:] and not any(PROGRESS.match(line) for line in again)
    assert sum("reused" in line for line in again) == 8

    # other settings are never mixed into the file; --fresh starts over
    with pytest.raises(SystemExit, match="other settings or data"):
        benchmark.main([*args[:3], "3", *args[4:]])
    capsys.readouterr()

    # each finished level is written at once: a crash keeps what was done
    calls = []
    real = benchmark.train_level

    def crash_on_second(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(benchmark, "train_level", crash_on_second)
    one_model = [*args[:6], "--model", "transformer", "--out", str(out), "--seeds", "1", "--fresh"]
    with pytest.raises(KeyboardInterrupt):
        benchmark.main(one_model)
    assert list(json.loads(out.read_text())["entries"]) == ["transformer/label/0/seed0"]
    monkeypatch.setattr(benchmark, "train_level", real)
    benchmark.main(one_model[:-1])  # resumes: only the missing level trains
    single = capsys.readouterr().out.strip().splitlines()
    assert [LAST.match(line).group(1) for line in single[-2:]] == [None, None]  # no prefix
    assert [LAST.match(line).group(3) for line in single[-2:]] == ["1", "1"]
    assert "±nan" in single[-1]  # one seed: no sd
    assert sum("reused" in line for line in single) == 1
    # more seeds later: only the new seed's levels train, per seed
    benchmark.main([*one_model[:-2], "2"])
    more = capsys.readouterr().out.strip().splitlines()
    assert sum("reused" in line for line in more) == 2
    trained = [re.match(r"^\s+\S+\s+\d+% seed (\d+)", line) for line in more]
    assert {m.group(1) for m in trained if m} == {"1"}
    assert not list(out.parent.glob(".*.tmp"))  # no temporary file left behind

    # the docs' table: one row per model and level, mean ± sd over the seeds
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import lab_figures
    finally:
        sys.path.pop(0)
    table = lab_figures.memorization(json.loads(out.read_text()))
    rows = [line for line in table.splitlines() if line.startswith("| transformer |")]
    assert len(rows) == 2 and all("| 2 |" in row and " ± " in row for row in rows)
    assert "seeds 0–1" in table and "peak learning rate" in table


def test_a_results_file_of_one_seed_is_refused_in_one_line(benchmark, tmp_path):
    _tiny_dataset().save(tmp_path / "data")
    out = tmp_path / "memorization.json"
    old = {"schema": 1, "settings": {}, "entries": {"transformer/label/0": {}}}
    out.write_text(json.dumps(old))
    args = ["--dataset", str(tmp_path / "data"), "--epochs", "1", "--noise", "0"]
    with pytest.raises(SystemExit) as refused:
        benchmark.main([*args, "--model", "transformer", "--out", str(out)])
    message = str(refused.value.code)
    assert "schema 1" in message and "--fresh" in message and "\n" not in message
    assert json.loads(out.read_text()) == old  # untouched


def test_across_seeds_is_mean_and_sample_sd_as_numpy_has_them(benchmark):
    rng = np.random.default_rng(5)
    entries = []
    for seed in range(4):
        summary = {field: float(rng.random()) for _, field in benchmark.ACROSS}
        summary |= {"test_f1_kind": "macro-F1", "first_epoch_95_percent_fit": [None, 3][seed % 2]}
        entries.append({"model": "m", "noise_kind": "label", "noise": 50, "parameters": 9,
                        "seed": seed, "summary": summary})  # fmt: skip
    entries[2]["summary"]["csr"] = None  # no CSR program: that seed has no CSR
    stats = benchmark.across_seeds(entries)
    for name, field in benchmark.ACROSS:
        values = [e["summary"][field] for e in entries if e["summary"][field] is not None]
        assert stats[name]["mean"] == pytest.approx(np.mean(values), abs=1e-12)
        assert stats[name]["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        assert stats[name]["seeds"] == len(values)
    assert stats["csr"]["seeds"] == 3 and stats["gini"]["seeds"] == 4
    assert stats["first_epoch_95_percent_fit"] == [None, 3, None, 3]
    one = benchmark.across_seeds(entries[:1])
    assert one["gini"]["mean"] == entries[0]["summary"]["gini"]
    assert math.isnan(one["gini"]["sd"])


class _Called(Exception):
    pass


def test_the_command_line_bounds_renamings_only_when_asked(tmp_path, monkeypatch, capsys):
    from codefocus.cli import main

    seen = []

    def record(config, *args, **kwargs):
        seen.append(config)
        raise _Called

    monkeypatch.setattr("codefocus.lab.memorization.run_memorization", record)
    for extra in ([], ["--renamings", "3"]):
        with pytest.raises(_Called):
            main(["memorization", "--out", str(tmp_path / "m"), *extra])
    capsys.readouterr()
    assert [config.renamings for config in seen] == [None, 3]


def test_a_change_to_a_models_spec_changes_the_configuration_key(monkeypatch):
    # `codefocus memorization` reuses levels by key: a model trained otherwise (another peak
    # rate or norm placement under the same name) must not match an earlier level
    from codefocus.lab import memorization

    config = memorization.MemorizationConfig(dataset="algorithms", model="transformer")
    before = config.key()
    spec = {**memorization.MODELS["transformer"], "learning_rate": 1e-3}
    monkeypatch.setitem(memorization.MODELS, "transformer", spec)
    assert config.key() != before
    monkeypatch.setitem(memorization.MODELS, "transformer", {**spec, "learning_rate": 3e-3})
    assert config.key() == before
