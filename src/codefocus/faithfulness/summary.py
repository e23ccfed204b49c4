"""Alignment beside faithfulness, per method over many tasks, with 95% bootstrap intervals.

F1@K against the programmers is pooled over the labelled tasks and resampled by prompt
(``metrics.stats.bootstrap``, the intervals the study table uses); the faithfulness figures are
plain means over tasks resampled the same way (``bootstrap_mean``, same seed, same resamples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codefocus.attribution import Attribution
from codefocus.errors import InvalidArgumentError
from codefocus.faithfulness.results import Faithfulness
from codefocus.metrics.stats import Interval, bootstrap, bootstrap_mean
from codefocus.serialization import JsonRecord


@dataclass
class MethodSummary(JsonRecord):
    """One method (or the ``random`` control) over the tasks evaluated."""

    method: str
    tasks: int
    aopc: Interval  # nats per code token
    aopc_sufficiency: Interval
    lowest_aopc: Interval | None = None  # the method's lowest-ranked words left out
    lds: Interval | None = None
    code_changed: float | None = None  # share of tasks whose greedy code changed
    f1: Interval | None = None  # F1@K against the programmers (labelled tasks)
    f1_tasks: int = 0
    seconds_per_task: float | None = None  # the method's own attribution time


def _interval(values: list[float], resamples: int, seed: int) -> Interval | None:
    kept = [v for v in values if v is not None and np.isfinite(v)]
    return bootstrap_mean(kept, resamples, seed=seed) if kept else None


def summarize(
    results: Sequence[Faithfulness],
    attributions: Sequence[Attribution] = (),
    k: int = 10,
    resamples: int = 1000,
    seed: int = 0,
) -> list[MethodSummary]:
    """Per method, in first-seen order, then ``random``: AOPC (per code token), AOPC of
    sufficiency, the lowest-ranked control, LDS, the share of changed code, and F1@``k`` of the
    matching ``attributions`` (same task ids) that carry programmer labels."""
    from codefocus.metrics.alignment import PromptAlignment

    if not results:
        raise InvalidArgumentError("no faithfulness results to summarize")
    by_task = {a.task_id: a for a in attributions}
    names = list(dict.fromkeys(n for r in results for n in r.methods))
    rows = []
    for name in [*names, "random"]:
        having = [r for r in results if name == "random" or name in r.methods]
        entries = [r.method(name) for r in having]
        aopc = _interval([r.aopc(name) for r in having], resamples, seed)
        sufficiency = _interval([r.aopc_sufficiency(name) for r in having], resamples, seed)
        assert aopc is not None and sufficiency is not None
        lowest = None
        if name != "random":
            lowest = _interval([r.lowest_aopc(name) for r in having], resamples, seed)
        changed = [e.code_changed for e in entries if e.code_changed is not None]
        summary = MethodSummary(
            method=name,
            tasks=len(having),
            aopc=aopc,
            aopc_sufficiency=sufficiency,
            lowest_aopc=lowest,
            lds=_interval([e.lds for e in entries], resamples, seed),  # type: ignore[misc]
            code_changed=float(np.mean(changed)) if changed else None,
        )
        labelled = [
            by_task[r.task_id]
            for r in having
            if r.task_id in by_task and by_task[r.task_id].human_spans
        ]
        if name != "random" and labelled:
            counts = [PromptAlignment(a.prompt_units(name)).counts(k) for a in labelled]
            summary.f1 = bootstrap(counts, resamples, seed=seed)["f1"]
            summary.f1_tasks = len(labelled)
            seconds = [a.timings[name] for a in labelled if name in a.timings]
            summary.seconds_per_task = float(np.mean(seconds)) if seconds else None
        rows.append(summary)
    return rows
