"""Classification measures for the memorization study: macro-F1, sub-token F1 of method names,
and the Gini coefficient of per-sample losses."""

from __future__ import annotations

import re

import numpy as np


def gini(values) -> float:
    """G = sum_i sum_j |x_i - x_j| / (2 n sum_i x_i), in O(n log n) by sorting.

    With x sorted ascending (1-based rank i), sum_i sum_j |x_i - x_j| = 2 sum_i (2i - n - 1) x_i.
    0 when every sample has the same loss; near 1 when one sample carries all of it.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    total = x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(np.sum((2 * ranks - n - 1) * x) / (n * total))


def macro_f1(truth, predicted, classes: int) -> float:
    """Unweighted mean over classes of F1 (a class absent from both counts as F1 0, as sklearn)."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    scores = []
    for c in range(classes):
        tp = np.sum((truth == c) & (predicted == c))
        fp = np.sum((truth != c) & (predicted == c))
        fn = np.sum((truth == c) & (predicted != c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def subtokens(name: str) -> list[str]:
    """``getFileName`` / ``get_file_name`` -> ['get', 'file', 'name']."""
    words = []
    for part in re.split(r"[_\W]+", name):
        words += re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|[A-Z]+|\d+", part)
    return [w.lower() for w in words if w]


def subtoken_f1(truth: list[str], predicted: list[str]) -> float:
    """Sub-token F1 of predicted method names (code2vec's measure, counts summed over samples)."""
    tp = fp = fn = 0
    for true_name, predicted_name in zip(truth, predicted, strict=True):
        want, got = subtokens(true_name), subtokens(predicted_name)
        remaining = list(want)
        for token in got:
            if token in remaining:
                remaining.remove(token)
                tp += 1
            else:
                fp += 1
        fn += len(remaining)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
