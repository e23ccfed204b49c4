"""The explorer: which prompt words produced which generated statements, in one offline fragment.

The prompt and the generated code side by side. Hover, focus or click a statement and the prompt
words light up by their attribution to it (the top K of that statement's row); click a prompt
word and the statements where it ranks in the top K light up. A selector switches methods;
perturbation methods have no per-statement rows, so they show their word scores. The
programmers' labels can be overlaid, and the reference solution sits beside the code.

A contrastive attribution (``attribute(..., contrast=...)``, ``settings["contrast"]``) explains
``log p(code) - log p(contrast)``: its scores have a sign, so the top K words are those of the
largest size, shaded on a diverging scale (blue: toward the model's own code, red: toward the
contrast), and the contrast's code sits beside the generated code.

Safety: every text from a task, a model or a user is escaped into the HTML by Python; the
embedded JSON holds numbers, indices and method names only and is escaped against ``</script>``;
the script reads it with ``JSON.parse`` and writes text with ``textContent`` (never ``innerHTML``,
never ``eval``), and it fetches nothing. The fragment works in a page of its own, in the study
report (several per page) and in Jupyter (``Attribution._repr_html_``).
"""

from __future__ import annotations

import html
import itertools
import json
import math
from importlib import resources
from typing import TYPE_CHECKING

from codefocus.data.labels import CATEGORIES, CATEGORY_NAMES

if TYPE_CHECKING:
    from codefocus.attribution import Attribution

# a sequential single-hue scale (ColorBrewer Blues, 5 classes): colour-blind-safe, and the order
# reads from lightness alone; text turns white on the two darkest
SCALE = ["#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c"]
# a contrastive attribution's other side (ColorBrewer Reds, 5 classes): with SCALE, the two
# halves of a colour-blind-safe diverging red-blue scale, lightest near zero
NEGATIVE_SCALE = ["#fcbba1", "#fc9272", "#fb6a4a", "#de2d26", "#a50f15"]
# label categories as underlines, in Okabe & Ito's colour-blind-safe colours
CATEGORY_COLOURS = {
    "datatype": "#E69F00",
    "operator": "#D55E00",
    "conditional": "#CC79A7",
    "property": "#009E73",
}

_ids = itertools.count()

STYLE = """
.cfx{font-family:system-ui,sans-serif;color:#222;margin:.5em 0 1.5em}
.cfx .cfx-bar{display:flex;flex-wrap:wrap;gap:1em;align-items:center;margin:.3em 0}
.cfx .cfx-cols{display:flex;flex-wrap:wrap;gap:1em}
.cfx .cfx-col{flex:1 1 30em;min-width:18em}
.cfx pre{background:#fafafa;border:1px solid #ddd;padding:.6em;white-space:pre-wrap;
line-height:1.6;margin:.2em 0}
.cfx .w{border-radius:3px;padding:0 1px;cursor:pointer}
.cfx .w:focus,.cfx .s:focus{outline:2px solid #000;outline-offset:1px}
.cfx .w.pin{outline:2px dashed #000}
.cfx .l,.cfx .s{display:block;min-height:1.6em}
.cfx .s{cursor:pointer;border-left:4px solid transparent;padding-left:.3em}
.cfx .s.on{background:#fde0c5;border-left-color:#D55E00}
.cfx .s.pin{border-left-color:#000}
.cfx.lb .w[data-cat]{text-decoration:underline 3px;text-underline-offset:3px}
.cfx .legend span{display:inline-block;padding:0 .5em;margin-right:.2em;border-radius:3px}
.cfx .cfx-status{min-height:1.4em;font-size:.92em;color:#333}
.cfx .verdict{font-weight:600}
.cfx h4{margin:.6em 0 .2em}
"""

SCRIPT = (resources.files("codefocus.reports") / "explorer.js").read_text(encoding="utf-8")


def _json_for_script(data: object) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else 0.0 for v in values]


def top_words(scores: list[float], k: int) -> list[int]:
    """The top-K word indices by score, best first (the alignment metrics' order: ties to the
    earlier word); none when every score is equal, which is no attribution at all."""
    from codefocus.metrics.alignment import top_k_indices

    if not scores or max(scores) == min(scores):
        return []
    return [int(i) for i in top_k_indices(scores, k)]


def top_by_size(scores: list[float], k: int) -> list[int]:
    """A contrastive attribution's top-K word indices: the largest ``|score|`` first (ties to the
    earlier word), zeros never (a zero pushes neither way), so fewer than K where fewer words
    moved the choice; ``Attribution.top_k`` fills K with zeros, as the alignment metrics count."""
    from codefocus.metrics.alignment import top_k_indices

    sizes = [abs(v) for v in scores]
    if not sizes or max(sizes) == 0:
        return []
    return [int(i) for i in top_k_indices(sizes, k) if scores[int(i)] != 0]


def explorer_data(attribution: Attribution, methods: list[str], k: int) -> dict:
    """What the script needs: per method, word scores with their top K, and per statement the
    row of word scores with its top K (attention and gradient methods). A contrastive
    attribution's top K are by size and its shades diverge (``negative``)."""
    diverging = attribution.contrast is not None
    top = top_by_size if diverging else top_words
    out: dict = {"k": k, "scale": SCALE, "methods": {}}
    if diverging:
        out["diverging"], out["negative"] = True, NEGATIVE_SCALE
    for method in methods:
        if method not in attribution.word_scores:
            continue
        scores = _finite(attribution.word_scores[method])
        rows = attribution.statement_word_scores.get(method)
        out["methods"][method] = {
            "scores": scores,
            "top": top(scores, k),
            "rows": [{"scores": _finite(r), "top": top(_finite(r), k)} for r in rows]
            if rows
            else None,
        }
    return out


