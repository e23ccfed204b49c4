"""The study report: one self-contained, offline HTML file (no external assets; the only script
is the explorer's, and every table and chart reads without it).

Per model: pass@1, the Table 2/3-style alignment table for every method and K with bootstrap
intervals, recall per label category, charts; the automated error explanation of the study's
RQ2 (which labelled keyword categories got no top-K attention in failing generations); and a
section per task that opens with the explorer (which words produced which statements), then the
prompt highlighted by each method next to the programmers' labels, the generated code with its
verdict, and the word -> statement map. Everything that came from a
model, a user or the data is escaped.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, replace
from pathlib import Path

from codefocus.attribution import Attribution
from codefocus.data.labels import CATEGORIES, CATEGORY_NAMES
from codefocus.metrics.alignment import PromptAlignment, PromptUnits, pool, top_k_indices
from codefocus.metrics.stats import bootstrap
from codefocus.reports.charts import bar_chart, line_chart
from codefocus.reports.explorer import explorer_html
from codefocus.reports.html import STYLE, highlighted, human_marks, method_marks
from codefocus.storage import write_text_atomic
from codefocus.studies.runner import STORE_NAME, StudyConfig, study_tasks
from codefocus.studies.store import StudyStore

KS = (5, 10, 20)
REPORT_NAME = "report.html"


@dataclass
class TaskResult:
    model: str
    task: object
    attribution: Attribution
    verdict: dict | None


def load_results(
    directory: Path, data_dir: str | Path | None = None
) -> tuple[StudyConfig, list[TaskResult]]:
    """The study's configuration and one merged ``Attribution`` per (model, task); ``data_dir``
    overrides the data directory the study was run with."""
    store = StudyStore(directory / STORE_NAME)
    try:
        config = StudyConfig.from_dict(store.meta("config", {}))
        if data_dir is not None:
            config = replace(config, data_dir=str(data_dir))
        tasks = {t.task_id: t for t in study_tasks(config)}
        method_rows: dict[tuple[str, str], list[dict]] = {}  # read once, not per task
        for row in store.rows("method:"):
            if row["status"] == "done":
                method_rows.setdefault((row["model"], row["task_id"]), []).append(row)
        results = []
        for model in config.models:
            for task_id, task in tasks.items():
                generation = store.get(model, task_id, "generation")
                if generation is None or generation["status"] != "done":
                    continue
                verdict = store.get(model, task_id, "verdict")
                attribution = None
                for row in method_rows.get((model, task_id), []):
                    stored = Attribution.from_dict(row["payload"])
                    attribution = stored if attribution is None else attribution.merge(stored)
                if attribution is None:
                    continue
                results.append(TaskResult(model, task, attribution, verdict and verdict["payload"]))
        return config, results
    finally:
        store.close()


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
        f"<p><small>pooled over {len(results)} tasks; 95% bootstrap intervals over tasks</small></p>"
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
        "<h3>Recall per label category (K = 10, %; n = labelled spans)</h3><table class='categories'><tr><th>method</th>"
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
        "attention to any labelled keyword of a category.</p><table class='errors'><tr><th>method</th>"
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
            f"<tr><td><code>{html.escape(statement.text.strip())}</code></td><td>{html.escape(', '.join(best))}</td></tr>"
        )
    return (
        f"<h4>word → statement map ({html.escape(method)}, top {top} words per statement)</h4>"
        f"<table class='statements'><tr><th>statement</th><th>words</th></tr>{''.join(lines)}</table>"
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
        f"<div class='panel'><h4>programmers</h4><pre class='labels'>{highlighted(a.prompt, human)}</pre></div>"
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
        f"<section class='task' id='{html.escape(anchor, quote=True)}'><h3>{html.escape(a.task_id or 'prompt')} — {html.escape(result.model)}</h3>"
        + explorer
        + "<details><summary>each method's top words beside the programmers' labels</summary>"
        + "".join(panels)
        + "</details>"
        + (statement_map(a, coding) if coding else "")
        + "</section>"
    )


def study_table3(methods: list[str], k: int = 10) -> dict[str, tuple[float, float]]:
    """The study's Table 3 (mean of its five open models) at K, from its stored scores, for the
    methods codefocus shares with it; empty where the stored scores are not at hand."""
    from codefocus.errors import CodefocusError
    from codefocus.reproduce import kou2024

    names = {m: m for m in methods if m in kou2024.METHODS}
    names |= {
        m: s
        for m, s in (("bert_masking", "bert_perturbation"), ("shap", "shap_perturbation"))
        if m in methods
    }
    if not names:
        return {}
    try:
        rows = kou2024.reproduce(
            models=list(kou2024.OPEN_MODELS), methods=sorted(set(names.values())), ks=[k]
        )
    except CodefocusError:
        return {}
    mean = {r.method: (r.f1, r.alpha) for r in rows if r.model == kou2024.MEAN_MODEL}
    return {ours: mean[theirs] for ours, theirs in names.items() if theirs in mean}


def headline_section(
    results: list[TaskResult],
    methods: list[str],
    k: int = 10,
    study: dict[str, tuple[float, float]] | None = None,
) -> str:
    """The study's headline comparison first: methods ranked by pooled F1 (and alpha) at K,
    beside the study's Table 3 where its stored scores are available."""
    ranked = []
    for method in methods:
        usable = [
            r for r in results if method in r.attribution.word_scores and r.attribution.human_spans
        ]
        if not usable:
            continue
        pooled = pool([PromptAlignment(_prompt_units(r, method)).counts(k) for r in usable], k)
        ranked.append((pooled.f1, pooled.alpha, method, len(usable)))
    ranked.sort(key=lambda row: (-row[0], -row[1], row[2]))
    study = study if study is not None else study_table3(methods, k)
    rows = []
    for rank, (f1, alpha, method, n) in enumerate(ranked, start=1):
        theirs = study.get(method)
        cells = (
            f"<td>{100 * theirs[0]:.1f}</td><td>{theirs[1]:.2f}</td>"
            if theirs
            else "<td>–</td><td>–</td>"
        )
        rows.append(
            f"<tr><td>{rank}</td><th>{html.escape(method)}</th><td>{n}</td>"
            f"<td>{100 * f1:.1f}</td><td>{alpha:.2f}</td>{cells}</tr>"
        )
    return (
        f"<h2>Headline: methods ranked by alignment with programmers (K = {k})</h2>"
        "<table class='headline'><tr><th>rank</th><th>method</th><th>tasks</th><th>F1 %</th>"
        "<th>α</th><th>study F1 %</th><th>study α</th></tr>"
        + "".join(rows)
        + "</table><p><small>pooled over each method's tasks; study = Kou et al.'s Table 3 (mean "
        "of five open models over 1,133 prompts), recomputed from its stored scores</small></p>"
    )


