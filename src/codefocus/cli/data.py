"""Data commands: check and fetch the benchmark and label files, browse tasks, reproduce the
study's published tables from its stored scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codefocus.cli.options import (
    DataOption,
    FormatOption,
    check_choice,
    check_positive,
    console,
    either_spelling,
    named,
    old_spelling,
    parse_ks,
    split,
)
from codefocus.errors import InvalidArgumentError

if TYPE_CHECKING:
    from codefocus.reproduce.live import LiveComparison

data_app = typer.Typer(no_args_is_help=True, help="Check and fetch the benchmark and label data.")
reproduce_app = typer.Typer(no_args_is_help=True, help="Reproduce published results.")
tasks_app = typer.Typer(no_args_is_help=True, help="Browse benchmark tasks and their labels.")


JsonFlag = Annotated[bool, typer.Option("--json", hidden=True, help="The same as --format json.")]


@data_app.command("check")
def data_check(
    data: DataOption = None,
    output_format: FormatOption = "text",
    as_json: JsonFlag = False,
) -> None:
    """Load tasks and programmer labels; print what was repaired or dropped, with counts."""
    check_choice("--format", output_format, ("text", "json"))
    as_json = as_json or output_format == "json"
    from codefocus.data.labels import load_labels
    from codefocus.data.tasks import load_humaneval, load_mbpp, load_sanitized_mbpp
    from codefocus.reports.terminal import print_repair_report

    humaneval, mbpp, sanitized = load_humaneval(data), load_mbpp(data), load_sanitized_mbpp(data)
    reports = [
        load_labels("humaneval", data, humaneval).report,
        load_labels("mbpp", data, mbpp).report,
    ]
    if as_json:
        for report in reports:
            print(json.dumps(report.to_dict()))
        return
    console.print(
        f"tasks: HumanEval {len(humaneval)}, MBPP {len(mbpp)}, sanitized MBPP {len(sanitized)}"
    )
    for report in reports:
        print_repair_report(console, report)


@data_app.command("methodnames")
def data_methodnames(
    out: Annotated[Path, typer.Option(help="Directory for dataset.json and the splits.")],
    names: Annotated[
        int, typer.Option("--names", help="How many method names: the most frequent ones.")
    ] = 10,
    top: Annotated[int | None, old_spelling("--top", "--names")] = None,
    per_name: Annotated[int, typer.Option(help="Bodies kept per name.")] = 1000,
    seed: Annotated[int, typer.Option(help="Sampling and split seed.")] = 0,
) -> None:
    """Build a method-name dataset from the Python source installed here (no download)."""
    from codefocus.lab.methodnames import build_methodnames

    names = either_spelling("--names", names, "--top", top, 10)
    check_positive("--names", names)
    check_positive("--per-name", per_name)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"--out: {out} is a file, not a directory")
    with console.status("reading the installed Python source..."):
        dataset = build_methodnames(top=names, per_name=per_name, seed=seed)
    dataset.save(out)
    console.print(f"names: {', '.join(dataset.classes)}")
    console.print(
        f"train {len(dataset.train)}, valid {len(dataset.valid)}, test {len(dataset.test)}; {out}"
    )


@data_app.command("fetch")
def data_fetch(
    out: Annotated[Path, typer.Option("--out", help="Directory to fill.")],
) -> None:
    """Download HumanEval, MBPP and the programmer-attention labels from their public sources."""
    from codefocus.data.fetch import SOURCES, fetch

    for source in SOURCES:
        console.print(f"{source.path}  [dim]{source.url}  ({source.license})[/dim]")
    for result in fetch(out):
        console.print(f"{result.status:>12}  {result.path}")


@reproduce_app.command("kou2024")
def reproduce_kou2024(
    data: DataOption = None,
    output_format: Annotated[
        str, typer.Option("--format", help="text (tables) or json (one object per line).")
    ] = "text",
    as_json: JsonFlag = False,
    per_category: Annotated[
        bool, typer.Option("--per-category", help="Also print recall per label category.")
    ] = False,
    k: Annotated[str, typer.Option("--k", help="Comma-separated K values.")] = "5,10,20",
    models: Annotated[str, typer.Option(help="Comma-separated stored models.")] = (
        "codegen,codeparrot,gptj,incoder,polycoder,gpt4"
    ),
    methods: Annotated[str, typer.Option(help="Comma-separated stored methods, or 'all'.")] = "all",
    precise: Annotated[bool, typer.Option(help="Unrounded values in --json output.")] = False,
    add: Annotated[
        list[Path] | None,
        typer.Option(
            "--add",
            help="A live model's results to score beside the study's: a folder of "
            "{method}_{model}.json.gz files in the study's format, or a study directory "
            "(with study.sqlite). Repeatable.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Tables 2 and 3 of Kou et al. (FSE 2024) from the study's stored attention scores; with
    --add, a live model's rows beside them (95% bootstrap intervals over prompts) and the
    Spearman correlation of its ranking of the methods with Table 3's (F1 at K=10)."""
    check_choice("--format", output_format, ("text", "json"))
    as_json = as_json or output_format == "json"
    from codefocus.reports.terminal import print_category_table, print_reproduction
    from codefocus.reproduce import kou2024

    chosen_methods = list(kou2024.METHODS) if methods == "all" else split(methods)
    ks = parse_ks(k)
    if add:
        _reproduce_with_live(
            add, data, split(models), chosen_methods, ks, as_json, precise, per_category
        )
        return
    rows = kou2024.reproduce(data, split(models), chosen_methods, ks)
    if as_json:
        for row in rows:
            record = json.loads(row.to_json_line(precise))
            if per_category:
                record["per_category_recall"] = row.per_category_recall
            print(json.dumps(record))
        return
    print_reproduction(console, rows)
    if per_category:
        print_category_table(console, rows)


