"""Rich terminal rendering of codefocus results."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from codefocus.data.benchmarks import Task
from codefocus.data.labels import CATEGORIES, CATEGORY_NAMES, RepairReport

CATEGORY_STYLES = {
    "datatype": "black on cyan",
    "operator": "black on yellow",
    "conditional": "black on magenta",
    "property": "black on green",
}


def print_repair_report(console: Console, report: RepairReport) -> None:
    table = Table(title=f"{report.benchmark} programmer labels", show_lines=False)
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_column("examples", overflow="fold")
    table.add_row("rows in the CSV", str(report.rows), "")
    table.add_row("blank placeholder rows (no label)", str(report.placeholders), "")
    for kind, count in sorted(report.repaired.items()):
        table.add_row(f"repaired: {kind}", str(count), "; ".join(report.examples.get(kind, [])))
    for kind, count in sorted(report.dropped.items()):
        table.add_row(
            f"[red]dropped: {kind}[/red]", str(count), "; ".join(report.examples.get(kind, []))
        )
    table.add_row("[bold]labels kept[/bold]", f"[bold]{report.kept}[/bold]", "")
    unlabelled = ", ".join(map(str, report.tasks_without_labels)) or "none"
    table.add_row(
        "tasks with labels", str(report.tasks_with_labels), f"tasks without labels: {unlabelled}"
    )
    console.print(table)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _alpha(value: float) -> str:
    return f"{value:.2f}"


def print_reproduction(console: Console, rows: Sequence) -> None:
    """Table 2 (one table per model) and Table 3 (mean of the five open models)."""
    from codefocus.reproduce.kou2024 import MEAN_MODEL, METHOD_LABELS

    ks = list(dict.fromkeys(r.k for r in rows))
    models = list(dict.fromkeys(r.model for r in rows))
    index = {(r.model, r.method, r.k): r for r in rows}
    for model in models:
        if model == MEAN_MODEL:
            continue
        table = Table(title=f"Table 2 — {model} (P, R, F1 in %; Krippendorff's α)")
        table.add_column("method")
        for k in ks:
            for name in ("P", "R", "F1", "α"):
                table.add_column(f"K={k} {name}", justify="right")
        for method in dict.fromkeys(r.method for r in rows if r.model == model):
            cells = []
            for k in ks:
                r = index[(model, method, k)]
                cells += [_pct(r.precision), _pct(r.recall), _pct(r.f1), _alpha(r.alpha)]
            table.add_row(METHOD_LABELS.get(method, method), *cells)
        console.print(table)
    means = [r for r in rows if r.model == MEAN_MODEL]
    if means:
        table = Table(title="Table 3 — mean over the five open models (F1 in %; α)")
        table.add_column("method")
        for k in ks:
            table.add_column(f"K={k} F1", justify="right")
            table.add_column(f"K={k} α", justify="right")
        for method in dict.fromkeys(r.method for r in means):
            cells = []
            for k in ks:
                r = index[(MEAN_MODEL, method, k)]
                cells += [_pct(r.f1), _alpha(r.alpha)]
            table.add_row(METHOD_LABELS.get(method, method), *cells)
        console.print(table)


def print_category_table(console: Console, rows: Sequence) -> None:
    """Recall per label category for every model, method and K (not reported by the study)."""
    from codefocus.reproduce.kou2024 import METHOD_LABELS

    table = Table(title="Recall per programmer-label category (%)")
    for name in ("model", "method", "K"):
        table.add_column(name)
    for category in CATEGORIES:
        table.add_column(CATEGORY_NAMES[category], justify="right")
    for r in rows:
        table.add_row(
            r.model,
            METHOD_LABELS.get(r.method, r.method),
            str(r.k),
            *[_pct(r.per_category_recall.get(c, float("nan"))) for c in CATEGORIES],
        )
    console.print(table)


def labelled_text(task: Task) -> Text:
    """The prompt as rich Text with each labelled span styled by its category."""
    return labelled_text_from_spans(task.prompt, task.human_spans)


def print_labelled_prompt(console: Console, task: Task) -> None:
    console.rule(f"{task.task_id} — programmer attention")
    console.print(labelled_text(task), highlight=False, markup=False)
    legend = Text("legend: ")
    for category in CATEGORIES:
        legend.append(f" {CATEGORY_NAMES[category]} ", style=CATEGORY_STYLES[category])
        legend.append(" ")
    console.print(legend)


CONTRAST_NOTE = (
    "contrastive: top K by |score|; + toward the generated code, - toward the contrast "
    "(blue and red when coloured)"
)


def attribution_text(attribution, method: str, k: int) -> Text:
    """The prompt with the method's top-K words in bold red; for a contrastive attribution
    (ranked by ``|score|``) blue toward the generated code, red toward the contrast."""
    text = Text(attribution.prompt)
    contrastive = attribution.contrast is not None
    scores = attribution.scores(method)
    position = {(w.start, w.end): i for i, w in enumerate(attribution.words)}
    for word in attribution.top_k(method, k):
        toward_contrast = contrastive and scores[position[(word.start, word.end)]] < 0
        style = "bold white on red" if not contrastive or toward_contrast else "bold white on blue"
        text.stylize(style, word.start, word.end)
    return text


def plain_attribution(attribution, methods: Sequence[str], k: int = 10) -> str:
    """The same content without colour (for a pipe or a file): per method its top-K words in
    rank order with their scores, then the generated code and any failures."""
    from codefocus.metrics.alignment import top_k_indices

    lines = [f"# {attribution.task_id or 'prompt'} — {attribution.model}"]
    if attribution.human_spans:
        labelled = ", ".join(f"{s.word} ({s.category})" for s in attribution.human_spans)
        lines.append(f"programmers: {labelled}")
    if attribution.contrast is not None:
        lines.append(CONTRAST_NOTE)
    for method in methods:
        if method not in attribution.word_scores:
            continue
        scores = attribution.word_scores[method]
        ranked = list(top_k_indices(attribution.ranking(method), k)) if scores else []
        words = ", ".join(f"{attribution.words[i].text} {scores[i]:.4g}" for i in ranked)
        lines.append(f"{method} top {k}: {words}")
    lines += ["generated code:", attribution.generated.rstrip("\n")]
    lines += [f"{method} failed: {reason}" for method, reason in attribution.failures.items()]
    return "\n".join(lines)


def print_attribution(attribution, methods: Sequence[str], k: int = 10, console=None) -> None:
    """Colour highlights on a terminal; the plain listing anywhere else (highlights that are
    colour only would leave every panel the same plain prompt)."""
    console = console or Console()
    if not console.is_terminal:
        print(plain_attribution(attribution, methods, k))
        return
    console.rule(f"{attribution.task_id or 'prompt'} — {attribution.model}")
    if attribution.human_spans:
        console.print("[bold]programmers[/bold]")
        console.print(
            labelled_text_from_spans(attribution.prompt, attribution.human_spans),
            highlight=False,
            markup=False,
        )
    if attribution.contrast is not None:
        console.print(CONTRAST_NOTE, highlight=False, markup=False)
    for method in methods:
        if method not in attribution.word_scores:
            continue
        console.print(f"[bold]{method}[/bold] — top {k}")
        console.print(attribution_text(attribution, method, k), highlight=False, markup=False)
    console.print("[bold]generated code[/bold]")
    console.print(attribution.generated, highlight=False, markup=False)
    for method, reason in attribution.failures.items():
        console.print(f"[red]{method} failed:[/red] {reason}", highlight=False)


def labelled_text_from_spans(prompt: str, spans) -> Text:
    text = Text(prompt)
    for span in spans:
        text.stylize(CATEGORY_STYLES.get(span.category, "reverse"), span.start, span.end)
    return text