def _interval_text(value: float, low: float, high: float, scale: float, digits: int) -> str:
    return (
        f"{scale * value:.{digits}f} <small>[{scale * low:.{digits}f}, "
        f"{scale * high:.{digits}f}]</small>"
    )


def study_headline(directory: Path, data_dir: str | Path | None = None) -> tuple[str, dict]:
    """The headline under a stored-labels protocol (``kou2024``): the study's exported scores
    scored by the code that reproduces Table 2 (``reproduce.live.compare``), beside the five
    models; returns the HTML and the same figures as a JSON-ready dict ("" and {} when the study
    is not in the study's format)."""
    from codefocus.errors import CodefocusError
    from codefocus.protocols import CODEFOCUS_METHOD_NAMES
    from codefocus.reproduce import kou2024
    from codefocus.reproduce.live import compare
    from codefocus.studies.export import stored_results

    try:
        added = stored_results(directory)
    except CodefocusError:
        return "", {}
    if not added:
        return "", {}
    substitutes = _run_substitutes(directory)
    comparison = compare(added, data_dir)
    live = {(r.row.model, r.row.method, r.row.k): r for r in comparison.live}
    study = {(r.model, r.method, r.k): r for r in comparison.rows}
    means = {(r.method, r.k): r for r in comparison.means}
    models = sorted({r.row.model for r in comparison.live})
    head = (
        "<tr><th rowspan='2'>method</th><th rowspan='2'>prompts</th>"
        "<th colspan='3'>live F1 % [95% CI]</th><th colspan='3'>live α [95% CI]</th>"
        "<th colspan='3'>five models' F1 %: range (mean)</th><th>five models' α K=10</th></tr>"
        "<tr>" + "<th>K=5</th><th>K=10</th><th>K=20</th>" * 3 + "<th>mean</th></tr>"
    )
    figures: dict = {"models": {}, "substitutes": substitutes}
    html_parts = []
    for model in models:
        rows = []
        own: dict = {}
        for method in kou2024.METHODS:
            if (model, method, 10) not in live:
                continue
            cells: list[str] = []
            record: dict = {}
            for k in KS:
                r = live[(model, method, k)]
                cells.append(
                    _interval_text(r.row.f1, r.f1_interval.low, r.f1_interval.high, 100, 1)
                )
                record[f"f1_k{k}"] = [r.row.f1, r.f1_interval.low, r.f1_interval.high]
            for k in KS:
                r = live[(model, method, k)]
                cells.append(
                    _interval_text(r.row.alpha, r.alpha_interval.low, r.alpha_interval.high, 1, 2)
                )
                record[f"alpha_k{k}"] = [r.row.alpha, r.alpha_interval.low, r.alpha_interval.high]
            for k in KS:
                theirs = [
                    study[(m, method, k)].f1 for m in kou2024.OPEN_MODELS if (m, method, k) in study
                ]
                mean = means.get((method, k))
                cells.append(
                    f"{100 * min(theirs):.1f}–{100 * max(theirs):.1f} ({100 * mean.f1:.1f})"
                    if theirs and mean
                    else "–"
                )
                if mean:
                    record[f"study_mean_f1_k{k}"] = mean.f1
                    record[f"study_range_f1_k{k}"] = [min(theirs), max(theirs)]
            mean10 = means.get((method, 10))
            cells.append(f"{mean10.alpha:.2f}" if mean10 else "–")
            if mean10:
                record["study_mean_alpha_k10"] = mean10.alpha
            name = CODEFOCUS_METHOD_NAMES.get(method, method)
            mark = (
                " <small>(substitute: embedding)</small>"
                if method in kou2024.PERTURBATION_METHODS and substitutes == "embedding"
                else ""
            )
            n = live[(model, method, 10)].row.n_prompts
            record["prompts"] = n
            own[name] = record
            rows.append(
                f"<tr><th>{html.escape(name)}{mark}</th><td>{n}</td>"
                + "".join(f"<td>{c}</td>" for c in cells)
                + "</tr>"
            )
        ranking = next((r for r in comparison.rankings if r.model == model), None)
        rho = ""
        if ranking is not None and ranking.spearman is not None:
            rho = (
                f"<p>Spearman correlation between this model's ranking of the "
                f"{len(ranking.methods)} methods (F1, K = {ranking.k}) and the study's (mean of "
                f"five): ρ = {ranking.spearman:.2f} <small>[{ranking.spearman_low:.2f}, "
                f"{ranking.spearman_high:.2f}], 95% bootstrap over prompts</small></p>"
            )
            own["_spearman"] = [ranking.spearman, ranking.spearman_low, ranking.spearman_high]
        figures["models"][model] = own
        html_parts.append(
            f"<h3>{html.escape(model)}</h3><table class='headline'>{head}{''.join(rows)}</table>"
            + rho
        )
    note = (
        "<p><small>Live rows: this study's scores exported in the study's stored format and "
        "scored by the code that reproduces Table 2 exactly (codefocus reproduce kou2024 --add); "
        "95% bootstrap intervals over prompts. Five models: Table 2 of Kou et al. (FSE 2024) "
        "recomputed from their stored scores over 1,133 labelled prompts; the mean is Table 3 as "
        "the mean of Table 2, which for the four gradient rows differs from the printed Table 3 "
        "(e.g. Input×Gradient CODING, K = 10: 50.3 as the mean, 47.9 as printed). "
        + (
            "BERT masking and SHAP used embedding neighbours: no masked LM is installed here "
            "(the study used bert-base-uncased's top-1 fill)."
            if substitutes == "embedding"
            else ""
        )
        + "</small></p>"
    )
    return (
        "<h2>Headline: the live model beside the study's five (Table 2, protocol kou2024)</h2>"
        + "".join(html_parts)
        + note,
        figures,
    )


