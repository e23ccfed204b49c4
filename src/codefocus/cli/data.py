"""Data commands: check and fetch the benchmark and label files, browse tasks, reproduce the
study's published tables from its stored scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    DataOption,
    FormatOption,
    check_choice,
    check_positive,
    console,
    parse_ks,
    split,
)
from codefocus.errors import InvalidArgumentError

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
    top: Annotated[int, typer.Option(help="How many of the most frequent method names.")] = 10,
    per_name: Annotated[int, typer.Option(help="Bodies kept per name.")] = 1000,
    seed: Annotated[int, typer.Option(help="Sampling and split seed.")] = 0,
) -> None:
    """Build a method-name dataset from the Python source installed here (no download)."""
    from codefocus.lab.methodnames import build_methodnames

    check_positive("--top", top)
    check_positive("--per-name", per_name)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"--out: {out} is a file, not a directory")
    with console.status("reading the installed Python source..."):
        dataset = build_methodnames(top=top, per_name=per_name, seed=seed)
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
) -> None:
    """Tables 2 and 3 of Kou et al. (FSE 2024) from the study's stored attention scores."""
    check_choice("--format", output_format, ("text", "json"))
    as_json = as_json or output_format == "json"
    from codefocus.reports.terminal import print_category_table, print_reproduction
    from codefocus.reproduce import kou2024

    chosen_methods = list(kou2024.METHODS) if methods == "all" else split(methods)
    ks = parse_ks(k)
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


@tasks_app.command("show")
def tasks_show(
    task: Annotated[str, typer.Argument(help="humaneval/N or mbpp/N")],
    data: DataOption = None,
) -> None:
    """Print a task's prompt with the programmer-attention labels highlighted by category."""
    from codefocus.data.tasks import get_task
    from codefocus.reports.terminal import print_labelled_prompt

    print_labelled_prompt(console, get_task(task, data))
