"""Self-contained HTML: no scripts, no external assets; all model and user text escaped."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from codefocus.data.labels import CATEGORIES, CATEGORY_NAMES

if TYPE_CHECKING:
    from codefocus.attribution import Attribution

CATEGORY_COLOURS = {
    "datatype": "#7fd3e6",
    "operator": "#f3d36b",
    "conditional": "#e59be0",
    "property": "#8fd98f",
}

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
pre{background:#fafafa;border:1px solid #ddd;padding:.8em;white-space:pre-wrap;
line-height:1.5}
.panel{display:inline-block;vertical-align:top;width:48%;margin-right:1%}
mark{border-radius:3px;padding:0 1px}
.legend span{padding:0 .4em;margin-right:.4em;border-radius:3px}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
"""


def highlighted(text: str, spans: list[tuple[int, int, str, str]]) -> str:
    """``text`` escaped, with ``<mark>`` around the (start, end, colour, title) spans."""
    pieces = []
    cursor = 0
    for start, end, colour, title in sorted(spans):
        if start < cursor:
            continue
        pieces.append(html.escape(text[cursor:start]))
        pieces.append(
            f'<mark style="background:{colour}" title="{html.escape(title, quote=True)}">'
            f"{html.escape(text[start:end])}</mark>"
        )
        cursor = end
    pieces.append(html.escape(text[cursor:]))
    return "".join(pieces)


def _method_spans(attribution: Attribution, method: str, k: int) -> list[tuple[int, int, str, str]]:
    scores = attribution.scores(method)
    top = attribution.top_k(method, k)
    ranked = sorted(scores, reverse=True)
    low, high = (ranked[min(k, len(ranked)) - 1], ranked[0]) if ranked else (0.0, 1.0)
    spans = []
    for word in top:
        index = attribution.words.index(word)
        value = scores[index]
        strength = 0.35 + 0.65 * ((value - low) / (high - low) if high > low else 1.0)
        colour = f"rgba(230,80,60,{strength:.2f})"
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


def attribution_html(attribution: Attribution, methods: list[str], k: int = 10) -> str:
    """The study's Figure 3 style: per method, the prompt with its top-K words marked, beside the
    programmer labels; then the generated code."""
    title = html.escape(f"{attribution.task_id or 'prompt'} — {attribution.model}")
    human = human_marks(attribution.human_spans)
    legend = "".join(
        f'<span style="background:{CATEGORY_COLOURS[c]}">{CATEGORY_NAMES[c]}</span>'
        for c in CATEGORIES
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    for method in methods:
        if method not in attribution.word_scores:
            continue
        parts.append(f"<h2>{html.escape(method)} — top {k}</h2>")
        parts.append(
            f'<div class="panel"><h3>model</h3><pre>'
            f"{highlighted(attribution.prompt, _method_spans(attribution, method, k))}</pre></div>"
        )
        if human:
            parts.append(
                '<div class="panel"><h3>programmers</h3><pre>'
                f"{highlighted(attribution.prompt, human)}</pre>"
                f'<div class="legend">{legend}</div></div>'
            )
    parts.append(f"<h2>generated code</h2><pre>{html.escape(attribution.generated)}</pre>")
    if attribution.failures:
        items = "".join(
            f"<li>{html.escape(m)}: {html.escape(r)}</li>" for m, r in attribution.failures.items()
        )
        parts.append(f"<h2>failed methods</h2><ul>{items}</ul>")
    parts.append("</body></html>")
    return "".join(parts)
