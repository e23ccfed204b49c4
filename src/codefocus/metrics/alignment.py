"""Alignment between a model's top-K units and programmers' labelled spans.

Definitions follow Kou et al. (FSE 2024), who follow Da San Martino et al. (2019):

* precision  P = sum_prompts sum_{h in H} sum_{m in TopK} |h ∩ m| / |m|  /  (number of top-K spans)
* recall     R = sum_prompts sum_{h in H} sum_{m in TopK} |h ∩ m| / |h|  /  (number of human spans)
* F1 = 2PR / (P + R), pooled over prompts (micro), and the same per prompt.
* Krippendorff's alpha (nominal) over every unit of every prompt, between "overlaps a human span"
  and "overlaps a top-K span".

All spans are half-open character intervals; partial overlap earns partial credit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from codefocus.errors import InvalidArgumentError
from codefocus.serialization import JsonRecord


@dataclass(frozen=True)
class PromptUnits:
    """One prompt's scored units and its human spans, as arrays ready for the metrics.

    ``unit_spans`` and ``human_spans`` are (n, 2) integer arrays of half-open intervals;
    ``human_categories`` gives each human span's category.
    """

    key: str
    unit_spans: np.ndarray
    scores: np.ndarray
    human_spans: np.ndarray
    human_categories: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        key: str,
        unit_spans: Iterable[tuple[int, int]],
        scores: Iterable[float],
        human_spans: Iterable[tuple[int, int]],
        human_categories: Iterable[str] = (),
    ) -> PromptUnits:
        units = np.asarray(list(unit_spans), dtype=np.int64).reshape(-1, 2)
        human = np.asarray(list(human_spans), dtype=np.int64).reshape(-1, 2)
        values = np.asarray(list(scores), dtype=np.float64)
        if len(values) != len(units):
            raise InvalidArgumentError(f"{key}: {len(units)} units but {len(values)} scores")
        categories = tuple(human_categories)
        if categories and len(categories) != len(human):
            raise InvalidArgumentError(
                f"{key}: {len(human)} human spans but {len(categories)} categories"
            )
        return cls(key, units, values, human, categories)


def check_k(k: int) -> int:
    if not isinstance(k, int | np.integer) or k <= 0:
        raise InvalidArgumentError(f"K must be positive (an integer), got {k!r}")
    return int(k)


def top_k_indices(scores: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """Indices of the K highest scores; ties go to the earlier unit; NaN ranks last.

    The earlier-unit rule is the one the original study's Python ``sorted`` applied.
    """
    check_k(k)
    values = np.asarray(scores, dtype=np.float64)
    keyed = np.where(np.isnan(values), -np.inf, values)
    order = np.argsort(-keyed, kind="stable")
    return order[:k]


def overlap_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a_i ∩ b_j| for every pair of half-open spans (rows of ``a`` by rows of ``b``)."""
    a = np.asarray(a, dtype=np.int64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.int64).reshape(-1, 2)
    lo = np.maximum(a[:, None, 0], b[None, :, 0])
    hi = np.minimum(a[:, None, 1], b[None, :, 1])
    return np.clip(hi - lo, 0, None)


@dataclass(frozen=True)
class PromptCounts:
    """Per-prompt sums from which every pooled metric is computed (and bootstrapped)."""

    precision_sum: float
    recall_sum: float
    n_top: int
    n_human: int
    # unit-level agreement counts: (human flag, model flag) = 00, 01, 10, 11
    pairs: tuple[int, int, int, int]
    covered_human: int
    category_recall_sum: dict[str, float] = field(default_factory=dict)
    category_count: dict[str, int] = field(default_factory=dict)


