"""The unbiased pass@k estimator (Chen et al., 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from codefocus.errors import InvalidArgumentError


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n - c, k) / C(n, k), computed as a stable product."""
    if k <= 0 or n < k or c < 0 or c > n:
        raise InvalidArgumentError(f"pass@k needs 0 < k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(
    totals: Sequence[int], corrects: Sequence[int], ks: Sequence[int] = (1, 10, 100)
) -> dict[str, float]:
    """Mean pass@k over tasks, for each k that every task has enough samples for."""
    result = {}
    for k in ks:
        if totals and all(n >= k for n in totals):
            values = [pass_at_k(n, c, k) for n, c in zip(totals, corrects, strict=True)]
            result[f"pass@{k}"] = float(np.mean(values))
    return result
