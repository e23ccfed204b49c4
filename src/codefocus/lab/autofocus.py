"""AutoFocus (Bui et al., ASE 2019): does a classifier's attention on statements agree with what
changes its decision when a statement is deleted?

* a(s): the attention of the tokens inside statement s (nested statements included); for display a
  token takes the score of its innermost statement.
* delta(s) = c(p without s) - c(p): the change of the true class's probability when s (with its
  nested statements) is deleted, statements taken one at a time in post-order. Negative when the
  deletion costs confidence.
* minimal program: greedy multi-deletion in post-order that backtracks one step whenever the
  prediction flips, keeping the class with as few statements as possible. Its statistics: the
  share of statements it keeps, and whether the model, given the minimal program as source text
  (re-parsed, for the GGNN a graph built afresh), still predicts what it predicted for the whole.
* Pearson (and Spearman) correlation between a and -delta per program.
* the size control: a big statement has both more attention mass and a bigger deletion effect,
  so per program also the correlation of -delta with the statement's size alone (AST nodes for
  the GGNN, tokens for the transformer) and the partial correlation of a and -delta given size.

The sign convention: we correlate a(s) with -delta(s) = c(p) - c(p without s), the *drop* in
confidence, so that a positive correlation means "attention goes with what the classifier needs"
(statements whose deletion costs confidence carry attention), which is the claim AutoFocus makes
and the reading under which its reported positive correlation makes sense. The paper's literal
definition of the deletion effect has the opposite sign to this -delta; correlating a with it as
written would flip the sign of every correlation here.

Grey levels (``grey_levels``): ``program`` scales |score| by the program's largest |score| (the
darkest statement is black in every program); ``absolute`` draws |score| on the fixed 0-1 scale,
clipped at 1, as the paper does, so shades compare across programs.

Two encoders: the token transformer (``classifier.py``) deletes statements from the text and
re-parses; the GGNN (``ggnn.py``) deletes a statement's subgraph from the program graph, as
AutoFocus did, and sums node attention over the statement's subtree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
    sizes: list[int] = field(default_factory=list)  # AST nodes (GGNN) or tokens (transformer)
    size_pearson: float | None = None  # Pearson(size, -delta)
    partial: float | None = None  # partial correlation of a and -delta given size
    encoder: str = "transformer"
    # the class predicted for the minimal program as source text; None: no search was run (then
    # minimal_program is "" and kept_statements empty)
    minimal_predicted: int | None = None

    @property
    def minimal_searched(self) -> bool:
        return self.minimal_predicted is not None

    @property
    def kept_share(self) -> float | None:
        """The share of statements the minimal program keeps (None: not searched, or none)."""
        if not self.minimal_searched or not self.statements:
            return None
        return len(self.kept_statements) / len(self.statements)


GREY_SCALES = ("program", "absolute")


def grey_levels(scores, scale: str = "program") -> np.ndarray:
    """Grey levels in [0, 1] (0 white, 1 black) for per-statement scores: ``program`` is
    |score| / the program's largest |score|; ``absolute`` is |score| clipped at 1 (the paper's
    fixed 0-1 scale: a(s) and -delta(s) are probabilities or their differences)."""
    values = np.abs(np.asarray(scores, dtype=float))
    if scale == "absolute":
        return np.minimum(values, 1.0)
    if scale != "program":
        from codefocus.errors import InvalidArgumentError

        raise InvalidArgumentError(f"unknown grey scale {scale!r}: use {', '.join(GREY_SCALES)}")
    top = values.max() if len(values) and values.max() > 0 else 1.0
    return values / top


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
    """(confidence of the original, delta per statement in post-order), deleting from the text."""
    return _effects(len(parsed.statements), label, lambda sets: classify(_texts(parsed, sets)))


def _texts(parsed: Parsed, deletions: list[set[int]]) -> list[str]:
    return [parsed.source.decode() if not d else delete(parsed, d) for d in deletions]


def _effects(
    count: int, label: int, classify_deleted: Callable[[list[set[int]]], np.ndarray]
) -> tuple[float, np.ndarray]:
    probabilities = classify_deleted([set()] + [{i} for i in range(count)])
    return float(probabilities[0, label]), probabilities[1:, label] - probabilities[0, label]


def minimal_program(
    parsed: Parsed, label: int, classify: Callable[[list[str]], np.ndarray]
) -> tuple[str, list[int]]:
    """Delete statements greedily in post-order; undo a deletion that flips the prediction."""
    kept = _minimal(len(parsed.statements), label, lambda sets: classify(_texts(parsed, sets)))
    deleted = set(range(len(parsed.statements))) - set(kept)
    return delete(parsed, deleted), kept


def _minimal(
    count: int, label: int, classify_deleted: Callable[[list[set[int]]], np.ndarray]
) -> list[int]:
    deleted: set[int] = set()
    for index in range(count):
        trial = deleted | {index}
        if classify_deleted([trial])[0].argmax() == label:
            deleted = trial  # still the same class: keep the deletion
    return [i for i in range(count) if i not in deleted]


def _correlations(a: np.ndarray, d: np.ndarray) -> tuple[float | None, float | None]:
    from scipy.stats import pearsonr, spearmanr

    if len(a) < 3 or np.std(a) == 0 or np.std(d) == 0:
        return None, None
    return float(pearsonr(a, -d)[0]), float(spearmanr(a, -d)[0])


def partial_correlation(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float | None:
    """Pearson correlation of a and b with c held fixed (from the three pairwise ones)."""
    if len(a) < 4 or min(np.std(a), np.std(b), np.std(c)) == 0:
        return None
    r = np.corrcoef(np.vstack([a, b, c]))
    r_ab, r_ac, r_bc = r[0, 1], r[0, 2], r[1, 2]
    denominator = np.sqrt((1 - r_ac**2) * (1 - r_bc**2))
    if denominator < 1e-12:
        return None
    return float((r_ab - r_ac * r_bc) / denominator)


def _size_control(a: np.ndarray, d: np.ndarray, sizes: np.ndarray):
    size_r, _ = _correlations(sizes.astype(float), d)
    return size_r, partial_correlation(a, -d, sizes.astype(float))


def analyse(code: str, label: int, model, minimal: bool = True) -> ProgramAnalysis:
    """AutoFocus on one program, with the model's own encoder; ``minimal=False`` skips the
    minimal-program search (one classification per statement, one after the other: the slow
    part on long programs)."""
    parsed = parse(code, model.language)
    if getattr(model, "encoder", "transformer") == "ggnn":
        # on the program graph: a(s) is the node attention summed over the statement's subtree;
        # a statement is deleted by removing its subgraph (not by re-parsing text)
        graph = model.graph(code)
        if len(graph.statement_nodes) != len(parsed.statements):
            raise ValueError("graph and parse disagree on the statements")  # a bug, never data

        def classify_deleted(sets: list[set[int]]) -> np.ndarray:
            return model.predict_graphs([graph.delete_statements(d) for d in sets])[0]

        probabilities, attentions = model.predict_graphs([graph])
        attention = np.array([attentions[0][nodes].sum() for nodes in graph.statement_nodes])
        sizes = np.array([len(nodes) for nodes in graph.statement_nodes])
    else:

        def classify_deleted(sets: list[set[int]]) -> np.ndarray:
            return model.predict(_texts(parsed, sets))[0]

        probabilities, attentions = model.predict([code])
        encoded = model.vocabulary.encode(code, model.language, model.max_len)
        attention = statement_attention(parsed, attentions[0], encoded.spans)
        sizes = np.array(
            [sum(s.contains(a, b) for a, b in encoded.spans) for s in parsed.statements]
        )
    confidence, delta = _effects(len(parsed.statements), label, classify_deleted)
    pearson, spearman = _correlations(attention, delta)
    size_r, partial = _size_control(attention, delta, sizes)
    smallest, kept, minimal_predicted = "", [], None
    if minimal:
        kept = _minimal(len(parsed.statements), label, classify_deleted)
        deleted = set(range(len(parsed.statements))) - set(kept)
        smallest = delete(parsed, deleted) if deleted else code
        minimal_predicted = int(model.predict([smallest])[0][0].argmax())
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
        sizes.tolist(),
        size_r,
        partial,
        getattr(model, "encoder", "transformer"),
        minimal_predicted,
    )


def summary(analyses: list[ProgramAnalysis]) -> dict:
    values = np.array([a.pearson for a in analyses if a.pearson is not None])
    ranks = np.array([a.spearman for a in analyses if a.spearman is not None])
    histogram, edges = (
        np.histogram(values, bins=10, range=(-1, 1))
        if len(values)
        else (np.zeros(10), np.linspace(-1, 1, 11))
    )
    sized = np.array([a.size_pearson for a in analyses if a.size_pearson is not None])
    deltas = np.array([d for a in analyses for d in a.delta])
    partial = np.array([a.partial for a in analyses if a.partial is not None])
    searched = [a for a in analyses if a.minimal_searched]
    shares = [a.kept_share for a in searched if a.kept_share is not None]
    return {
        "programs": len(analyses),
        "with_correlation": int(len(values)),
        "pearson_mean": float(values.mean()) if len(values) else None,
        "pearson_sd": float(values.std()) if len(values) else None,
        "spearman_mean": float(ranks.mean()) if len(ranks) else None,
        "size_pearson_mean": float(sized.mean()) if len(sized) else None,
        "partial_mean": float(partial.mean()) if len(partial) else None,
        "partial_sd": float(partial.std()) if len(partial) else None,
        # how much a single deletion moves the classifier at all: near 0 when it is saturated
        "delta_median_abs": float(np.median(np.abs(deltas))) if len(deltas) else None,
        "confidence_median": float(np.median([a.confidence for a in analyses]))
        if analyses
        else None,
        "histogram": {"counts": histogram.tolist(), "edges": edges.tolist()},
        **minimal_summary(searched, shares),
    }


def minimal_summary(searched: list[ProgramAnalysis], shares: list[float]) -> dict:
    """Over the programs whose minimal program was searched: the mean share of statements kept,
    the share whose minimal program keeps the whole program's prediction, and the share whose
    minimal program is classified as the true class."""
    count = len(searched)
    return {
        "minimal_programs": count,
        "minimal_kept_share_mean": float(np.mean(shares)) if shares else None,
        "minimal_keeps_prediction": (
            float(np.mean([a.minimal_predicted == a.predicted for a in searched]))
            if count
            else None
        ),
        "minimal_true_class": (
            float(np.mean([a.minimal_predicted == a.label for a in searched])) if count else None
        ),
    }
