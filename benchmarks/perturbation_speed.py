"""BERT masking and SHAP on the packaged model: three ways to regenerate the perturbed prompts.

* sequential — the study's way: one ``generate()`` per perturbed prompt, to the full budget,
  cut at the function's end afterwards, nothing reused;
* batched+cached — the previous codefocus path: left-padded batches through the generation cache
  shared by the two methods, still decoding every prompt to the full budget;
* engine — the exact engine (``generation/draft.py``): decoding stops at the function's end, and the
  original completion is verified as a draft in one teacher-forced forward per batch, decoding
  only from the first divergence; the perturbed inputs of both methods go to it in one call
  (``methods.perturbation.prefetch``), so their decoding shares wide batches;
* llama.cpp (``--ways`` with ``llama.cpp``) — the same shortcuts on llama.cpp in-process over
  the packaged GGUF (``generation/llamacpp.py``): not exact (quantized kernels), so the script
  prints how many regenerations differ from the exact engine's, how many tasks fell back to
  transformers, and the largest score difference, on lines of their own.

The scores of the three transformers ways must be identical. Each run uses a fresh cache. The
script prints the seconds per task of each, the engine's time divided by one greedy generation of
the original, and ends with three lines: ``ratio engine/batched: X`` and
``ratio engine/sequential: Y`` (how many times faster the engine is) and
``max score difference: Z``.

    CODEFOCUS_DATA=../shared/data python benchmarks/perturbation_speed.py \\
        [--benchmark humaneval --tasks 3 --min-words 40 --max-words 100 --max-new-tokens N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import codefocus.api as api
from codefocus.data.tasks import load_tasks
from codefocus.data.units import scoped_word_spans
from codefocus.generation.cache import GenerationCache
from codefocus.generation.records import GenerationSettings
from codefocus.models.base import model_input_for
from codefocus.models.loading import load_model

METHODS = ["bert_masking", "shap"]


class Sequential:
    """The study's way: one generate() call per perturbed prompt, nothing reused."""

    def __init__(self, model):
        self.model = model

    def suggest_draft(self, *args) -> None:
        """Drafts are for the engine: the study's way has no use for one."""

    def __call__(self, inputs, budget, settings=None, original=None):
        return [
            self.model.generate([text], settings, max_new_tokens=budget)[0].completion
            for text in inputs
        ]


