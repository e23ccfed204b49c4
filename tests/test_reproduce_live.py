"""A live model's results scored beside the study's (``reproduce kou2024 --add``)."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import spearmanr

from codefocus.errors import DataError, InvalidArgumentError, UnknownNameError
from codefocus.reproduce import kou2024, live
from codefocus.reproduce.kou2024 import STORED_DIR


@pytest.fixture(scope="module")
def mine(data_dir, tmp_path_factory):
    """The study's stored codegen READING-first file, written back as a live model's."""
    folder = tmp_path_factory.mktemp("live")
    shutil.copy(
        data_dir / STORED_DIR / "reading_first_codegen.json.gz",
        folder / "reading_first_mine.json.gz",
    )
    return folder


@pytest.fixture(scope="module")
def comparison(data_dir, mine):
    return live.compare(live.read_added(mine), data_dir, ks=[5, 10], models=["codegen"])


def _row(rows, model, method, k):
    (row,) = [r for r in rows if (r.model, r.method, r.k) == (model, method, k)]
    return row


@pytest.mark.parametrize("k", [5, 10])
def test_a_stored_file_written_back_scores_identically(comparison, k):
    ours = _row([r.row for r in comparison.live], "mine", "reading_first", k)
    theirs = _row(comparison.rows, "codegen", "reading_first", k)
    assert ours == dataclasses.replace(theirs, model="mine")
    assert ours.n_prompts == 1133


def test_intervals_hold_the_estimate(comparison):
    assert len(comparison.live) == 2
    for r in comparison.live:
        for name in ("precision", "recall", "f1", "alpha"):
            interval = getattr(r, f"{name}_interval")
            assert interval.estimate == getattr(r.row, name)
            assert interval.low <= interval.estimate <= interval.high, (name, r.row.k)
            assert interval.low < interval.high  # 1,133 prompts do vary
            assert interval.high - interval.low < 0.1, name  # and not wildly
    ranking = comparison.rankings[0]
    assert (ranking.model, ranking.methods, ranking.spearman) == ("mine", ["reading_first"], None)


def test_comparison_round_trips_through_json(comparison):
    again = live.LiveComparison.from_dict(json.loads(json.dumps(comparison.to_dict())))
    assert again == comparison


def test_the_bootstrap_denominator_is_the_studys(data_dir, mine):
    labels = kou2024.study_labels(data_dir)
    stored = live.read_added(mine)[("mine", "reading_first")]
    counts = kou2024.stored_counts(stored, labels, [10], "mine")
    universe = {text: i for i, text in enumerate(counts.prompts)}
    table = live.counts_table(counts, 10, universe, labels.rows_per_prompt)
    assert table[:, 3].sum() == counts.recall_denominator == 7983
    pooled = counts.scores([10])[0]
    assert table[:, 1].sum() / table[:, 3].sum() == pytest.approx(pooled.recall, abs=1e-12)


def test_rank_correlation_matches_scipy():
    rng = np.random.default_rng(1)
    reference = [0.3, 0.5, 0.2, 0.4, 0.45]
    point = [0.31, 0.52, 0.25, 0.45, 0.42]
    resampled = np.asarray(point) + rng.normal(0, 0.03, size=(200, 5))
    rho, low, high = live.rank_correlation(point, resampled, reference)
    assert rho == pytest.approx(spearmanr(point, reference).statistic)
    every = [spearmanr(row, reference).statistic for row in resampled]
    assert (low, high) == pytest.approx(tuple(np.percentile(every, [2.5, 97.5])))
    assert low <= rho <= high
    assert live.rank_correlation(point[:2], resampled[:, :2], reference[:2]) == (None,) * 3


def test_the_live_ranking_against_table3(data_dir, tmp_path, monkeypatch):
    # codegen's F1 at K=10: READING first 31.9 < CODING last 45.2 < BERT masking 52.0
    methods = ["reading_first", "coding_last", "bert_perturbation"]
    for method in methods:
        shutil.copy(
            data_dir / STORED_DIR / f"{method}_codegen.json.gz", tmp_path / f"{method}_mine.json.gz"
        )
    table3 = {"reading_first": 0.1, "coding_last": 0.3, "bert_perturbation": 0.2}
    asked = []
    monkeypatch.setattr(live, "_reference", lambda m, means, k, *_: asked.append(k) or table3)
    result = live.compare(live.read_added(tmp_path), data_dir, ks=[5], models=(), resamples=200)
    assert result.rows == result.means == [] and asked == [10]
    assert {(r.row.method, r.row.k) for r in result.live} == {(m, 5) for m in methods}
    (ranking,) = result.rankings
    assert (ranking.model, ranking.k, sorted(ranking.methods)) == ("mine", 10, sorted(methods))
    assert ranking.spearman == pytest.approx(0.5)  # ranks (1, 2, 3) against (1, 3, 2)
    assert ranking.spearman_low <= ranking.spearman <= ranking.spearman_high
    assert json.loads(ranking.to_json_line())["methods"] == 3


def test_file_names_parse_to_model_and_method():
    assert live.parse_stored_name("reading_first_default.json.gz") == ("default", "reading_first")
    assert live.parse_stored_name("inputxgradient_coding_my_model.json.gz") == (
        "my_model",
        "inputxgradient_coding",
    )
    assert live.parse_stored_name("shap_perturbation_x.json.gz") == ("x", "shap_perturbation")
    for bad in ("reading_first.json.gz", "magic_default.json.gz", "reading_first_x.json"):
        with pytest.raises(DataError, match="not a"):
            live.parse_stored_name(bad)


def test_added_names_are_checked():
    with pytest.raises(InvalidArgumentError, match="'codegen' is one of the study's"):
        live.check_added({("codegen", "reading_first"): {}})
    with pytest.raises(InvalidArgumentError, match="mean5"):
        live.check_added({("mean5", "reading_first"): {}})
    with pytest.raises(UnknownNameError, match="unknown method 'magic'"):
        live.check_added({("mine", "magic"): {}})
    assert list(live.check_added({("mine", "bert_masking"): {}})) == [("mine", "bert_perturbation")]
    with pytest.raises(InvalidArgumentError, match="given twice"):
        live.merge_added([{("mine", "shap_perturbation"): {}}] * 2)


def test_a_folder_that_is_not_results(tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        live.read_added(tmp_path / "absent")
    with pytest.raises(DataError, match="neither"):
        live.read_added(tmp_path)
    (tmp_path / "reading_first_codegen.json.gz").write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match="one of the study's"):
        live.read_added(tmp_path)


def run(*args):
    env = {k: v for k, v in os.environ.items() if k != "CODEFOCUS_DATA"}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "codefocus.cli", *args], capture_output=True, text=True, env=env
    )


def test_cli_json_has_the_live_row(data_dir, mine):
    result = run(
        "reproduce", "kou2024", "--data", str(data_dir), "--add", str(mine),
        "--format", "json", "--methods", "reading_first", "--models", "codegen", "--k", "10",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    study, ours, ranking = records
    assert study["model"] == "codegen" and "live" not in study
    assert ours["model"] == "mine" and ours["live"] is True
    assert {k: ours[k] for k in study} == study | {"model": "mine"}  # the same numbers
    assert ours["f1_low"] <= ours["f1"] <= ours["f1_high"]
    assert ours["alpha_low"] <= ours["alpha"] <= ours["alpha_high"]
    assert ranking == {
        "model": "mine",
        "spearman": None,
        "spearman_low": None,
        "spearman_high": None,
        "methods": 1,
    }


def test_cli_text_shows_the_live_row(data_dir, mine):
    result = run(
        "reproduce", "kou2024", "--data", str(data_dir), "--add", str(mine),
        "--methods", "reading_first", "--models", "codegen", "--k", "5",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "mine (live)" in result.stdout and "Spearman" in result.stdout
    assert "fewer than 3 methods" in result.stdout


@pytest.mark.parametrize(
    "name,message",
    [(None, "is not a directory"), ("reading_first_gpt4.json.gz", "'gpt4' is one of the study's")],
)
def test_cli_bad_add_is_one_line(data_dir, tmp_path, name, message):
    path = tmp_path / "absent"
    if name:
        path = tmp_path
        (tmp_path / name).write_bytes(b"")
    result = run("reproduce", "kou2024", "--data", str(data_dir), "--add", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"codefocus: error: --add: {path}")
    assert message in lines[0] and "Traceback" not in result.stderr
