"""Study commands: run (or resume) a study, write its report, and the main demo job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    DataOption,
    MaxNewTokensOption,
    MethodsOption,
    ScopeOption,
    check_positive,
    check_scope,
    console,
    named,
    split,
)


def study_command(
    out: Annotated[Path, typer.Option(help="Study directory (created; re-run to resume).")],
    models: Annotated[str, typer.Option(help="Comma-separated: default, tiny, hub ids...")] = (
        "default"
    ),
    methods: MethodsOption = "all-whitebox",
    benchmarks: Annotated[str, typer.Option(help="humaneval, mbpp")] = "humaneval",
    limit: Annotated[int | None, typer.Option(help="Tasks per benchmark.")] = None,
    config: Annotated[Path | None, typer.Option(help="A TOML file with the same keys.")] = None,
    executor: Annotated[str, typer.Option(help="local or ray")] = "local",
    max_new_tokens: MaxNewTokensOption = None,
    scope: ScopeOption = "study",
    data: DataOption = None,
) -> None:
    """Run (or resume) a study: models x tasks x methods, stored in OUT/study.sqlite."""
    from dataclasses import replace

    from codefocus.methods import resolve_methods
    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig

    if config is not None:
        study = StudyConfig.from_file(config)
        if data is not None:
            study = replace(study, data_dir=str(data))
    else:
        named("--methods", resolve_methods, methods)  # before any model loads
        check_positive("--limit", limit)
        check_positive("--max-new-tokens", max_new_tokens)
        study = StudyConfig(
            models=tuple(split(models)),
            methods=tuple(split(methods)),
            benchmarks=tuple(split(benchmarks)),
            limit=limit,
            max_new_tokens=max_new_tokens,
            scope=check_scope(scope),
            data_dir=str(data) if data else None,
        )
    summary = run_study(study, out, executor)
    console.print(summary.line())
    for failure in summary.failures[:10]:
        console.print(f"[red]failed:[/red] {failure}", highlight=False, markup=False)


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
    tasks: Annotated[int, typer.Option(help="HumanEval tasks with programmer labels.")] = 10,
    perturbation_tasks: Annotated[
        int,
        typer.Option(
            help="Of those, how many (shortest reference first) also get BERT masking and SHAP "
            "(about 1.5-3 minutes each on 2 CPU cores)."
        ),
    ] = 0,
    data: DataOption = None,
) -> None:
    """The main job on the embedded defaults: the packaged model, the first 10 labelled HumanEval
    tasks with the ten white-box methods (with --perturbation-tasks N, BERT masking and SHAP too on
    the N of them with the shortest reference solutions: the slowest methods, one regeneration
    per perturbed prompt); then the study report. Resumes if interrupted."""
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
