"""Study commands: run (or resume) a study, write its report, and the main demo job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    DataOption,
    DeviceOption,
    DtypeOption,
    FormatOption,
    MaxMemoryOption,
    MaxNewTokensOption,
    MethodOptionOption,
    MethodsOption,
    ProtocolOption,
    ScopeOption,
    VerdictsOption,
    attribution_options,
    check_choice,
    check_positive,
    console,
    either_spelling,
    named,
    old_spelling,
    parse_method_options,
    print_json,
    split,
)
from codefocus.errors import InvalidArgumentError
from codefocus.studies.runner import VERDICT_POLICIES


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
    scope: ScopeOption = None,
    protocol: ProtocolOption = "codefocus",
    verdicts: VerdictsOption = "all",
    output_format: FormatOption = "text",
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    max_memory: MaxMemoryOption = None,
    method_option: MethodOptionOption = None,
    data: DataOption = None,
) -> None:
    """Run (or resume) a study: models x tasks x methods, stored in OUT/study.sqlite.

    Under --protocol kou2024 the results can be scored beside the study's five models with
    codefocus reproduce kou2024 --add OUT."""
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
            scope=scope is not None,
            protocol=protocol != "codefocus",
            verdicts=verdicts != "all",
            device=device != "auto",
            dtype=dtype != "auto",
            max_memory=max_memory is not None,
            method_option=bool(method_option),
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
        options = attribution_options(
            protocol=protocol,
            scope=scope,
            device=device,
            dtype=dtype,
            max_memory=max_memory,
            method_options=parse_method_options(method_option),
        )
        named("--methods", options.methods, methods)  # before any model loads
        study = StudyConfig(
            models=tuple(split(model)),
            methods=tuple(split(methods)),
            benchmarks=tuple(split(benchmark)),
            limit=limit,
            max_new_tokens=max_new_tokens,
            options=options,
            verdicts=check_choice("--verdicts", verdicts, VERDICT_POLICIES),
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
    prompts: Annotated[
        int,
        typer.Option(
            "--prompts",
            help="Labelled prompts for the ten white-box methods, HumanEval and MBPP in the "
            "study's mix (164 : 970).",
        ),
    ] = 100,
    perturbation_prompts: Annotated[
        int,
        typer.Option(
            "--perturbation-prompts",
            help="Of those, how many (in the same mix, shortest reference first) also get BERT "
            "masking and SHAP.",
        ),
    ] = 10,
    second_view: Annotated[
        int,
        typer.Option(
            "--second-view",
            help="Also run the ten white-box methods under protocol codefocus (words, layers, "
            "summed steps, repaired labels) on this many prompts in the same mix, and show them "
            "in the report as a second view, not comparable with Table 2. 0: none (the demo's "
            "15-minute time is without it).",
        ),
    ] = 0,
    tasks: Annotated[int | None, old_spelling("--tasks", "--prompts")] = None,
    perturbation_tasks: Annotated[
        int | None, old_spelling("--perturbation-tasks", "--perturbation-prompts")
    ] = None,
    protocol: ProtocolOption = "kou2024",
    verdicts: VerdictsOption = "attributed",
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    max_memory: MaxMemoryOption = None,
    data: DataOption = None,
) -> None:
    """The main job on the embedded defaults: the study's twelve methods on the packaged model
    under the study's released protocol (kou2024), on a stratified sample of labelled prompts
    (100 for the ten white-box methods, 10 of them for BERT masking and SHAP); then the report,
    led by the live model scored beside the study's five models by the scorer that reproduces
    Table 2 (the measured time is in the README, from benchmarks/results/demo.json). Resumes if
    interrupted."""
    from codefocus.reports.study_report import write_report
    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig, demo_sample

    prompts = either_spelling("--prompts", prompts, "--tasks", tasks, 100)
    perturbation_prompts = either_spelling(
        "--perturbation-prompts",
        perturbation_prompts,
        "--perturbation-tasks",
        perturbation_tasks,
        10,
    )
    check_positive("--prompts", prompts)
    check_positive("--perturbation-prompts", perturbation_prompts, allow_zero=True)
    if perturbation_prompts > prompts:
        raise InvalidArgumentError(
            f"--perturbation-prompts: {perturbation_prompts} is more than --prompts {prompts}"
        )
    check_positive("--second-view", second_view, allow_zero=True)
    if second_view > prompts:
        raise InvalidArgumentError(f"--second-view: {second_view} is more than --prompts {prompts}")
    options = attribution_options(
        protocol=protocol, device=device, dtype=dtype, max_memory=max_memory
    )
    chosen_protocol = options.declared_protocol()
    check_choice("--verdicts", verdicts, VERDICT_POLICIES)
    sample, perturbed = demo_sample(prompts, perturbation_prompts, data, chosen_protocol.labels)
    console.print(
        f"demo: {len(sample)} prompts ({sum(t.startswith('HumanEval') for t in sample)} "
        f"HumanEval, {sum(t.startswith('Mbpp') for t in sample)} MBPP), BERT masking and SHAP "
        f"on {len(perturbed)} ({', '.join(perturbed)}); protocol {chosen_protocol.name}; "
        f"verdicts: {verdicts}",
        highlight=False,
    )
    study = StudyConfig(
        models=("default",),
        methods=("all-whitebox", "bert_masking", "shap"),
        benchmarks=("humaneval", "mbpp"),
        task_ids=tuple(sample),
        perturbation_task_ids=tuple(perturbed),
        options=options,
        verdicts=verdicts,
        data_dir=str(data) if data else None,
    )
    summary = run_study(study, out, "local")
    console.print(summary.line())
    if second_view:
        from dataclasses import replace

        from codefocus.studies.runner import SECOND_VIEW

        view_options = attribution_options(
            protocol="codefocus", device=device, dtype=dtype, max_memory=max_memory
        )
        view_sample, _ = demo_sample(second_view, 0, data, view_options.declared_protocol().labels)
        console.print(
            f"second view: protocol codefocus on {len(view_sample)} prompts "
            f"({', '.join(view_sample)}), the ten white-box methods",
            highlight=False,
        )
        view = replace(
            study,
            methods=("all-whitebox",),
            task_ids=tuple(view_sample),
            perturbation_task_ids=(),
            options=view_options,
            verdicts="none",
        )
        console.print(run_study(view, out / SECOND_VIEW, "local").line())
    console.print(f"report: {write_report(out, data)}")
