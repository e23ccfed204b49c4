"""The study's results as stored, and the report's sections built from them: per model the
Table 2/3-style alignment table with bootstrap intervals, recall per label category and charts;
the automated error explanation of the study's RQ2 (which labelled keyword categories got no
top-K attention in failing generations); and per task the explorer, each method's top words
beside the programmers' labels, and the word -> statement map. Every text that came from a
model, a user or the data is escaped here, as the fragment is built.
"""

from __future__ import annotations

import html

from codefocus.attribution import Attribution
from codefocus.data.labels import CATEGORIES, CATEGORY_NAMES
from codefocus.metrics.alignment import PromptAlignment, PromptUnits, pool, top_k_indices
from codefocus.metrics.stats import bootstrap
from codefocus.reports.charts import bar_chart, line_chart
from codefocus.reports.explorer import explorer_html
from codefocus.reports.html import highlighted, human_marks, method_marks
from codefocus.studies.results import TaskResult

KS = (5, 10, 20)


def _prompt_units(result: TaskResult, method: str) -> PromptUnits:
    """The units the study's protocol ranks (``Attribution.prompt_units``)."""
    return result.attribution.prompt_units(method)


def _fmt(interval) -> str:
    return f"{interval.estimate:.3f} <small>[{interval.low:.3f}, {interval.high:.3f}]</small>"


def alignment_section(
    model: str, results: list[TaskResult], methods: list[str]
) -> tuple[str, dict]:
    rows: list[str] = []
    f1_by_k: dict[str, list[float]] = {}
    alpha_at_10: dict[str, float] = {}
    categories: dict[str, dict] = {}
    category_counts: dict[str, dict[str, int]] = {}
    for method in methods:
        usable = [
            r for r in results if method in r.attribution.word_scores and r.attribution.human_spans
        ]
        if not usable:
            continue
        prepared = [PromptAlignment(_prompt_units(r, method)) for r in usable]
        cells = []
        for k in KS:
            counts = [p.counts(k) for p in prepared]
            intervals = bootstrap(counts, resamples=500, seed=0)
            pooled = pool(counts, k)
            f1_by_k.setdefault(method, []).append(pooled.f1)
            if k == 10:
                alpha_at_10[method] = pooled.alpha
                categories[method] = pooled.per_category_recall
                category_counts[method] = {
                    c: sum(count.category_count.get(c, 0) for count in counts) for c in CATEGORIES
                }
            cells += [_fmt(intervals[m]) for m in ("precision", "recall", "f1", "alpha")]
        rows.append(
            f"<tr><th>{html.escape(method)}</th>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + "</tr>"
        )
    header = "".join(f"<th>K={k} {m}</th>" for k in KS for m in ("P", "R", "F1", "α"))
    table = (
        f"<table class='alignment'><tr><th>method</th>{header}</tr>{''.join(rows)}</table>"
        f"<p><small>pooled over {len(results)} tasks; "
        "95% bootstrap intervals over tasks</small></p>"
    )

    def category_cell(method: str, category: str) -> str:
        n = category_counts[method][category]
        value = categories[method].get(category)
        if not n or value is None or value != value:
            return f"<td>– <small>(n = {n})</small></td>"
        return f"<td>{100 * value:.1f} <small>(n = {n})</small></td>"

    category_rows = "".join(
        f"<tr><th>{html.escape(m)}</th>"
        + "".join(category_cell(m, c) for c in CATEGORIES)
        + "</tr>"
        for m in categories
    )
    category_table = (
        "<h3>Recall per label category (K = 10, %; n = labelled spans)</h3>"
        "<table class='categories'><tr><th>method</th>"
        + "".join(f"<th>{CATEGORY_NAMES[c]}</th>" for c in CATEGORIES)
        + f"</tr>{category_rows}</table>"
    )
    charts = (
        line_chart(f"F1 vs K — {model}", list(KS), f1_by_k, "F1", "K (top words)")
        + bar_chart(f"Krippendorff's α at K = 10 — {model}", alpha_at_10, "alpha")
        if f1_by_k
        else ""
    )
    return table + category_table + f"<div class='charts'>{charts}</div>", f1_by_k


