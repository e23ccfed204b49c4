"""BERT masking and SHAP: batched + cached generation against the study's sequential way.

For each task: the sequential baseline regenerates every perturbed prompt one at a time with no
cache (as the study did); codefocus generates them in left-padded batches through the SQLite
generation cache shared by the methods (BERT masking's single-word variants recur in SHAP's
coalitions). The scores must be the same; the script prints seconds and, on their own lines,
``ratio ...`` figures.

    CODEFOCUS_DATA=../shared/data python benchmarks/perturbation_speed.py \
        [--benchmark humaneval --tasks 5 --max-new-tokens N --batch-size 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from codefocus.api import attribute
from codefocus.data.tasks import load_tasks
from codefocus.models.base import GenerationSettings
from codefocus.models.cache import GenerationCache
from codefocus.models.loading import load_model

METHODS = ["bert_masking", "shap"]


class Sequential:
    """The study's way: one generate() call per perturbed prompt, nothing reused."""

    def __init__(self, model):
        self.model = model

    def __call__(self, inputs, budget, settings=None):
        return [
            self.model.generate([text], settings, max_new_tokens=budget)[0].completion
            for text in inputs
        ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--benchmark", default="humaneval")
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    model = load_model("default")
    tasks = [t for t in load_tasks(args.benchmark) if t.human_spans][: args.tasks]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    totals = {"sequential": 0.0, "batched+cached": 0.0}
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        cache = GenerationCache(Path(folder) / "cache.sqlite")
        for task in tasks:
            original = attribute(model, task, [], settings=settings).generated
            start = time.perf_counter()
            fast = attribute(
                model,
                task,
                METHODS,
                completion=original,
                settings=settings,
                cache=cache,
                batch_size=args.batch_size,
            )
            totals["batched+cached"] += time.perf_counter() - start
            import codefocus.api as api

            plain = api.CachedGenerator
            api.CachedGenerator = lambda m, c=None, b=8: Sequential(m)  # the baseline generator
            try:
                start = time.perf_counter()
                slow = attribute(model, task, METHODS, completion=original, settings=settings)
                totals["sequential"] += time.perf_counter() - start
            finally:
                api.CachedGenerator = plain
            for method in METHODS:
                a, b = np.array(fast.word_scores[method]), np.array(slow.word_scores[method])
                worst = max(worst, float(np.max(np.abs(a - b))) if len(a) else 0.0)
            print(f"{task.task_id}: {len(fast.words)} words")
        print(f"cache hits {cache.hits}, misses {cache.misses}")
    n = len(tasks)
    print(f"model {model.name}, {n} {args.benchmark} tasks, methods {', '.join(METHODS)}")
    for name, seconds in totals.items():
        print(f"seconds per task {name}: {seconds / n:.1f}")
    print(f"max score difference batched vs sequential: {worst:.3g}")
    print(
        f"ratio batched+cached vs sequential: {totals['sequential'] / totals['batched+cached']:.2f}"
    )


if __name__ == "__main__":
    main()