def _run_substitutes(directory: Path) -> str:
    """The substitutes the perturbation methods ran with (from the stored results)."""
    store = StudyStore(directory / STORE_NAME)
    try:
        for row in store.rows("method:"):
            if row["status"] == "done" and row["payload"]:
                protocol = row["payload"].get("settings", {}).get("protocol", {})
                if row["kind"] in ("method:bert_masking", "method:shap"):
                    return str(protocol.get("substitutes", ""))
    finally:
        store.close()
    return ""


def scope_description(directory: Path) -> str:
    """The protocol the study ran under and which words were scored, as its settings say."""
    from codefocus.errors import CodefocusError
    from codefocus.studies.runner import StudyConfig

    store = StudyStore(directory / STORE_NAME)
    try:
        raw = store.meta("config", {}) or {}
    finally:
        store.close()
    try:
        protocol = StudyConfig.from_dict(raw).declared_protocol() if raw else None
    except (CodefocusError, TypeError, ValueError, KeyError):
        protocol = None
    if protocol is None:
        return "scored scope: the whole prompt (a store from before scopes were recorded)"
    comparable = (
        "comparable with the study's Table 2"
        if protocol.labels == "stored" and protocol.units == "tokens"
        else "not comparable with the study's Table 2"
    )
    where = f"protocol: {protocol.name} ({comparable}); "
    if protocol.scope == "study":
        where += (
            "scored scope: the study's (Kou et al.) — HumanEval from the signature's def to the "
            "first >>> (no imports, no doctest examples), MBPP the whole task text"
        )
    else:
        where += "scored scope: the whole prompt (not comparable with the study's figures)"
    where += "; attention sink (first input position) " + (
        "not scored by attention methods" if protocol.exclude_sink else "scored"
    )
    where += f"; units ranked: {'model tokens' if protocol.units == 'tokens' else 'words'}"
    where += f"; labels: {protocol.labels}"
    where += f"; perturbation similarity: {protocol.similarity}"
    where += f"; substitutes: {protocol.substitutes}"
    return where