def missed_categories(result: TaskResult, method: str, k: int = 10) -> list[str]:
    """Label categories of the task that none of the method's top-K words touches."""
    a = result.attribution
    top = [a.words[i] for i in top_k_indices(a.word_scores[method], k)]
    missed = []
    for category in CATEGORIES:
        spans = [s for s in a.human_spans if s.category == category]
        if spans and not any(min(s.end, w.end) > max(s.start, w.start) for s in spans for w in top):
            missed.append(category)
    return missed


def error_section(results: list[TaskResult], methods: list[str], k: int = 10) -> str:
    failing = [r for r in results if r.verdict and not r.verdict.get("passed")]
    if not failing:
        return "<p>No failing generation among the analysed tasks.</p>"
    rows: list[str] = []
    examples: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for method in methods:
        counts = dict.fromkeys(CATEGORIES, 0)
        for r in failing:
            if method not in r.attribution.word_scores:
                continue
            for category in missed_categories(r, method, k):
                counts[category] += 1
                if len(examples[category]) < 30:
                    examples[category].append(f"{r.model} {r.attribution.task_id} ({method})")
        rows.append(
            f"<tr><th>{html.escape(method)}</th>"
            + "".join(f"<td>{counts[c]}</td>" for c in CATEGORIES)
            + "</tr>"
        )
    lists = "".join(
        f"<h4>missing attention to {CATEGORY_NAMES[c]}</h4><ul>"
        + "".join(f"<li>{html.escape(e)}</li>" for e in examples[c])
        + "</ul>"
        for c in CATEGORIES
        if examples[c]
    )
    return (
        f"<p>{len(failing)} failing generations. For each method, how many of them gave no top-{k} "
        "attention to any labelled keyword of a category.</p>"
        "<table class='errors'><tr><th>method</th>"
        + "".join(f"<th>{CATEGORY_NAMES[c]}</th>" for c in CATEGORIES)
        + f"</tr>{''.join(rows)}</table>{lists}"
    )


def statement_map(attribution: Attribution, method: str, top: int = 3) -> str:
    rows = attribution.statement_word_scores.get(method)
    if not rows:
        return ""
    lines = []
    for statement, scores in zip(attribution.statements, rows, strict=False):
        best = [attribution.words[i].text for i in top_k_indices(scores, top)] if scores else []
        lines.append(
            f"<tr><td><code>{html.escape(statement.text.strip())}</code></td>"
            f"<td>{html.escape(', '.join(best))}</td></tr>"
        )
    return (
        f"<h4>word → statement map ({html.escape(method)}, top {top} words per statement)</h4>"
        "<table class='statements'><tr><th>statement</th><th>words</th></tr>"
        f"{''.join(lines)}</table>"
    )


def task_section(result: TaskResult, methods: list[str], k: int = 10) -> str:
    """A task: the explorer first (prompt and code side by side, the reference beside them),
    then the study's Figure 3 panels (each method's top K next to the labels), which read
    without JavaScript, and the word -> statement map."""
    a = result.attribution
    verdict = result.verdict or {}
    status = "passed" if verdict.get("passed") else verdict.get("result", "not evaluated")
    human = human_marks(a.human_spans)
    panels = [
        "<div class='panel'><h4>programmers</h4>"
        f"<pre class='labels'>{highlighted(a.prompt, human)}</pre></div>"
    ]
    for method in methods:
        if method in a.word_scores:
            marks = method_marks(a, method, k)
            body = (
                highlighted(a.prompt, marks)
                if marks
                else f"no attribution (all scores equal)\n\n{html.escape(a.prompt)}"
            )
            panels.append(
                f"<div class='panel'><h4>{html.escape(method)} — top {k}</h4>"
                f"<pre class='highlight'>{body}</pre></div>"
            )
    coding = next((m for m in methods if a.statement_word_scores.get(m)), None)
    anchor = f"{result.model}-{a.task_id}"
    reference = getattr(result.task, "reference_solution", None)
    explorer = explorer_html(
        a, methods, k, reference=reference, verdict=status, element_id=f"x-{anchor}"
    )
    return (
        f"<section class='task' id='{html.escape(anchor, quote=True)}'>"
        f"<h3>{html.escape(a.task_id or 'prompt')} — {html.escape(result.model)}</h3>"
        + explorer
        + "<details><summary>each method's top words beside the programmers' labels</summary>"
        + "".join(panels)
        + "</details>"
        + (statement_map(a, coding) if coding else "")
        + "</section>"
    )
