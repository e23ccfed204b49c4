"""Study protocols: what kou2024 / kou2024-paper / codefocus compute, recorded in every result,
scored by the very code that reproduces the study's Table 2; MBPP verdicts that can be true; and
generation batched across prompts equal to one prompt at a time."""

import dataclasses
import gzip
import json
import sqlite3

import numpy as np
import pytest

from codefocus.api import attribute
from codefocus.attribution import Attribution
from codefocus.data.labels import study_labels
from codefocus.data.tasks import load_tasks
from codefocus.errors import InvalidArgumentError, UnknownNameError
from codefocus.generation.records import GenerationSettings
from codefocus.methods.attention import CompatAttention, SelfAttention
from codefocus.methods.context import AttributionContext
from codefocus.metrics.alignment import PromptAlignment, pool
from codefocus.models.base import model_input_for
from codefocus.protocols import BUILTIN, get_protocol

PROMPT = 'def add(a, b):\n    """ Return the sum of a and b.\n    """\n'
COMPLETION = "    result = a + b\n    return result\n"


@pytest.fixture
def model(tiny_model):
    return tiny_model


# ---- the protocol object -------------------------------------------------------------------
def test_builtin_protocols_differ_where_the_issue_says():
    kou, paper, ours = BUILTIN["kou2024"], BUILTIN["kou2024-paper"], BUILTIN["codefocus"]
    assert (kou.units, kou.labels, kou.exclude_sink) == ("tokens", "stored", False)
    assert (kou.attention, kou.gradient_steps, kou.shap_background) == (
        "layer0-heads",
        "one",
        "single-mask",
    )
    assert (paper.attention, paper.gradient_steps, paper.units) == ("layers", "summed", "tokens")
    assert (ours.units, ours.labels, ours.exclude_sink, ours.substitutes) == (
        "words",
        "repaired",
        True,
        "embedding",
    )
    assert kou.comparable_with_study and not paper.comparable_with_study


def test_derive_and_parse():
    mine = get_protocol("kou2024:exclude_sink=true,units=words")
    assert mine.exclude_sink is True and mine.units == "words"
    assert mine.name == "kou2024+exclude_sink=True,units=words"
    assert get_protocol(mine.to_dict()) == mine  # a recorded protocol reads back
    assert get_protocol("kou2024").derive(units="tokens") is BUILTIN["kou2024"]
    with pytest.raises(UnknownNameError, match="unknown protocol 'kou'"):
        get_protocol("kou")
    with pytest.raises(InvalidArgumentError, match="unknown protocol field 'unit'"):
        get_protocol("kou2024:unit=words")
    with pytest.raises(InvalidArgumentError, match="units='letters'"):
        get_protocol("kou2024:units=letters")
    with pytest.raises(InvalidArgumentError, match="exclude_sink must be true or false"):
        get_protocol("kou2024:exclude_sink=maybe")


def test_method_semantics_per_protocol():
    kou = get_protocol("kou2024")
    reading = kou.method("reading_last")
    assert isinstance(reading, CompatAttention) and reading.heads == "last"
    assert reading.name == "reading_last"
    assert kou.method("saliency_coding").coding_steps == "one"
    assert kou.method("shap_perturbation").name == "shap_perturbation"
    paper = get_protocol("kou2024-paper")
    assert isinstance(paper.method("reading_last"), SelfAttention)
    assert paper.method("inputxgradient_coding").coding_steps == "summed"


# ---- the released semantics, against independent computations ----------------------------
def test_last_step_gradient_is_the_last_row_of_every_step(model):
    """CODING under kou2024 = the last generated token's vector: one backward, equal to the last
    row of the per-step computation (which is checked against captum in test_methods)."""
    every = AttributionContext(model, PROMPT, COMPLETION).gradients()
    last = AttributionContext(model, PROMPT, COMPLETION).last_step_gradients()
    for which in (0, 1):
        np.testing.assert_allclose(last[which][0], every[which][-1], rtol=1e-5, atol=1e-8)
    kou = attribute(
        model, PROMPT, "saliency_coding", completion=COMPLETION, protocol="kou2024", cache=None
    )
    np.testing.assert_allclose(kou.token_scores["saliency_coding"], every[0][-1], rtol=1e-5)