class PromptAlignment:
    """Precomputed overlaps and ranking for one prompt, so that each K costs a few indexed sums.

    Every K reads the same stable ranking (``top_k_indices``), the same elementwise terms and the
    rank at which each unit and each human span is first covered, so the counts equal those of
    computing each K from scratch exactly (``tests/test_metrics.py`` compares them bit for bit).
    """

    def __init__(self, prompt: PromptUnits) -> None:
        self.prompt = prompt
        overlaps = overlap_matrix(prompt.human_spans, prompt.unit_spans).astype(float)
        self.unit_lengths = np.maximum(prompt.unit_spans[:, 1] - prompt.unit_spans[:, 0], 1)
        self.human_lengths = prompt.human_spans[:, 1] - prompt.human_spans[:, 0]
        self.human_flags = (overlaps > 0).any(axis=0)
        # |h ∩ m| / |m| and |h ∩ m| / |h| (0 for an empty human span), per (human, unit)
        self.precision_terms = overlaps / self.unit_lengths
        with np.errstate(divide="ignore", invalid="ignore"):
            self.recall_terms = np.where(
                self.human_lengths[:, None] > 0, overlaps / self.human_lengths[:, None], 0.0
            )
        keyed = np.where(np.isnan(prompt.scores), -np.inf, prompt.scores.astype(np.float64))
        self.order = np.argsort(-keyed, kind="stable")
        n = len(self.order)
        # rank (position in ``order``) at which each unit / human span is first overlapped by a
        # ranked unit; n when never: "covered at K" is then ``rank < K``
        self.unit_cover_rank = _unit_cover_rank(prompt.unit_spans, self.order)
        self.human_cover_rank = _first_true(overlaps[:, self.order] > 0, n)
        self.n_human_units = int(self.human_flags.sum())

    def counts(self, k: int) -> PromptCounts:
        check_k(k)
        top = self.order[:k]
        precision_sum = float(self.precision_terms[:, top].sum())
        per_human = self.recall_terms[:, top].sum(axis=1)
        model_flags = self.unit_cover_rank < len(top)
        h, m = self.human_flags, model_flags
        n11 = int((h & m).sum())
        n01 = int(m.sum()) - n11
        n10 = self.n_human_units - n11
        n00 = len(self.unit_lengths) - n11 - n01 - n10
        category_sum: dict[str, float] = {}
        category_count: dict[str, int] = {}
        for index, category in enumerate(self.prompt.human_categories):
            category_sum[category] = category_sum.get(category, 0.0) + float(per_human[index])
            category_count[category] = category_count.get(category, 0) + 1
        return PromptCounts(
            precision_sum=precision_sum,
            recall_sum=float(per_human.sum()),
            n_top=len(top),
            n_human=len(self.human_lengths),
            pairs=(n00, n01, n10, n11),
            covered_human=int((self.human_cover_rank < len(top)).sum()),
            category_recall_sum=category_sum,
            category_count=category_count,
        )