def run(model, task, settings, generation, way, folder, batch_size):
    model.early_stop = way in ("engine", "llama.cpp")
    cache = GenerationCache(Path(folder) / f"{way}-{task.task_id.replace('/', '_')}.sqlite")
    start = time.perf_counter()
    if way == "sequential":
        plain = api.CachedGenerator
        api.CachedGenerator = lambda m, c=None, b=8, e="plain": Sequential(m)
        try:
            result = api.attribute(
                model,
                task,
                METHODS,
                completion=generation.completion,
                completion_ids=generation.token_ids,
                settings=settings,
            )
        finally:
            api.CachedGenerator = plain
    else:
        result = api.attribute(
            model,
            task,
            METHODS,
            completion=generation.completion,
            completion_ids=generation.token_ids,
            settings=settings,
            cache=cache,
            batch_size=batch_size,
            engine={"engine": "draft", "llama.cpp": "llama.cpp"}.get(way, "plain"),
        )
    model.early_stop = True
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="humaneval")
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--min-words", type=int, default=40)
    parser.add_argument("--max-words", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument(
        "--ways",
        default="engine,batched+cached,sequential",
        help="comma-separated: engine (first: the reference), batched+cached, sequential, "
        "llama.cpp",
    )
    parser.add_argument(
        "--shortest",
        action="store_true",
        help="take the tasks with the shortest reference solutions (smallest study budgets)",
    )
    args = parser.parse_args()
    model = load_model("default")
    tasks = [
        t
        for t in load_tasks(args.benchmark)
        if t.human_spans and args.min_words <= len(scoped_word_spans(t.prompt)) <= args.max_words
    ]
    if args.shortest:
        tasks.sort(key=lambda t: model.count_tokens(t.reference_solution))
    tasks = tasks[: args.tasks]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    if args.skip_sequential and "sequential" in ways:
        ways.remove("sequential")
    assert ways[0] == "engine", "the exact engine comes first: the others are compared with it"
    _warm_up(model, tasks[0])  # once per process, outside every timing
    totals = dict.fromkeys(ways, 0.0)
    floor = 0.0
    teacher_forced = 0.0  # seconds for one teacher-forced pass of each changed suffix + completion
    worst = 0.0
    llama = {"regenerations": 0, "differ": 0, "worst": 0.0, "fallbacks": 0}
    with tempfile.TemporaryDirectory() as folder:
        for task in tasks:
            budget = settings.max_new_tokens or model.default_max_new_tokens(
                task.reference_solution
            )
            model._raw.clear()
            start = time.perf_counter()
            (generation,) = model.generate([model_input_for(task)], settings, budget)
            floor += time.perf_counter() - start  # one greedy generation of the original
            scores = {}
            for way in ways:
                # nothing memoised: the engine drafts from the completion's tokens, as a caller
                # with a stored generation (a resumed study) has them
                model._raw.clear()
                result, seconds = run(
                    model, task, settings, generation, way, folder, args.batch_size
                )
                totals[way] += seconds
                scores[way] = result.word_scores
                if way == "llama.cpp":  # a task llama.cpp did not reproduce ran on transformers
                    llama["fallbacks"] += (
                        "transformers" in result.settings["perturbation"]["engine"]
                    )
                print(
                    f"{task.task_id}: {len(result.words)} words, {way} {seconds:.1f} s", flush=True
                )
            teacher_forced += _teacher_forced_floor(
                model,
                model_input_for(task),
                _stored(Path(folder) / f"engine-{task.task_id.replace('/', '_')}.sqlite"),
            )
            for way in ways[1:]:
                for method in METHODS:
                    a = np.array(scores["engine"][method])
                    b = np.array(scores[way][method])
                    gap = float(np.max(np.abs(a - b))) if len(a) else 0.0
                    if way == "llama.cpp":
                        llama["worst"] = max(llama["worst"], gap)
                    else:
                        worst = max(worst, gap)
            if "llama.cpp" in ways:
                exact = _stored(Path(folder) / f"engine-{task.task_id.replace('/', '_')}.sqlite")
                fast = _stored(Path(folder) / f"llama.cpp-{task.task_id.replace('/', '_')}.sqlite")
                common = set(exact) & set(fast)
                llama["regenerations"] += len(common)
                llama["differ"] += sum(exact[t] != fast[t] for t in common)
    n = len(tasks)
    print(f"model {model.name}, {n} {args.benchmark} tasks, methods {', '.join(METHODS)}")
    for way, seconds in totals.items():
        print(f"seconds per task {way}: {seconds / n:.1f}")
    print(f"engine time / one greedy generation of the original: {totals['engine'] / floor:.1f}")
    print(
        "engine time / one teacher-forced pass of every changed suffix + completion: "
        f"{totals['engine'] / teacher_forced:.2f}"
    )
    if "batched+cached" in totals:  # what no exact engine can beat on this machine
        print(
            "batched+cached time / that teacher-forced pass (the most an exact engine could "
            f"gain): {totals['batched+cached'] / teacher_forced:.2f}"
        )
    if "llama.cpp" in totals:
        print(
            f"llama.cpp: {llama['differ']} of {llama['regenerations']} regenerations differ from "
            f"the exact engine's ({llama['fallbacks']} of {n} tasks fell back to transformers); "
            f"max score difference {llama['worst']:.3g}; "
            f"ratio llama.cpp/engine: {totals['engine'] / totals['llama.cpp']:.2f}"
        )
    if "batched+cached" in totals:
        print(f"ratio engine/batched: {totals['batched+cached'] / totals['engine']:.2f}")
    if "sequential" in totals:
        print(f"ratio engine/sequential: {totals['sequential'] / totals['engine']:.2f}")
    print(f"max score difference: {worst:.3g}")


def _teacher_forced_floor(model, original: str, stored: dict[str, str]) -> float:
    """Seconds that one teacher-forced forward over each regenerated input's tokens after its
    common prefix with the original, plus its completion, would take on this machine: the
    tokens counted, divided by the throughput of batched teacher-forced forwards (best of 3)."""
    from codefocus.generation.prefix import forward_from_prefix, shared_prefix

    def ids(text: str) -> list[int]:
        return model.tokenizer(text, add_special_tokens=False)["input_ids"]

    original_ids = ids(original)
    tokens = 0
    for text, completion in stored.items():
        prompt = ids(text)
        tokens += len(prompt) - shared_prefix(prompt, original_ids) + len(ids(completion))
    import torch

    rows = [original_ids] * 8
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        with torch.no_grad():
            forward_from_prefix(model, rows)
        best = min(best, time.perf_counter() - start)
    return tokens / (len(rows) * len(original_ids) / best)


def _warm_up(model, task) -> None:
    """Pay what any way pays once per process — reading the WordNet lexicon for substitutes,
    importing shap, hashing the model's weights for the cache key — so that the first way timed
    does not pay it alone."""
    import shap  # noqa: F401

    from codefocus.methods.setup import PerturbationSetup

    model.fingerprint  # noqa: B018 - computed once, then kept

    model_input = model_input_for(task)
    PerturbationSetup(
        prompt=task.prompt,
        suffix=model_input[len(task.prompt) :],
        completion="",
        generator=None,
        budget=1,
        settings=GenerationSettings(),
        model=model,
    ).substitutes()


def _stored(path: Path) -> dict[str, str]:
    """Input -> completion of every generation a run stored in its cache."""
    import sqlite3

    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT model_input, completion FROM generations_v2").fetchall())


if __name__ == "__main__":
    main()