def test_released_attention_reads_one_row_of_layer0_heads_with_the_sink(model):
    import torch

    result = attribute(
        model, PROMPT, "reading_all,coding_first", completion=COMPLETION, protocol="kou2024"
    )
    context = AttributionContext(model, PROMPT, COMPLETION)
    ids = torch.tensor([context.prompt_ids + context.completion_ids])
    with torch.no_grad():
        attentions = model.model(ids, output_attentions=True).attentions[0][0]  # (H, S, S)
    P, G = context.P, context.G
    reading = attentions.sum(0)[P, :P].numpy()
    coding = attentions[0][P + G - 1, :P].numpy()
    np.testing.assert_allclose(result.token_scores["reading_all"], reading, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.token_scores["coding_first"], coding, rtol=1e-5, atol=1e-7)
    assert result.token_scores["reading_all"][0] > 0  # the first position is scored
    assert result.settings["protocol"]["name"] == "kou2024"


# ---- labels as stored, and one scorer ------------------------------------------------------
def test_stored_labels_are_the_studys(data_dir):
    labels = study_labels(data_dir)
    tasks = load_tasks("humaneval", data_dir, labels="stored")
    released = {t.task_id: t for t in load_tasks("humaneval", data_dir)}
    task = tasks[0]
    assert task.prompt in labels.spans and task.prompt != released[task.task_id].prompt
    assert [(s.start, s.end) for s in task.human_spans] == labels.spans[task.prompt]
    mbpp = {t.number: t for t in load_tasks("mbpp", data_dir, labels="stored")}
    assert mbpp[274].human_spans == ()  # no labels in the file
    first = mbpp[11]
    assert [(s.start, s.end) for s in first.human_spans] == labels.spans[first.prompt]


def test_live_result_scores_as_the_study_scorer_scores_it(data_dir, model):
    """Attribution.alignment under kou2024 equals the Table 2 scorer's on the exported pairs."""
    from codefocus.reproduce.kou2024 import prompt_units

    labels = study_labels(data_dir)
    for ref in ("humaneval/2", "mbpp/11"):
        result = attribute(
            model, ref, "reading_first,saliency_reading", protocol="kou2024", cache=None
        )
        assert result.prompt in labels.spans
        alignment = result.alignment([5, 10])
        for method in ("reading_first", "saliency_reading"):
            stored = {result.prompt: result.stored_pairs(method)}
            stored = json.loads(json.dumps(stored))  # as written to and read from a file
            (units,) = prompt_units(stored, labels, "live")
            denominator = labels.recall_denominator_for(stored)
            for k, mine in zip((5, 10), alignment[method], strict=True):
                theirs = pool([PromptAlignment(units).counts(k)], k, denominator)
                assert (mine.precision, mine.recall, mine.f1) == (
                    theirs.precision,
                    theirs.recall,
                    theirs.f1,
                )