def _unit_cover_rank(spans: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Per unit, the rank of the first ranked unit that overlaps it (len(order) when none).

    Units that follow each other without overlapping (a tokenizer's, the words of a prompt) are
    overlapped only by themselves, so a unit's rank is its own (a zero-length one never is):
    the n x n overlap matrix is only needed when units overlap."""
    n = len(order)
    starts, ends = spans[:, 0], spans[:, 1]
    if n and bool(np.all(starts[1:] >= ends[:-1])):
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        return np.where(ends > starts, rank, n)
    return _first_true((overlap_matrix(spans, spans) > 0)[:, order], n)


def _first_true(matrix: np.ndarray, default: int) -> np.ndarray:
    """Per row, the index of the first True column; ``default`` for a row without one."""
    if matrix.shape[1] == 0:
        return np.full(matrix.shape[0], default, dtype=np.int64)
    first = matrix.argmax(axis=1)
    return np.where(matrix.any(axis=1), first, default)


def f1_score(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def alpha_from_pairs(n00: float, n01: float, n10: float, n11: float) -> float:
    """Krippendorff's alpha (nominal) for two coders and binary values, from pair counts.

    With the coincidence matrix o: o_00 = 2 n00, o_11 = 2 n11, o_01 = o_10 = n01 + n10, marginals
    n_0, n_1 and n = n_0 + n_1 pairable values, alpha = 1 - (n - 1) (o_01 + o_10) / (2 n_0 n_1).
    Equal to ``krippendorff.alpha(..., level_of_measurement="nominal")`` (tested); NaN when
    every value is the same (no variation to agree on).
    """
    disagreements = n01 + n10
    n0 = 2 * n00 + disagreements
    n1 = 2 * n11 + disagreements
    n = n0 + n1
    if n0 == 0 or n1 == 0:
        return float("nan")
    return float(1 - (n - 1) * (2 * disagreements) / (2 * n0 * n1))


def cohen_kappa_from_pairs(n00: float, n01: float, n10: float, n11: float) -> float:
    """Cohen's kappa for two binary raters from their 2x2 table; NaN when chance agreement is 1."""
    total = n00 + n01 + n10 + n11
    if total == 0:
        return float("nan")
    observed = (n00 + n11) / total
    first_yes = (n10 + n11) / total
    second_yes = (n01 + n11) / total
    expected = first_yes * second_yes + (1 - first_yes) * (1 - second_yes)
    if expected == 1:
        return float("nan")
    return float((observed - expected) / (1 - expected))


@dataclass(frozen=True)
class AlignmentScores(JsonRecord):
    """Pooled alignment of one method at one K over a set of prompts."""

    k: int
    precision: float
    recall: float
    f1: float
    alpha: float
    kappa: float
    coverage: float
    per_category_recall: dict[str, float]
    n_prompts: int
    n_top: int
    n_human: int


def pool(
    counts: Sequence[PromptCounts], k: int, recall_denominator: int | None = None
) -> AlignmentScores:
    """Pool per-prompt counts into micro-averaged scores.

    ``recall_denominator`` overrides the number of human spans (the original study divided by
    every label row, including rows of duplicate prompts it did not score; see reproduce).
    """
    n_top = sum(c.n_top for c in counts)
    n_human = sum(c.n_human for c in counts)
    denominator = recall_denominator if recall_denominator is not None else n_human
    precision = sum(c.precision_sum for c in counts) / n_top if n_top else 0.0
    recall = sum(c.recall_sum for c in counts) / denominator if denominator else 0.0
    pairs = np.sum([c.pairs for c in counts], axis=0) if counts else np.zeros(4)
    category_sum: dict[str, float] = {}
    category_count: dict[str, int] = {}
    for c in counts:
        for name, value in c.category_recall_sum.items():
            category_sum[name] = category_sum.get(name, 0.0) + value
            category_count[name] = category_count.get(name, 0) + c.category_count[name]
    return AlignmentScores(
        k=k,
        precision=precision,
        recall=recall,
        f1=f1_score(precision, recall),
        alpha=alpha_from_pairs(*pairs),
        kappa=cohen_kappa_from_pairs(*pairs),
        coverage=sum(c.covered_human for c in counts) / n_human if n_human else 0.0,
        per_category_recall={
            name: category_sum[name] / category_count[name] for name in sorted(category_sum)
        },
        n_prompts=len(counts),
        n_top=n_top,
        n_human=n_human,
    )


def align(
    prompts: Sequence[PromptUnits],
    ks: Sequence[int] = (5, 10, 20),
    recall_denominator: int | None = None,
) -> list[AlignmentScores]:
    """Alignment scores of one method over ``prompts`` for each K (pooled, micro)."""
    for k in ks:
        check_k(k)
    prepared = [PromptAlignment(p) for p in prompts]
    return [pool([p.counts(k) for p in prepared], k, recall_denominator) for k in ks]


def per_prompt(prompts: Sequence[PromptUnits], k: int) -> list[AlignmentScores]:
    """The same scores computed for each prompt alone."""
    check_k(k)
    return [pool([PromptAlignment(p).counts(k)], k) for p in prompts]


def unit_flags(unit_spans: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """1 for each unit that overlaps any of ``spans`` (the per-unit vectors behind alpha)."""
    return (overlap_matrix(spans, unit_spans) > 0).any(axis=0).astype(int)
