"""AutoFocus (Bui et al., ASE 2019): does a classifier's attention on statements agree with what
changes its decision when a statement is deleted?

* a(s): the attention of the tokens inside statement s (nested statements included); for display a
  token takes the score of its innermost statement.
* delta(s) = c(p without s) - c(p): the change of the true class's probability when s (with its
  nested statements) is deleted, statements taken one at a time in post-order.
* minimal program: greedy multi-deletion in post-order that backtracks one step whenever the
  prediction flips, keeping the class with as few statements as possible.
* Pearson (and Spearman) correlation between a and -delta per program: high attention should go
  with a large drop in confidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from codefocus.lab.parsing import Parsed, delete, parse
from codefocus.serialization import JsonRecord


@dataclass
class ProgramAnalysis(JsonRecord):
    source: str
    label: int
    predicted: int
    confidence: float
    statements: list[str]
    attention: list[float]
    delta: list[float]
    pearson: float | None
    spearman: float | None
    minimal_program: str
    kept_statements: list[int]


def statement_attention(parsed: Parsed, token_attention: np.ndarray, token_spans) -> np.ndarray:
    scores = np.zeros(len(parsed.statements))
    for value, (start, end) in zip(token_attention, token_spans, strict=False):
        for index, statement in enumerate(parsed.statements):
            if statement.contains(start, end):
                scores[index] += value
    return scores


def deletion_effects(
    parsed: Parsed, label: int, classify: Callable[[list[str]], np.ndarray]
) -> tuple[float, np.ndarray]:
    """(confidence of the original, delta per statement in post-order)."""
    variants = [parsed.source.decode()] + [
        delete(parsed, {i}) for i in range(len(parsed.statements))
    ]
    probabilities = classify(variants)
    return float(probabilities[0, label]), probabilities[1:, label] - probabilities[0, label]


def minimal_program(
    parsed: Parsed, label: int, classify: Callable[[list[str]], np.ndarray]
) -> tuple[str, list[int]]:
    """Delete statements greedily in post-order; undo a deletion that flips the prediction."""
    deleted: set[int] = set()
    for index in range(len(parsed.statements)):
        trial = deleted | {index}
        if classify([delete(parsed, trial)])[0].argmax() == label:
            deleted = trial  # still the same class: keep the deletion
    kept = [i for i in range(len(parsed.statements)) if i not in deleted]
    return delete(parsed, deleted), kept


def _correlations(a: np.ndarray, d: np.ndarray) -> tuple[float | None, float | None]:
    from scipy.stats import pearsonr, spearmanr

    if len(a) < 3 or np.std(a) == 0 or np.std(d) == 0:
        return None, None
    return float(pearsonr(a, -d)[0]), float(spearmanr(a, -d)[0])


def analyse(code: str, label: int, model) -> ProgramAnalysis:
    parsed = parse(code, model.language)

    def classify(codes):
        return model.predict(codes)[0]

    probabilities, attentions = model.predict([code])
    encoded = model.vocabulary.encode(code, model.language, model.max_len)
    attention = statement_attention(parsed, attentions[0], encoded.spans)
    confidence, delta = deletion_effects(parsed, label, classify)
    pearson, spearman = _correlations(attention, delta)
    smallest, kept = minimal_program(parsed, label, classify)
    return ProgramAnalysis(
        code,
        label,
        int(probabilities[0].argmax()),
        confidence,
        [parsed.text(s) for s in parsed.statements],
        attention.tolist(),
        delta.tolist(),
        pearson,
        spearman,
        smallest,
        kept,
    )


def summary(analyses: list[ProgramAnalysis]) -> dict:
    values = np.array([a.pearson for a in analyses if a.pearson is not None])
    ranks = np.array([a.spearman for a in analyses if a.spearman is not None])
    histogram, edges = (
        np.histogram(values, bins=10, range=(-1, 1))
        if len(values)
        else (np.zeros(10), np.linspace(-1, 1, 11))
    )
    return {
        "programs": len(analyses),
        "with_correlation": int(len(values)),
        "pearson_mean": float(values.mean()) if len(values) else None,
        "pearson_sd": float(values.std()) if len(values) else None,
        "spearman_mean": float(ranks.mean()) if len(ranks) else None,
        "histogram": {"counts": histogram.tolist(), "edges": edges.tolist()},
    }