@pytest.mark.slow
def test_study_export_in_the_stored_format(data_dir, tmp_path):
    from codefocus.studies.executors import run_study
    from codefocus.studies.export import stored_results, write_stored
    from codefocus.studies.runner import StudyConfig

    config = StudyConfig(
        models=("tiny",),
        methods=("reading_first", "inputxgradient_coding"),
        benchmarks=("humaneval", "mbpp"),
        task_ids=("HumanEval/0", "HumanEval/2", "Mbpp/11", "Mbpp/12"),
        protocol="kou2024",
        data_dir=str(data_dir),
    )
    summary = run_study(config, tmp_path / "study")
    assert summary.units_failed == 0
    results = stored_results(tmp_path / "study")
    assert set(results) == {("tiny", "reading_first"), ("tiny", "inputxgradient_coding")}
    labels = study_labels(data_dir)
    assert all(prompt in labels.spans for prompt in results[("tiny", "reading_first")])
    # the study's scorer on the export equals the live results' own alignment, pooled
    from codefocus.reproduce.live import compare
    from codefocus.studies.store import StudyStore

    comparison = compare(results, data_dir, ks=(10,), models=("codegen",), workers=1, resamples=50)
    store = StudyStore(tmp_path / "study" / "study.sqlite")
    attributions = [
        Attribution.from_dict(row["payload"])
        for row in store.rows("method:reading_first")
        if row["status"] == "done"
    ]
    store.close()
    counts = [PromptAlignment(a.prompt_units("reading_first")).counts(10) for a in attributions]
    pooled = pool(counts, 10, labels.recall_denominator_for(a.prompt for a in attributions))
    (live,) = [r for r in comparison.live if r.row.method == "reading_first"]
    assert (live.row.precision, live.row.recall, live.row.f1, live.row.alpha) == pytest.approx(
        (pooled.precision, pooled.recall, pooled.f1, pooled.alpha), abs=1e-12
    )
    written = write_stored(tmp_path / "study", tmp_path / "files")
    with gzip.open(tmp_path / "files" / "reading_first_tiny.json.gz", "rt") as handle:
        assert json.load(handle) == results[("tiny", "reading_first")]
    assert len(written) == 2
    with pytest.raises(InvalidArgumentError, match="exists"):
        write_stored(tmp_path / "study", tmp_path / "files")
    # a study under another protocol is not exported as the study's format
    other = StudyConfig(
        models=("tiny",), methods=("reading_first",), limit=1, data_dir=str(data_dir)
    )
    run_study(other, tmp_path / "ours")
    with pytest.raises(InvalidArgumentError, match="protocol codefocus"):
        stored_results(tmp_path / "ours")


def test_a_study_may_not_mix_protocols(data_dir, tmp_path):
    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig

    config = StudyConfig(
        models=("tiny",), methods=("reading_first",), limit=1, data_dir=str(data_dir)
    )
    run_study(config, tmp_path)
    with pytest.raises(InvalidArgumentError, match="protocol='codefocus'"):
        run_study(dataclasses.replace(config, protocol="kou2024"), tmp_path)


# ---- verdicts that can be true -------------------------------------------------------------
def _canonical_completion(task, tested_input: str) -> str | None:
    """The canonical solution written after the testable input's ``def <entry>(``."""
    header = f"def {task.entry_point}("
    code = task.reference_solution
    if not code.startswith(header) or not tested_input.endswith(header):
        return None
    return code[len(header) :]


def test_mbpp_canonical_solutions_pass_through_the_verdict_path(data_dir):
    from codefocus.execution.sandbox import Limits, run_python
    from codefocus.studies.runner import verdict_input, verdict_program

    tasks = [t for t in load_tasks("mbpp", data_dir) if t.human_spans][:40]
    tried = passed = 0
    for task in tasks:
        tested_input = verdict_input(task, model_input_for(task))
        assert tested_input != model_input_for(task)  # never the def function(): input
        completion = _canonical_completion(task, tested_input)
        if completion is None:
            continue
        tried += 1
        program, tests = verdict_program(task, tested_input, completion)
        passed += run_python(program, tests, Limits(timeout=10.0)).passed
    assert tried >= 25
    assert passed == tried
    # and a wrong answer fails
    task = tasks[0]
    tested_input = verdict_input(task, model_input_for(task))
    program, tests = verdict_program(task, tested_input, "*args):\n    return None\n")
    assert not run_python(program, tests, Limits(timeout=10.0)).passed


