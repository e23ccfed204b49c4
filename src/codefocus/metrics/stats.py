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
    resampled = _pooled(resample_weights(len(table), resamples, seed) @ table)
    point = _pooled(table.sum(axis=0))
    return {
        name: percentile_interval(float(point[name]), resampled[name], confidence)
        for name in METRICS
    }


def resample_weights(units: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, units): how often each unit is drawn in each bootstrap resample (drawn with
    replacement, one resample after the other from one seeded generator)."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [np.bincount(rng.integers(0, units, units), minlength=units) for _ in range(resamples)]
    ).astype(np.float64)


def percentile_interval(estimate: float, resampled: np.ndarray, confidence: float) -> Interval:
    """The percentile interval of the resampled statistics (undefined resamples left out)."""
    tail = (1 - confidence) / 2 * 100
    values = resampled[~np.isnan(resampled)]
    low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan)
    return Interval(estimate, float(low), float(high))


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of a plain mean over units (tasks, prompts), resampled
    exactly as ``bootstrap`` resamples prompts: the same seed draws the same resamples."""
    if len(values) == 0:
        raise InvalidArgumentError("bootstrap needs at least one value")
    if not 0 < confidence < 1:
        raise InvalidArgumentError("confidence must be between 0 and 1")
    column = np.asarray(values, dtype=np.float64)
    resampled = resample_weights(len(column), resamples, seed) @ column / len(column)
    return percentile_interval(float(column.mean()), resampled, confidence)


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
    swap = _swaps(len(a), permutations, seed)
    sums_a = (1 - swap) @ table_a + swap @ table_b
    sums_b = swap @ table_a + (1 - swap) @ table_b
    differences = _pooled(sums_a)[metric] - _pooled(sums_b)[metric]
    return PairedTest(metric, observed, _p_value(differences, observed), permutations)


def _swaps(units: int, permutations: int, seed: int) -> np.ndarray:
    """(permutations, units): 1 where a permutation swaps the two results of a unit."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(permutations, units)).astype(np.float64)


def _p_value(differences: np.ndarray, observed: float) -> float:
    """Two-sided permutation p-value, counting the observed arrangement as one permutation."""
    extreme = np.sum(np.abs(differences) >= abs(observed) - 1e-12)
    return float((extreme + 1) / (len(differences) + 1))


def paired_mean_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    permutations: int = 2000,
    seed: int = 0,
) -> PairedTest:
    """``paired_permutation_test`` for a plain mean (metric ``"mean"``): the same random swaps
    within units, the same p-value; swapping a unit's pair flips the sign of its difference.

    Both sequences hold one value per unit, in the same order.
    """
    if len(a) != len(b) or len(a) == 0:
        raise InvalidArgumentError("a paired test needs the same, non-empty list of units for both")
    column_a = np.asarray(a, dtype=np.float64)
    column_b = np.asarray(b, dtype=np.float64)
    observed = float(column_a.mean() - column_b.mean())
    swap = _swaps(len(column_a), permutations, seed)
    sums_a = (1 - swap) @ column_a + swap @ column_b
    sums_b = swap @ column_a + (1 - swap) @ column_b
    differences = (sums_a - sums_b) / len(column_a)
    return PairedTest("mean", observed, _p_value(differences, observed), permutations)
