"""``codefocus faithfulness``: which attribution can you trust — alignment with programmers beside
faithfulness to the model, for one task or a whole study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from codefocus.cli.options import (
    DataOption,
    DeviceOption,
    DtypeOption,
    FormatOption,
    MethodOptionOption,
    MethodsOption,
    ModelOption,
    attribution_options,
    check_choice,
    console,
    named,
    parse_method_options,
    print_json,
)
from codefocus.errors import InvalidArgumentError


def faithfulness_command(
    study: Annotated[
        Path | None,
        typer.Option(help="A study directory: measure every stored attribution (resumable)."),
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="humaneval/N or mbpp/N (attributes it first)")
    ] = None,
    attribution: Annotated[
        Path | None, typer.Option(help="An attribution JSON (codefocus attribute --format json).")
    ] = None,
    model: ModelOption = "default",
    methods: MethodsOption = "all-whitebox",
    k: Annotated[int, typer.Option("--k", help="Leave out the top 1..K words.")] = 10,
    perturbation: Annotated[
        str, typer.Option(help="How a word is left out: delete or substitute.")
    ] = "delete",
    random_orders: Annotated[int, typer.Option(help="Random rankings in the control.")] = 3,
    lds_samples: Annotated[
        int, typer.Option(help="Held-out ablations for the linear datamodeling score (0: none).")
    ] = 32,
    code_change: Annotated[
        bool,
        typer.Option("--code-change/--no-code-change", help="Regenerate with the top K left out."),
    ] = True,
    protocol: Annotated[str, typer.Option(help="For --task: the attribution's protocol.")] = (
        "codefocus"
    ),
    output_format: FormatOption = "text",
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    method_option: MethodOptionOption = None,
    data: DataOption = None,
) -> None:
    """Faithfulness beside alignment: how much the model's log-probability of its own code drops
    when each method's top words are left out (AOPC, sufficiency), against random and
    lowest-ranked words; whether its greedy code changes; and the linear datamodeling score. With
    --study, every stored attribution is measured and the study report gains the section."""
    from codefocus.faithfulness import evaluate_faithfulness, summarize
    from codefocus.faithfulness.evaluate import check_not_contrastive, check_options

    check_choice("--format", output_format, ("text", "json"))
    sources = (("--study", study), ("--task", task), ("--attribution", attribution))
    given = [name for name, value in sources if value is not None]
    if len(given) != 1:
        raise InvalidArgumentError(
            "give one of --study DIR, --task humaneval/N or --attribution FILE"
            + (f" (got {', '.join(given)})" if given else "")
        )
    options: dict[str, Any] = dict(
        k=k, perturbation=perturbation, random_orders=random_orders, lds_samples=lds_samples
    )
    valid = dict(k=10, perturbation="delete", random_orders=1, lds_samples=0)
    for field, value in options.items():  # each value alone, so the error names its flag
        named(f"--{field.replace('_', '-')}", check_options, **{**valid, field: value})
    options["code_change"] = code_change
    if method_option and task is None:
        raise InvalidArgumentError(
            "--method-option: only with --task (a stored attribution keeps the options it was "
            "made with)"
        )
    method_options = parse_method_options(method_option)
    if study is not None:
        _study(study, options, methods, data, output_format)
        return
    from codefocus.attribution import Attribution

    placement = attribution_options(
        device=device, dtype=dtype, protocol=protocol, method_options=method_options
    )
    attributed, chosen = None, None
    if attribution is not None:  # read and checked before the model loads
        if not attribution.is_file():
            raise InvalidArgumentError(f"--attribution {attribution}: no such file")
        attributed = Attribution.load(attribution)
        check_not_contrastive(attributed, f"--attribution {attribution}")
        if methods != "all-whitebox":  # else every method the attribution has
            from codefocus.methods import method_names

            chosen = named("--methods", method_names, methods)
            missing = [name for name in chosen if name not in attributed.methods]
            if missing:
                raise InvalidArgumentError(
                    f"--methods: {', '.join(missing)} not in {attribution} (it has "
                    f"{', '.join(attributed.methods)})"
                )
    loaded = placement.load_model(model)
    if attributed is None:
        from codefocus.api import attribute
        from codefocus.data.tasks import get_task

        assert task is not None
        subject = get_task(task, data, labels=placement.run_protocol(methods).labels)
        attributed = attribute(loaded, subject, methods, placement)
    result = evaluate_faithfulness(loaded, attributed, chosen, data_dir=data, **options)
    rows = summarize([result], [attributed], k=10, resamples=200)
    _print(rows, output_format, f"{attributed.model} {attributed.task_id or ''}".strip())


def _study(study: Path, options: dict, methods: str, data, output_format: str) -> None:
    from codefocus.faithfulness import summarize
    from codefocus.faithfulness.study import load_faithfulness, run_study_faithfulness
    from codefocus.methods import method_names
    from codefocus.progress import make_progress
    from codefocus.studies.results import load_results

    chosen = None if methods in ("all", "all-whitebox") else method_names(methods)
    with make_progress(console) as progress:
        bar = progress.add_task("faithfulness", total=None)

        def started(total: int) -> None:
            progress.update(bar, total=total)

        def finished(model: str, task_id: str, result, error) -> None:
            progress.advance(bar)
            if error:
                console.print(f"[red]{model} {task_id}: {error}[/red]")

        counts = run_study_faithfulness(
            study, methods=chosen, data_dir=data, on_start=started, on_done=finished, **options
        )
    config, results = load_results(study, data)
    measured = load_faithfulness(study)
    for model in config.models:
        own = [
            measured[key]
            for r in results
            if (key := (model, r.attribution.task_id or "")) in measured
        ]
        if own:
            rows = summarize(own, [r.attribution for r in results if r.model == model], k=10)
            _print(rows, output_format, model)
    if output_format == "json":
        print_json({"faithfulness": counts, "study": str(study)})
    else:
        console.print(
            f"{counts['done']} measured, {counts['stored']} already stored, "
            f"{counts['failed']} failed; `codefocus report {study}` shows the section"
        )


def _print(rows, output_format: str, title: str) -> None:
    if output_format == "json":
        for row in rows:
            print(json.dumps({"model": title, **row.to_dict()}, sort_keys=True))
        return
    from rich.table import Table

    def interval(value, digits=3) -> str:
        if value is None:
            return "–"
        return f"{value.estimate:.{digits}f} [{value.low:.{digits}f}, {value.high:.{digits}f}]"

    table = Table(title=f"faithfulness — {title}")
    for column in (
        "method",
        "F1@10",
        "AOPC",
        "sufficiency",
        "lowest-ranked",
        "LDS",
        "code changed",
    ):
        table.add_column(column)
    for row in rows:
        changed = "–" if row.code_changed is None else f"{100 * row.code_changed:.0f}%"
        table.add_row(
            row.method,
            interval(row.f1),
            interval(row.aopc, 4),
            interval(row.aopc_sufficiency, 4),
            interval(row.lowest_aopc, 4),
            interval(row.lds),
            changed,
        )
    console.print(table)
