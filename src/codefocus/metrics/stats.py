"""Uncertainty for pooled alignment scores: bootstrap intervals over prompts and paired tests.

Both resample whole prompts (the unit of sampling in a benchmark), recomputing the pooled metric
from per-prompt sums, so one resample costs a few vector operations, not a re-alignment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from codefocus.errors import InvalidArgumentError
from codefocus.metrics.alignment import PromptCounts
from codefocus.serialization import JsonRecord

METRICS = ("precision", "recall", "f1", "alpha")


def _table(counts: Sequence[PromptCounts]) -> np.ndarray:
    """Columns: precision_sum, recall_sum, n_top, n_human, n00, n01, n10, n11."""
    return np.array(
        [[c.precision_sum, c.recall_sum, c.n_top, c.n_human, *c.pairs] for c in counts],
        dtype=np.float64,
    ).reshape(-1, 8)


def _pooled(sums: np.ndarray) -> dict[str, np.ndarray]:
    """Pooled metrics from column sums; ``sums`` has shape (..., 8)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(sums[..., 2] > 0, sums[..., 0] / sums[..., 2], 0.0)
        recall = np.where(sums[..., 3] > 0, sums[..., 1] / sums[..., 3], 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        n00, n01, n10, n11 = (sums[..., i] for i in range(4, 8))
        d = n01 + n10
        n0, n1 = 2 * n00 + d, 2 * n11 + d
        n = n0 + n1
        alpha = np.where((n0 > 0) & (n1 > 0), 1 - (n - 1) * (2 * d) / (2 * n0 * n1), np.nan)
    return {"precision": precision, "recall": recall, "f1": f1, "alpha": alpha}


@dataclass(frozen=True)
class Interval(JsonRecord):
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float


def bootstrap(
    counts: Sequence[PromptCounts],
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Percentile bootstrap intervals over prompts for precision, recall, F1 and alpha."""
    if not counts:
        raise InvalidArgumentError("bootstrap needs at least one prompt")
    if not 0 < confidence < 1:
        raise InvalidArgumentError("confidence must be between 0 and 1")
    table = _table(counts)
    rng = np.random.default_rng(seed)
    weights = np.stack(
        [
            np.bincount(rng.integers(0, len(table), len(table)), minlength=len(table))
            for _ in range(resamples)
        ]
    ).astype(np.float64)
    resampled = _pooled(weights @ table)
    point = _pooled(table.sum(axis=0))
    tail = (1 - confidence) / 2 * 100
    result = {}
    for name in METRICS:
        values = resampled[name][~np.isnan(resampled[name])]
        low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan)
        result[name] = Interval(float(point[name]), float(low), float(high))
    return result


@dataclass(frozen=True)
class PairedTest(JsonRecord):
    """Difference (a - b) of a pooled metric between two methods and its permutation p-value."""

    metric: str
    difference: float
    p_value: float
    permutations: int


def paired_permutation_test(
    a: Sequence[PromptCounts],
    b: Sequence[PromptCounts],
    metric: str = "f1",
    permutations: int = 2000,
    seed: int = 0,
) -> PairedTest:
    """Two-sided paired permutation test: swap the two methods' results within random prompts.

    Both sequences must hold the same prompts in the same order.
    """
    if metric not in METRICS:
        raise InvalidArgumentError(f"unknown metric {metric!r}: choose from {', '.join(METRICS)}")
    if len(a) != len(b) or not a:
        raise InvalidArgumentError(
            "a paired test needs the same, non-empty list of prompts for both"
        )
    table_a, table_b = _table(a), _table(b)
    observed = float(_pooled(table_a.sum(0))[metric] - _pooled(table_b.sum(0))[metric])
    rng = np.random.default_rng(seed)
    swap = rng.integers(0, 2, size=(permutations, len(a))).astype(np.float64)
    sums_a = (1 - swap) @ table_a + swap @ table_b
    sums_b = swap @ table_a + (1 - swap) @ table_b
    differences = _pooled(sums_a)[metric] - _pooled(sums_b)[metric]
    extreme = np.sum(np.abs(differences) >= abs(observed) - 1e-12)
    return PairedTest(metric, observed, float((extreme + 1) / (permutations + 1)), permutations)
