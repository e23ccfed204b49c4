"""Robustness probes end to end: the sandbox runs every regenerated program for real.

The tiny random model never writes passing code, so the probes that break are exercised with a
second, deterministic model behind the same seam (``TextGenerator``): it writes the reference
solution while its prompt still holds the task's key word, and wrong code once that word is
gone — so a ranking that finds the key word breaks the task and most random words do not."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from codefocus.data.tasks import get_task
from codefocus.generation.records import Generation, GenerationSettings
from codefocus.models.base import token_limits
from codefocus.probes.analysis import analyze_probes, write_outputs
from codefocus.probes.runner import ProbeConfig, ProbeRun, load_probes, probe_words

HOSTILE = "<script>window.__pwned = 1</script>"


class KeywordModel:
    """Writes each task's reference solution unless its key word has left the prompt."""

    name = "keyword"
    fingerprint = "keyword-model-v1"

    def __init__(self, tasks, keys: dict[str, str]) -> None:
        self.tasks = tasks
        self.keys = keys

    def _task(self, text: str):
        # the original or a perturbed prompt: the task whose first line (mostly) survives
        return max(self.tasks, key=lambda t: _overlap(t.prompt, text))

    def generate(self, model_inputs, settings=None, max_new_tokens=None, batch_size=8):
        settings = settings or GenerationSettings()
        token_limits(len(model_inputs), settings, max_new_tokens)
        out = []
        for text in model_inputs:
            task = self._task(text)
            # the task text: between the docstring's opening and the example test
            described = text[4 : text.find("\nassert")]
            head = f"def {task.entry_point}("
            solution = task.reference_solution
            assert solution.startswith(head)
            arguments = solution[len(head) :].split("\n", 1)[0]
            if self.keys[task.task_id] in described:
                code = solution[len(head) :]
            else:
                code = arguments + "\n    return None  # " + HOSTILE + "\n"
            out.append(Generation(self.name, text, code, settings))
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def check_fits(self, prompt_tokens: int, new_tokens: int) -> None:
        return None

    def default_max_new_tokens(self, reference_solution=None) -> int:
        return 64


def _overlap(a: str, b: str) -> int:
    return len(set(a.split()) & set(b.split()))


@pytest.fixture(scope="module")
def tasks(data_dir):
    return [get_task(f"mbpp/{n}", data_dir) for n in (11, 12, 14, 17)]


def test_probes_break_where_the_key_word_goes(tmp_path, data_dir, tasks):
    # key words: one labelled word per task, so occlusion finds it (deleting it changes the code)
    keys = {}
    for task in tasks:
        words = probe_words(task)
        labelled = [task.prompt[w.start : w.end] for w in words if any(
            min(s.end, w.end) > max(s.start, w.start) for s in task.human_spans
        )]  # fmt: skip
        keys[task.task_id] = labelled[0]
    model = KeywordModel(tasks, keys)
    config = ProbeConfig(
        model="keyword",
        benchmark="mbpp",
        limit=None,
        rank_by=("occlusion", "programmers"),
        ks=(1, 2),
        substitutes="wordnet",
        random_seeds=(0, 1),
        data_dir=str(data_dir),
    )
    run = ProbeRun(config, tmp_path / "p", model=model)
    run.tasks = lambda: tasks  # these four tasks
    summary = run.run()
    assert summary.tasks == 4
    _, records, originals = load_probes(tmp_path / "p")
    passing = [t for t, ok in originals.items() if ok]
    assert passing, "the reference solutions pass in the sandbox"
    assert summary.passing == len(passing)
    for record in records:
        # a probe breaks exactly when the key word is no longer in the prompt (real sandbox)
        gone = keys[record.task_id] not in record.perturbed
        assert record.broke == gone, (record.ranking, record.words)
    analysis = analyze_probes(config, records, originals)
    occlusion = analysis.rate("occlusion", 1)
    assert occlusion.rate == 1.0  # occlusion ranks the key word first
    assert analysis.rate("lowest:occlusion", 1).rate < 1.0
    assert analysis.rate("random:0", 1).tasks == len(passing)
    assert occlusion.vs_random is not None and occlusion.vs_random > 0
    # resuming recomputes nothing and stores the same probes
    again = ProbeRun(config, tmp_path / "p", model=model)
    again.tasks = lambda: tasks
    again._scores = None  # would fail if a ranking were recomputed
    again.run()
    assert load_probes(tmp_path / "p")[1] == records
    summary_path = write_outputs(tmp_path / "p")[1]
    report = (tmp_path / "p" / "report.html").read_text()
    assert HOSTILE not in report and "&lt;script&gt;" in report
    broken = [
        json.loads(line) for line in (tmp_path / "p" / "breaking.jsonl").read_text().splitlines()
    ]
    assert broken and all(not b["passed"] for b in broken)
    assert all(p.exists() for p in summary_path)


