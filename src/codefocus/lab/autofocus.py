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

import html
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from codefocus.lab.parsing import Parsed, delete, parse


@dataclass
class ProgramAnalysis:
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

    def to_dict(self) -> dict:
        return asdict(self)


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


def _grey(code: bytes, parsed: Parsed, scores: list[float]) -> str:
    values = np.abs(np.array(scores, dtype=float))
    top = values.max() if len(values) and values.max() > 0 else 1.0
    level = np.zeros(len(code))
    for statement, value in sorted(
        zip(parsed.statements, values, strict=True), key=lambda x: x[0].start - x[0].end
    ):
        level[statement.start : statement.end] = (
            value / top
        )  # innermost statement wins (drawn last)
    out, cursor = [], 0
    while cursor < len(code):
        end = cursor
        while end < len(code) and level[end] == level[cursor]:
            end += 1
        shade = int(255 - 200 * level[cursor])
        text = html.escape(code[cursor:end].decode("utf-8", errors="replace"))
        out.append(
            f'<span style="background:rgb({shade},{shade},{shade});color:{"#fff" if shade < 140 else "#000"}">{text}</span>'
        )
        cursor = end
    return "".join(out)


def analysis_html(analysis: ProgramAnalysis, language: str, classes: list[str]) -> str:
    parsed = parse(analysis.source, language)
    title = html.escape(
        f"{classes[analysis.label]} (predicted {classes[analysis.predicted]}, confidence {analysis.confidence:.2f})"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>AutoFocus</title><style>"
        "pre{white-space:pre-wrap;border:1px solid #ccc;padding:.5em}.col{display:inline-block;width:49%;vertical-align:top}"
        f"</style></head><body><h1>{title}</h1>"
        f"<p>Pearson(a, −δ) = {analysis.pearson}</p>"
        f"<div class='col'><h2>attention a(s)</h2><pre>{_grey(parsed.source, parsed, analysis.attention)}</pre></div>"
        f"<div class='col'><h2>deletion effect δ(s)</h2><pre>{_grey(parsed.source, parsed, [-d for d in analysis.delta])}</pre></div>"
        f"<h2>minimal program keeping the class</h2><pre>{html.escape(analysis.minimal_program)}</pre></body></html>"
    )


def print_analysis(analysis: ProgramAnalysis, language: str, console=None) -> None:
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    parsed = parse(analysis.source, language)
    for name, scores in (
        ("attention a(s)", analysis.attention),
        ("deletion effect -δ(s)", [-d for d in analysis.delta]),
    ):
        values = np.abs(np.array(scores))
        top = values.max() if len(values) and values.max() > 0 else 1.0
        text = Text(analysis.source)
        for statement, value in sorted(
            zip(parsed.statements, values, strict=True), key=lambda x: x[0].start - x[0].end
        ):
            grey = int(232 + 23 * (1 - value / top))
            start = len(parsed.source[: statement.start].decode(errors="replace"))
            end = len(parsed.source[: statement.end].decode(errors="replace"))
            text.stylize(f"on color({max(232, min(255, grey))})", start, end)
        console.rule(name)
        console.print(text)