def test_a_study_verdict_on_mbpp_tests_a_testable_generation(data_dir, tmp_path, monkeypatch):
    """The verdict unit tests the completion of the evaluable input; a correct one passes."""
    from codefocus.models.loading import load_model
    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig, verdict_input
    from codefocus.studies.store import StudyStore

    task = next(
        t
        for t in load_tasks("mbpp", data_dir)
        if t.human_spans
        and _canonical_completion(t, verdict_input(t, model_input_for(t))) is not None
    )
    from codefocus.generation.draft import DraftVerifier

    tiny = load_model("tiny")
    tested = verdict_input(task, model_input_for(task))

    def correct(outputs):
        """The model answers the testable input with the canonical solution."""
        return [
            type(o)(o.model, o.model_input, _canonical_completion(task, tested), o.settings, None)
            if o.model_input == tested
            else o
            for o in outputs
        ]

    real_generate, real_many = type(tiny).generate, DraftVerifier.generate_many
    monkeypatch.setattr(
        type(tiny), "generate", lambda self, *a, **k: correct(real_generate(self, *a, **k))
    )
    monkeypatch.setattr(
        DraftVerifier, "generate_many", lambda self, *a, **k: correct(real_many(self, *a, **k))
    )
    monkeypatch.setattr("codefocus.models.loading.load_model", lambda name, *a, **k: tiny)
    config = StudyConfig(
        models=("tiny",),
        methods=("reading_first",),
        benchmarks=("mbpp",),
        task_ids=(task.task_id,),
        data_dir=str(data_dir),
    )
    run_study(config, tmp_path)
    store = StudyStore(tmp_path / "study.sqlite")
    verdict = store.get("tiny", task.task_id, "verdict")["payload"]
    store.close()
    assert verdict["generation"] == "evaluable"
    assert verdict["model_input"].endswith(f"def {task.entry_point}(")
    assert verdict["passed"] is True


@pytest.mark.slow
def test_verdict_policies_choose_which_tasks_are_tested(data_dir, tmp_path):
    """``attributed`` tests HumanEval (its attributed generation is testable) and skips MBPP
    under kou2024 without generating its evaluable input; ``none`` tests nothing."""
    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig
    from codefocus.studies.store import StudyStore

    mbpp = next(t for t in load_tasks("mbpp", data_dir) if t.human_spans)
    task_ids = ("HumanEval/0", mbpp.task_id)
    tested = {}
    for policy in ("all", "attributed", "none"):
        out = tmp_path / policy
        config = StudyConfig(
            models=("tiny",),
            methods=("reading_first",),
            benchmarks=("humaneval", "mbpp"),
            task_ids=task_ids,
            protocol="kou2024",
            verdicts=policy,
            data_dir=str(data_dir),
        )
        run_study(config, out)
        store = StudyStore(out / "study.sqlite")
        tested[policy] = {t for t in task_ids if store.get("tiny", t, "verdict") is not None}
        assert all(store.get("tiny", t, "method:reading_first") for t in task_ids)
        store.close()
        with sqlite3.connect(out / "generations.sqlite") as db:
            (tested[policy, "generations"],) = db.execute(
                "SELECT COUNT(*) FROM generations_v2"
            ).fetchone()
    assert tested["all"] == set(task_ids)
    assert tested["attributed"] == {"HumanEval/0"}
    assert tested["none"] == set()
    # the evaluable MBPP input is generated only when its verdict is asked for
    assert tested["all", "generations"] == 3
    assert tested["attributed", "generations"] == tested["none", "generations"] == 2
    with pytest.raises(InvalidArgumentError, match="verdicts"):
        StudyConfig(verdicts="some")


# ---- generation batched across prompts -----------------------------------------------------
def test_generation_across_prompts_equals_one_at_a_time(model, data_dir, tmp_path):
    from codefocus.generation.cache import GenerationCache
    from codefocus.studies.runner import generate_ahead

    tasks = [t for t in load_tasks("mbpp", data_dir) if t.human_spans][:6]
    tasks += [t for t in load_tasks("humaneval", data_dir) if t.human_spans][:3]
    requests = [(model_input_for(t), 8 + 3 * i) for i, t in enumerate(tasks)]
    cache = GenerationCache(tmp_path / "generations.sqlite")
    assert generate_ahead(model, cache, requests, batch_size=4) == len(requests)
    settings = GenerationSettings()
    for text, budget in requests:
        ((batched, ids),) = cache.get_many(
            model.fingerprint, [text], settings.to_dict(), budget
        ).values()
        (alone,) = model.generate([text], settings, max_new_tokens=budget, batch_size=1)
        assert (batched, ids) == (alone.completion, alone.token_ids)
    assert generate_ahead(model, cache, requests) == 0  # all cached now


def test_recorded_protocol_round_trips(model):
    result = attribute(model, PROMPT, "reading_first", completion=COMPLETION, protocol="kou2024")
    again = Attribution.from_json(result.to_json())
    assert get_protocol(again.settings["protocol"]) == BUILTIN["kou2024"]
    assert again.protocol_units == "tokens"