def test_meaning_flips_are_marked_not_counted(tmp_path, data_dir, tasks):
    from codefocus.data.wordnet import load_wordnet
    from codefocus.probes.runner import _meaning

    wordnet = load_wordnet()
    assert _meaning("3", "4", wordnet)[0] == "number: 3 -> 4"
    assert _meaning("largest", "smallest", wordnet)[0] == "opposite: largest -> smallest"
    assert _meaning("increase", "decrease", wordnet)[0] == "antonym: increase -> decrease"
    assert _meaning("longest", "shortest", wordnet)[0] == "antonym: longest -> shortest"
    assert _meaning("large", "big", wordnet) == (None, True)
    assert _meaning("or", "and", wordnet)[0] == "opposite: or -> and"  # not in WordNet
    assert _meaning("list", "sequence", wordnet)[0] is None


@pytest.mark.slow
def test_probe_cli_on_the_tiny_model(tmp_path, data_dir):
    env = {**os.environ, "CODEFOCUS_DATA": str(data_dir)}
    out = tmp_path / "probe"
    done = subprocess.run(
        [sys.executable, "-m", "codefocus", "probe", "--model", "tiny", "--benchmark", "mbpp",
         "--limit", "2", "--rank-by", "reading_all,random", "--k", "1", "--out", str(out)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the tiny random model's code fails its tests: nothing to break, said plainly
    assert "2 tasks, 0 pass" in done.stdout
    assert json.loads((out / "summary.json").read_text())["passing"] == 0
    for args, message in (
        (["--k", "0"], "K must be positive"),
        (["--rank-by", "nope"], "unknown method 'nope'"),
        (["--benchmark", "apps"], "--benchmark"),
        (["--substitutes", "thesaurus"], "unknown substitute provider"),
    ):
        bad = subprocess.run(
            [sys.executable, "-m", "codefocus", "probe", "--model", "tiny", "--out",
             str(tmp_path / "x"), *args],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr


def _record(task: int, ranking: str, k: int, passed: bool, flipped: bool = False):
    from codefocus.probes.runner import ProbeRecord

    return ProbeRecord(
        f"Mbpp/{task}", ranking, k, [0], ["w"], ["v"], ["operator"],
        ["antonym: w -> v"] if flipped else [], 0, "p", "q", "a", "b", passed,
        "passed" if passed else "failed",
    )  # fmt: skip


def test_probe_statistics_are_metrics_stats():
    """The break-rate intervals and the paired test against random words are
    ``metrics.stats.bootstrap_mean`` and ``paired_mean_test`` (seed 0), not a copy of them."""
    import random

    import numpy as np

    from codefocus.metrics.stats import bootstrap_mean, paired_mean_test
    from codefocus.probes.analysis import BOOTSTRAP_RESAMPLES, PERMUTATIONS

    rng = random.Random(3)
    rankings = ("bert_masking", "random:0", "random:1", "lowest:bert_masking")
    records = [
        _record(t, r, k, rng.random() < (0.4 if r == "bert_masking" else 0.8), t == 3 and k == 1)
        for t in range(14)
        for r in rankings
        for k in (1, 3)
    ]
    config = ProbeConfig(rank_by=("bert_masking",))
    analysis = analyze_probes(config, records, {f"Mbpp/{t}": True for t in range(14)})
    broke = {(r.ranking, r.k, r.task_id): float(r.broke) for r in records if r.counted}
    for rate in analysis.rates:
        tasks = sorted({t for (r, k, t) in broke if (r, k) == (rate.ranking, rate.k)})
        values = [broke[(rate.ranking, rate.k, t)] for t in tasks]
        interval = bootstrap_mean(values, resamples=BOOTSTRAP_RESAMPLES, seed=0)
        assert (rate.rate, rate.low, rate.high) == (interval.estimate, interval.low, interval.high)
        if rate.ranking.startswith("random:"):
            assert rate.vs_random is None and rate.p_value is None
            continue
        base = [np.mean([broke[(r, rate.k, t)] for r in rankings[1:3]]) for t in tasks]
        test = paired_mean_test(values, base, permutations=PERMUTATIONS, seed=0)
        assert rate.p_value == test.p_value
        assert rate.vs_random == pytest.approx(test.difference, abs=1e-12)
    assert analysis.rate("bert_masking", 1).tasks == 13  # the meaning flip is left out
    # fewer than two tasks: no test; no task: no interval
    one = analyze_probes(config, [_record(0, r, 1, False) for r in rankings[:2]], {"Mbpp/0": True})
    assert one.rate("bert_masking", 1).p_value is None
    assert one.rate("bert_masking", 1).low == one.rate("bert_masking", 1).high == 1.0