def _reproduce_with_live(
    add: list[Path],
    data: Path | None,
    models: list[str],
    methods: list[str],
    ks: list[int],
    as_json: bool,
    precise: bool,
    per_category: bool,
) -> None:
    """``reproduce kou2024 --add``: the study's rows, the live rows, Table 3, the rankings."""
    from codefocus.reports.terminal import print_category_table
    from codefocus.reproduce import live

    added = named("--add", live.merge_added, [named("--add", live.read_added, p) for p in add])
    comparison = live.compare(added, data, ks, models, methods)
    if as_json:
        lines = [
            *((row.to_json_line(precise), row) for row in comparison.rows),
            *((r.to_json_line(precise), r.row) for r in comparison.live),
            *((row.to_json_line(precise), row) for row in comparison.means),
        ]
        for line, row in lines:
            record = json.loads(line)
            if per_category:
                record["per_category_recall"] = row.per_category_recall
            print(json.dumps(record))
        for ranking in comparison.rankings:
            print(ranking.to_json_line(precise))
        return
    _print_comparison(comparison)
    if per_category:
        print_category_table(
            console, [*comparison.rows, *(r.row for r in comparison.live), *comparison.means]
        )


def _print_comparison(comparison: LiveComparison) -> None:
    """Table 2 per method: the study's models, the live rows (with 95% intervals), ``mean5``;
    then each live model's Spearman rho with Table 3."""
    from rich.markup import escape
    from rich.table import Table

    from codefocus.reproduce.kou2024 import MEAN_MODEL, METHOD_LABELS

    def pct(value: float) -> str:
        return f"{100 * value:.1f}"

    def alpha(value: float) -> str:
        return f"{value:.2f}"

    rows = [*comparison.rows, *(r.row for r in comparison.live), *comparison.means]
    intervals = {(r.row.model, r.row.method, r.row.k): r for r in comparison.live}
    live_models = set(comparison.live_models)
    ks = list(dict.fromkeys(r.k for r in rows))
    # the paper's layout (a column group per K) where it fits, else a row per (model, K)
    wide = console.width >= 60 + 36 * len(ks)
    for method in dict.fromkeys(r.method for r in rows):
        table = Table(
            title=f"Table 2 — {METHOD_LABELS.get(method, method)} "
            "(P, R, F1 in %; Krippendorff's α; live rows with 95% bootstrap intervals)"
        )
        table.add_column("model")
        if not wide:
            table.add_column("K", justify="right")
        for k in ks if wide else [None]:
            for name in ("P", "R", "F1", "α"):
                table.add_column(name if k is None else f"K={k} {name}", justify="right")
        index = {(r.model, r.k): r for r in rows if r.method == method}
        for model in dict.fromkeys(r.model for r in rows if r.method == method):
            name = f"[bold]{escape(model)}[/bold] (live)" if model in live_models else model
            name = "mean5 (Table 3)" if model == MEAN_MODEL else name
            cells: list[str] = []
            for k in ks:
                r = index.get((model, k))
                values = [""] * 4
                if r is not None:
                    values = [pct(r.precision), pct(r.recall), pct(r.f1), alpha(r.alpha)]
                live_row = intervals.get((model, method, k))
                if live_row is not None:
                    bounds = (
                        live_row.precision_interval,
                        live_row.recall_interval,
                        live_row.f1_interval,
                        live_row.alpha_interval,
                    )
                    formats = (pct, pct, pct, alpha)
                    values = [
                        escape(f"{v}\n[{f(b.low)}, {f(b.high)}]")
                        for v, b, f in zip(values, bounds, formats, strict=True)
                    ]
                if wide:
                    cells += values
                else:
                    table.add_row(name, str(k), *values)
            if wide:
                table.add_row(name, *cells)
        console.print(table)
    if comparison.rankings:
        table = Table(title="Live ranking of the methods vs Table 3 (Spearman's ρ of F1)")
        for name in ("model", "K", "methods", "ρ", "95% interval"):
            table.add_column(name, justify="left" if name == "model" else "right")
        for ranking in comparison.rankings:
            if ranking.spearman is None:
                rho, interval = "—", "fewer than 3 methods" if len(ranking.methods) < 3 else "—"
            else:
                rho = f"{ranking.spearman:.2f}"
                low, high = ranking.spearman_low, ranking.spearman_high
                interval = (
                    "—" if low is None or high is None else escape(f"[{low:.2f}, {high:.2f}]")
                )
            n = str(len(ranking.methods))
            table.add_row(escape(ranking.model), str(ranking.k), n, rho, interval)
        console.print(table)


@tasks_app.command("show")
def tasks_show(
    task: Annotated[str, typer.Argument(help="humaneval/N or mbpp/N")],
    data: DataOption = None,
) -> None:
    """Print a task's prompt with the programmer-attention labels highlighted by category."""
    from codefocus.data.tasks import get_task
    from codefocus.reports.terminal import print_labelled_prompt

    print_labelled_prompt(console, get_task(task, data))
