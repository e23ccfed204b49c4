"""Self-contained HTML pages: no external assets; all model and user text escaped (the only
script is the explorer's, which reads numbers and writes text). Every page is drawn in the one
shell of ``reports.page``; this module holds the attribution page and the highlighting and
tables the other pages share."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from codefocus.data.labels import CATEGORY_NAMES

if TYPE_CHECKING:
    from codefocus.attribution import Attribution

CATEGORY_COLOURS = {
    "datatype": "#7fd3e6",
    "operator": "#f3d36b",
    "conditional": "#e59be0",
    "property": "#8fd98f",
}

DARK = ("#3182bd", "#08519c")  # the explorer's darkest shades (reports.explorer.SCALE)


def highlighted(text: str, spans: list[tuple[int, int, str, str]]) -> str:
    """``text`` escaped, with ``<mark>`` around the (start, end, colour, title) spans."""
    pieces = []
    cursor = 0
    for start, end, colour, title in sorted(spans):
        if start < cursor:
            continue
        pieces.append(html.escape(text[cursor:start]))
        ink = ";color:#fff" if colour in DARK else ""  # the two darkest shades take white text
        pieces.append(
            f'<mark style="background:{colour}{ink}" title="{html.escape(title, quote=True)}">'
            f"{html.escape(text[start:end])}</mark>"
        )
        cursor = end
    pieces.append(html.escape(text[cursor:]))
    return "".join(pieces)


def ranked_words(attribution: Attribution, method: str, k: int) -> list[int]:
    """The top-K word indices a page shows: by score, or for a contrastive attribution by size
    (``Attribution.ranking``); none when the method gave no attribution."""
    from codefocus.reports.explorer import top_by_size, top_words

    scores = attribution.scores(method)
    return top_by_size(scores, k) if attribution.contrast is not None else top_words(scores, k)


def method_marks(attribution: Attribution, method: str, k: int) -> list[tuple[int, int, str, str]]:
    """(start, end, colour, title) of a method's top-K words, shaded by score on the explorer's
    colour-blind-safe scale (a contrastive attribution's by size, blue toward the generated code
    and red toward the contrast); none when the method gave no attribution (all scores equal)."""
    from codefocus.reports.explorer import NEGATIVE_SCALE, SCALE

    scores = attribution.scores(method)
    top = ranked_words(attribution, method, k)
    if not top:
        return []
    size = attribution.ranking(method)
    high, low = size[top[0]], size[top[-1]]
    spans = []
    for index in top:
        word, value = attribution.words[index], scores[index]
        share = (size[index] - low) / (high - low) if high > low else 1.0
        scale = NEGATIVE_SCALE if value < 0 and attribution.contrast is not None else SCALE
        colour = scale[min(len(scale) - 1, int(share * len(scale)))]
        spans.append((word.start, word.end, colour, f"{method}: {value:.4g}"))
    return spans


def human_marks(spans) -> list[tuple[int, int, str, str]]:
    """(start, end, colour, category name) of each programmer label, for highlighting."""
    return [
        (
            s.start,
            s.end,
            CATEGORY_COLOURS.get(s.category, "#ccc"),
            CATEGORY_NAMES.get(s.category, s.category),
        )
        for s in spans
    ]


def scores_table(attribution: Attribution, method: str, k: int) -> str:
    """A method's top-K words with their scores; "no attribution" when every score is equal
    (an all-zero row highlighted as a "top 10" would be a lie)."""
    scores = attribution.scores(method)
    top = ranked_words(attribution, method, k)
    if not top:
        return f"<p class='no-attribution'>{html.escape(method)}: no attribution (all {len(scores)} scores equal)</p>"
    rows = "".join(
        f"<tr><td>{rank}</td><td class='word'>{html.escape(attribution.words[i].text or '')}</td>"
        f"<td>{scores[i]:.4g}</td></tr>"
        for rank, i in enumerate(top, start=1)
    )
    return (
        f"<table class='scores'><caption>{html.escape(method)} — top {len(top)}</caption>"
        f"<tr><th>rank</th><th>word</th><th>score</th></tr>{rows}</table>"
    )


def alignment_table(attribution: Attribution, methods: list[str], k: int) -> str:
    """Precision, recall, F1 and Krippendorff's alpha of each method's top K against the
    programmers' labels (empty when the task has none)."""
    if not attribution.human_spans:
        return ""
    from codefocus.reports.explorer import top_words

    results = attribution.alignment([k])
    rows = "".join(
        f"<tr><th>{html.escape(m)}</th><td colspan='4'>– (no attribution: all scores equal)</td></tr>"
        if not top_words(attribution.scores(m), k)
        else f"<tr><th>{html.escape(m)}</th><td>{r.precision:.3f}</td><td>{r.recall:.3f}</td>"
        f"<td>{r.f1:.3f}</td><td>{r.alpha:.3f}</td></tr>"
        for m in methods
        if m in results
        for r in results[m]
    )
    return (
        f"<h2>Alignment with the programmers' labels (K = {k})</h2><table class='alignment'>"
        "<tr><th>method</th><th>precision</th><th>recall</th><th>F1</th><th>α</th></tr>"
        f"{rows}</table>"
    )


def attribution_html(
    attribution: Attribution,
    methods: list[str],
    k: int = 10,
    reference: str | None = None,
    verdict: str | None = None,
) -> str:
    """One attribution as a page: the explorer, each method's top-K words with scores, their
    P/R/F1/alpha against the labels, and any failed method."""
    from codefocus.reports.explorer import explorer_html
    from codefocus.reports.page import escaped_fragment, render_page

    title = f"{attribution.task_id or 'prompt'} — {attribution.model}"  # escaped by the template
    methods = [m for m in methods if m in attribution.word_scores]
    parts = [
        explorer_html(attribution, methods, k, reference=reference, verdict=verdict),
        alignment_table(attribution, methods, k),
        "<h2>Scores</h2><div class='score-tables'>",
        *(scores_table(attribution, m, k) for m in methods),
        "</div>",
    ]
    if attribution.failures:
        items = "".join(
            f"<li>{html.escape(m)}: {html.escape(r)}</li>" for m, r in attribution.failures.items()
        )
        parts.append(f"<h2>failed methods</h2><ul>{items}</ul>")
    return render_page("attribution.html", title=title, content=escaped_fragment("".join(parts)))