def write_report(directory: str | Path, data_dir: str | Path | None = None) -> Path:
    """Write ``directory/report.html`` for the study stored there."""
    directory = Path(directory)
    if not (directory / STORE_NAME).is_file():
        from codefocus.errors import DataError

        raise DataError(f"no study in {directory} (missing {STORE_NAME})")
    config, results = load_results(directory, data_dir)
    methods = [m for m in dict.fromkeys(m for r in results for m in r.attribution.word_scores)]
    body = [
        f"<h1>codefocus study report</h1><p>models: {html.escape(', '.join(config.models))}; "
        f"benchmarks: {html.escape(', '.join(config.benchmarks))}; tasks analysed: {len(results)}</p>",
        f"<p class='scope'>{html.escape(scope_description(directory))}</p>",
    ]
    headline, figures = study_headline(directory, data_dir)
    if headline:
        write_text_atomic(directory / "headline.json", json.dumps(figures, indent=1))
        body.append(headline)
    else:
        body.append(headline_section(results, methods))
    pass_rates = {}
    for model in config.models:
        own = [r for r in results if r.model == model]
        verdicts = [r.verdict for r in own if r.verdict]
        pass_rates[model] = (
            sum(v["passed"] for v in verdicts) / len(verdicts) if verdicts else float("nan")
        )
        section, _ = alignment_section(model, own, methods)
        body.append(
            f"<h2>{html.escape(model)}</h2><p>pass@1 (greedy): {pass_rates[model]:.3f} over {len(verdicts)} tasks</p>{section}"
        )
    if len(pass_rates) > 1:  # a chart of one bar says nothing the text does not
        body.append(
            "<div class='charts'>" + bar_chart("pass@1 per model", pass_rates, "pass@1") + "</div>"
        )
    body.append(
        "<h2>Why generations fail: missing attention (RQ2)</h2>" + error_section(results, methods)
    )
    body.append("<h2>Tasks</h2>" + "".join(task_section(r, methods) for r in results))
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>codefocus study report</title>"
        f"<style>{STYLE} .panel{{width:31%}} small{{color:#666}}</style></head><body>{''.join(body)}</body></html>"
    )
    path = directory / REPORT_NAME
    write_text_atomic(path, page)
    return path
