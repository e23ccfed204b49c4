"""Study commands: run (or resume) a study, write its report, and the main demo job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    DataOption,
    FormatOption,
    MaxNewTokensOption,
    MethodsOption,
    ScopeOption,
    check_choice,
    check_positive,
    check_scope,
    console,
    named,
    print_json,
    split,
)
from codefocus.errors import InvalidArgumentError
from codefocus.methods import resolve_methods


def study_command(
    out: Annotated[Path, typer.Option(help="Study directory (created; re-run to resume).")],
    model: Annotated[
        str,
        typer.Option("--model", "--models", help="Models, comma-separated: default, tiny, ..."),
    ] = "default",
    methods: MethodsOption = "all-whitebox",
    benchmark: Annotated[
        str, typer.Option("--benchmark", "--benchmarks", help="humaneval, mbpp (comma-separated)")
    ] = "humaneval",
    limit: Annotated[int | None, typer.Option(help="Tasks per benchmark.")] = None,
    config: Annotated[
        Path | None, typer.Option(help="A TOML file with the same keys (instead of the options).")
    ] = None,
    executor: Annotated[str, typer.Option(help="local or ray")] = "local",
    max_new_tokens: MaxNewTokensOption = None,
    scope: ScopeOption = "study",
    output_format: FormatOption = "text",
    data: DataOption = None,
) -> None:
    """Run (or resume) a study: models x tasks x methods, stored in OUT/study.sqlite."""
    from dataclasses import replace

    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig

    check_choice("--format", output_format, ("text", "json"))
    check_choice("--executor", executor, ("local", "ray"))
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"--out: {out} is a file, not a study directory")
    if config is not None:
        given = _given_options(
            model=model != "default",
            methods=methods != "all-whitebox",
            benchmark=benchmark != "humaneval",
            limit=limit is not None,
            max_new_tokens=max_new_tokens is not None,
            scope=scope != "study",
        )
        if given:
            raise InvalidArgumentError(
                f"--config: the file sets the study; {given} would be ignored (put it in the file)"
            )
        study = StudyConfig.from_file(config)
        if data is not None:
            study = replace(study, data_dir=str(data))
    else:
        check_positive("--limit", limit)
        check_positive("--max-new-tokens", max_new_tokens)
        check_scope(scope)
        named("--methods", resolve_methods, methods)  # before any model loads
        study = StudyConfig(
            models=tuple(split(model)),
            methods=tuple(split(methods)),
            benchmarks=tuple(split(benchmark)),
            limit=limit,
            max_new_tokens=max_new_tokens,
            scope=scope,
            data_dir=str(data) if data else None,
        )
    summary = run_study(study, out, executor)
    if output_format == "json":
        print_json({**summary.to_dict(), "out": str(out)})
        return
    console.print(summary.line())
    for failure in summary.failures[:10]:
        console.print(f"[red]failed:[/red] {failure}", highlight=False, markup=False)


def _given_options(**given: bool) -> str:
    names = [f"--{name.replace('_', '-')}" for name, value in given.items() if value]
    return ", ".join(names)


def report_command(
    directory: Annotated[Path, typer.Argument(help="A study directory.")],
    data: DataOption = None,
) -> None:
    """Write DIR/report.html: one self-contained, offline page."""
    from codefocus.reports.study_report import write_report

    console.print(f"report: {write_report(directory, data)}")


def demo_command(
    out: Annotated[Path, typer.Option(help="Where the demo study and report go.")] = Path(
        "codefocus-demo"
    ),
    tasks: Annotated[int, typer.Option(help="HumanEval tasks with programmer labels.")] = 8,
    perturbation_tasks: Annotated[
        int,
        typer.Option(
            help="Of those, how many (shortest reference first) also get BERT masking and SHAP "
            "(about 1-1.5 minutes each on 2 CPU cores)."
        ),
    ] = 2,
    data: DataOption = None,
) -> None:
    """The main job on the embedded defaults: all twelve of the study's methods on the packaged
    model — the ten white-box methods on the first 8 labelled HumanEval tasks (HumanEval/0-7),
    BERT masking and SHAP on the 2 of them with the shortest reference solutions (HumanEval/2
    and /7); then the study report, led by the methods ranked as in the study's Table 3. About
    11 minutes on 2 CPU cores once the model is converted. Resumes if interrupted."""
    from codefocus.data.tasks import load_tasks
    from codefocus.reports.study_report import write_report
    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig

    check_positive("--tasks", tasks)
    check_positive("--perturbation-tasks", perturbation_tasks, allow_zero=True)
    chosen = [t for t in load_tasks("humaneval", data) if t.human_spans][:tasks]
    chosen.sort(key=lambda t: len(t.reference_solution or ""))  # shortest first: perturbed
    study = StudyConfig(
        models=("default",),
        methods=("all-whitebox", "bert_masking", "shap"),
        benchmarks=("humaneval",),
        task_ids=tuple(t.task_id for t in chosen),
        perturbation_tasks=perturbation_tasks,
        data_dir=str(data) if data else None,
    )
    summary = run_study(study, out, "local")
    console.print(summary.line())
    console.print(f"report: {write_report(out, data)}")