def _prompt_markup(attribution: Attribution) -> str:
    """The prompt, escaped, each scored word a focusable span (with its label category)."""
    prompt = attribution.prompt
    categories: list[str | None] = []
    for word in attribution.words:
        hit = next(
            (s for s in attribution.human_spans if min(s.end, word.end) > max(s.start, word.start)),
            None,
        )
        categories.append(hit.category if hit else None)
    pieces, cursor = [], 0
    for index, (word, category) in enumerate(zip(attribution.words, categories, strict=True)):
        if word.start < cursor:
            continue
        pieces.append(html.escape(prompt[cursor : word.start]))
        extra = ""
        if category:
            name = CATEGORY_NAMES.get(category, category)
            extra = (
                f' data-cat="{html.escape(category, quote=True)}" data-label="label: '
                f'{html.escape(name, quote=True)}" style="text-decoration-color:'
                f'{CATEGORY_COLOURS.get(category, "#777")}"'
            )
        pieces.append(
            f'<span class="w" data-w="{index}" tabindex="0"{extra}>'
            f"{html.escape(prompt[word.start : word.end])}</span>"
        )
        cursor = word.end
    pieces.append(html.escape(prompt[cursor:]))
    return "".join(pieces)


def _code_markup(attribution: Attribution) -> str:
    """The generated code, escaped, each statement's own lines one focusable block."""
    lines = attribution.generated.split("\n")
    owner: dict[int, int] = {}
    for index, statement in enumerate(attribution.statements):
        for line in range(statement.first_line, statement.last_line + 1):
            owner.setdefault(line, index)
    pieces, line = [], 1
    while line <= len(lines):
        owned = owner.get(line)
        if owned is None:
            pieces.append(f'<span class="l">{html.escape(lines[line - 1])}</span>')
            line += 1
            continue
        statement = attribution.statements[owned]
        last = min(statement.last_line, len(lines))
        text = "\n".join(lines[line - 1 : last])
        pieces.append(
            f'<span class="s" data-s="{owned}" tabindex="0" '
            f'aria-label="statement {owned + 1}">{html.escape(text)}</span>'
        )
        line = last + 1
    return "".join(pieces)


def explorer_html(
    attribution: Attribution,
    methods: list[str] | None = None,
    k: int = 10,
    reference: str | None = None,
    verdict: str | None = None,
    element_id: str | None = None,
) -> str:
    """The explorer as an HTML fragment (style, markup, data and script; nothing external)."""
    element_id = element_id or f"cfx-{next(_ids)}"
    methods = [m for m in (methods or attribution.methods) if m in attribution.word_scores]
    data = explorer_data(attribution, methods, k)
    options = "".join(
        f'<option value="{html.escape(m, quote=True)}">{html.escape(m)}'
        f"{'' if data['methods'][m]['rows'] else ' (words only)'}</option>"
        for m in methods
    )
    contrast = attribution.contrast

    def swatches(colours: list[str]) -> str:
        return "".join(f'<span style="background:{c}">&#8203;&nbsp;</span>' for c in colours)

    legend = (
        '<span class="legend" aria-label="colour scale">score within the top '
        f"{k}: low " + swatches(SCALE) + " high</span>"
        if contrast is None
        else '<span class="legend" aria-label="diverging colour scale">the top '
        f"{k} words by size: toward the contrast "
        + swatches(NEGATIVE_SCALE[::-1])
        + swatches(SCALE)
        + " toward the generated code</span>"
    )
    has_labels = bool(attribution.human_spans)
    label_toggle = (
        '<label><input type="checkbox" class="cfx-labels"> programmers\' labels</label> '
        + "".join(
            f'<span style="border-bottom:3px solid {CATEGORY_COLOURS[c]}">'
            f"{CATEGORY_NAMES[c]}</span> "
            for c in CATEGORIES
        )
        if has_labels
        else ""
    )
    verdict_text = f" — <span class='verdict'>{html.escape(verdict)}</span>" if verdict else ""
    reference_column = (
        f"<div class='cfx-col'><h4>reference solution</h4><pre class='cfx-ref'>"
        f"{html.escape(reference)}</pre></div>"
        if reference
        else ""
    )
    if contrast is not None:
        source = "reference solution" if contrast.get("source") == "reference" else "given code"
        if reference == contrast["text"]:
            reference_column = ""  # shown once, as the contrast
        reference_column += (
            f"<div class='cfx-col'><h4>contrast: {source}</h4><pre class='cfx-contrast'>"
            f"{html.escape(str(contrast['text']))}</pre></div>"
        )
    if not methods:
        return f"<div class='cfx'><p>no method scores to explore ({html.escape(attribution.task_id or 'prompt')})</p></div>"
    safe_id = html.escape(element_id, quote=True)
    return (
        f"<style>{STYLE}</style>"
        f'<div class="cfx" id="{safe_id}">'
        f'<div class="cfx-bar"><label>method <select aria-label="method">{options}</select></label>'
        f"{legend}{label_toggle}</div>"
        '<p class="cfx-status" aria-live="polite"></p>'
        "<div class='cfx-cols'>"
        f"<div class='cfx-col'><h4>prompt</h4><pre class='cfx-prompt'>{_prompt_markup(attribution)}</pre></div>"
        f"<div class='cfx-col'><h4>generated code{verdict_text}</h4>"
        f"<pre class='cfx-code'>{_code_markup(attribution)}</pre></div>"
        f"{reference_column}</div>"
        f'<script type="application/json" class="cfx-data">{_json_for_script(data)}</script>'
        f"<script>{SCRIPT}window.codefocusExplorer({_json_for_script(element_id)});</script>"
        "<noscript><p>The explorer needs JavaScript; the tables below show the same scores.</p></noscript>"
        "</div>"
    )
