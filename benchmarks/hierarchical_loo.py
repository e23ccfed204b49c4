"""Hierarchical leave-one-out (``hierarchical_loo``, AttriBoT's scheme) against full
``loo_logprob``: seconds, scored prompts, speed-up and top-10 recall.

For each task, the model's greedy code once, then both methods on it with the same ``loo_mode``
(the substitutes, when substituting, are found once beforehand and timed for neither). Per task:
seconds and scored prompts (rows of the teacher-forced forwards, originals included) of each, the
speed-up in seconds and in scored prompts, and the top-10 recall: the share of full LOO's top-10
words that hierarchical's top-10 also has. Writes ``benchmarks/results/hierarchical_loo.json``
and ends with ``hierarchical loo: speed-up X× top-10 recall Y``.

Tasks: HumanEval tasks of 40-100 scored words (the study's scope), the shortest reference
solutions first.

    CODEFOCUS_DATA=../shared/data .venv/bin/python benchmarks/hierarchical_loo.py \\
        [--tasks 5 | --task-ids humaneval/0,humaneval/2] [--model default] \\
        [--loo-mode substitute] [--top 2] [--coverage 0] [--units line] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git  # noqa: E402  (this folder, not a package)

sys.path.pop(0)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "hierarchical_loo.json"
TOP = 10


class Counted:
    """A scorer that counts the prompts it scores."""

    def __init__(self, scorer) -> None:
        self.scorer, self.rows = scorer, 0

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        self.rows += len(prompts)
        return self.scorer(prompts)


def top_recall(full: np.ndarray, other: np.ndarray, k: int = TOP) -> float:
    """Share of ``full``'s top-k words (stable order) that ``other``'s top-k also has."""
    k = min(k, len(full))
    if k == 0:
        return float("nan")
    top = set(np.argsort(-full, kind="stable")[:k].tolist())
    return len(top & set(np.argsort(-other, kind="stable")[:k].tolist())) / k


def hierarchical_vs_full(
    model: Any,
    tasks: Sequence[Any],
    *,
    loo_mode: str = "substitute",
    options: Any = None,
    method_options: dict | None = None,
    k: int = TOP,
    completions: Sequence[str] | None = None,
) -> dict:
    """Full ``loo_logprob`` and ``hierarchical_loo`` on each of ``tasks`` (``Task``s or prompt
    texts) with ``model``: per task and in sum, seconds, scored prompts, speed-ups and top-``k``
    recall. ``options``: an ``AttributionOptions`` (protocol, scope; default ones);
    ``method_options``: for both methods (``hierarchical_top``, ``perturb_units``, ...);
    ``completions``: the code to explain per task (default: the model's greedy code)."""
    from codefocus.api import plan, prepare
    from codefocus.methods import resolve_methods
    from codefocus.methods.hierarchical import HierarchicalLoo
    from codefocus.methods.likelihood import LeaveOneOut, scorer_for
    from codefocus.options import AttributionOptions

    options = options or AttributionOptions()
    chosen = {**(method_options or {}), "loo_mode": loo_mode}
    full_method, hierarchical = resolve_methods("loo_logprob,hierarchical_loo", **chosen)
    assert isinstance(full_method, LeaveOneOut) and isinstance(hierarchical, HierarchicalLoo)
    rows: list[dict[str, Any]] = []
    given = list(completions) if completions is not None else [None] * len(tasks)
    for task, completion in zip(tasks, given, strict=True):
        planned = plan(task, "loo_logprob,hierarchical_loo", options, cache=None)
        prepared = prepare(model, planned, completion)
        setup = prepared.inputs.setup("hierarchical_loo")
        if loo_mode == "substitute":
            setup.substitutes()  # found once, timed for neither
        scorer = scorer_for(prepared.inputs, options.max_memory)
        full_count, hierarchical_count = Counted(scorer), Counted(scorer)
        started = time.perf_counter()
        full = np.asarray(full_method.word_scores(setup, full_count), dtype=np.float64)
        full_seconds = time.perf_counter() - started
        started = time.perf_counter()
        result = hierarchical.explain(setup, hierarchical_count)
        hierarchical_seconds = time.perf_counter() - started
        rows.append(
            {
                "task": getattr(task, "task_id", None) or str(task)[:60],
                "words": len(setup.words),
                "coarse_units": len(result.coarse_groups),
                "refined_units": len(result.refined),
                "full": {"seconds": full_seconds, "forwards": full_count.rows},
                "hierarchical": {
                    "seconds": hierarchical_seconds,
                    "forwards": hierarchical_count.rows,
                },
                "speedup": full_seconds / max(hierarchical_seconds, 1e-9),
                "forward_ratio": full_count.rows / hierarchical_count.rows,
                "top_recall": top_recall(full, np.asarray(result.scores), k),
            }
        )
    full_seconds = sum(r["full"]["seconds"] for r in rows)
    hierarchical_seconds = sum(r["hierarchical"]["seconds"] for r in rows)
    full_forwards = sum(r["full"]["forwards"] for r in rows)
    hierarchical_forwards = sum(r["hierarchical"]["forwards"] for r in rows)
    return {
        "model": getattr(model, "name", str(model)),
        "loo_mode": loo_mode,
        "method_options": hierarchical.options(),
        "k": k,
        "tasks": rows,
        "summary": {
            "full_seconds": full_seconds,
            "hierarchical_seconds": hierarchical_seconds,
            "speedup": full_seconds / max(hierarchical_seconds, 1e-9) if rows else float("nan"),
            "full_forwards": full_forwards,
            "hierarchical_forwards": hierarchical_forwards,
            "forward_ratio": full_forwards / hierarchical_forwards if rows else float("nan"),
            "top_recall": float(np.mean([r["top_recall"] for r in rows])) if rows else None,
        },
    }


def pick_tasks(count: int, min_words: int = 40, max_words: int = 100, model: Any = None) -> list:
    """HumanEval tasks of ``min_words``-``max_words`` scored words, the shortest reference
    solutions first."""
    from codefocus import load_tasks
    from codefocus.data.units import scoped_word_spans

    tasks = [
        t
        for t in load_tasks("humaneval")
        if min_words <= len(scoped_word_spans(t.prompt)) <= max_words
    ]

    def length(task) -> int:
        solution = task.reference_solution or ""
        return model.count_tokens(solution) if model is not None else len(solution)

    return sorted(tasks, key=length)[:count]


def main(argv: Sequence[str] | None = None) -> int:
    from codefocus.data.tasks import get_task
    from codefocus.options import AttributionOptions, placement_of

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--tasks", type=int, default=5, help="how many HumanEval tasks")
    parser.add_argument("--task-ids", default="", help="comma-separated references instead")
    parser.add_argument("--loo-mode", default="substitute", choices=("substitute", "delete"))
    parser.add_argument("--units", default="line", help="hierarchical_units")
    parser.add_argument("--top", type=int, default=2, help="hierarchical_top")
    parser.add_argument("--coverage", type=float, default=0.0, help="hierarchical_coverage")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    options = AttributionOptions(device=args.device, dtype=args.dtype)
    model = options.load_model(args.model)
    refs = [r.strip() for r in args.task_ids.split(",") if r.strip()]
    tasks = [get_task(r) for r in refs] if refs else pick_tasks(args.tasks, model=model)
    method_options = {
        "hierarchical_units": args.units,
        "hierarchical_top": args.top,
        "hierarchical_coverage": args.coverage,
    }
    report = hierarchical_vs_full(
        model, tasks, loo_mode=args.loo_mode, options=options, method_options=method_options
    )
    for row in report["tasks"]:
        print(
            f"{row['task']}: {row['words']} words, {row['refined_units']}/{row['coarse_units']} "
            f"units refined; full {row['full']['seconds']:.1f} s {row['full']['forwards']} "
            f"prompts, hierarchical {row['hierarchical']['seconds']:.1f} s "
            f"{row['hierarchical']['forwards']} prompts; top-{TOP} recall {row['top_recall']:.2f}",
            flush=True,
        )
    record = {
        "benchmark": "hierarchical_loo",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        **placement_of(model),  # the device and dtype the model ran in
        **report,
    }
    from codefocus.storage import write_text_atomic

    write_text_atomic(args.out, json.dumps(record, indent=1) + "\n")
    summary = report["summary"]
    print(
        f"scored prompts: full {summary['full_forwards']}, hierarchical "
        f"{summary['hierarchical_forwards']} ({summary['forward_ratio']:.2f}× fewer)"
    )
    print(
        f"hierarchical loo: speed-up {summary['speedup']:.2f}× "
        f"top-{TOP} recall {summary['top_recall']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
