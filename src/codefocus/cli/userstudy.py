"""User-study commands (RQ4): create a blinded study, serve it, analyze the answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    DataOption,
    ForceOption,
    FormatOption,
    check_choice,
    check_output_file,
    check_positive,
    check_range,
    console,
    named,
    print_json,
    split,
)
from codefocus.errors import InvalidArgumentError

userstudy_app = typer.Typer(
    no_args_is_help=True,
    help="A blinded, randomized rating study of attribution methods (the study's RQ4).",
)

UsDir = Annotated[Path, typer.Argument(help="The user-study directory (from `userstudy create`).")]


@userstudy_app.command("create")
def create_command(
    study_dir: Annotated[Path, typer.Argument(help="A codefocus study directory.")],
    out: Annotated[Path, typer.Option(help="The user-study directory to create.")],
    methods: Annotated[
        str, typer.Option(help="Methods to compare, comma-separated (shown blinded).")
    ] = "shap,inputxgradient_coding,coding_all",
    tasks: Annotated[int, typer.Option(help="How many tasks each participant rates.")] = 5,
    k: Annotated[int, typer.Option("--k", help="Top-K words highlighted per method.")] = 10,
    seed: Annotated[int, typer.Option(help="Draws the tasks and every participant's order.")] = 0,
    compute: Annotated[
        bool,
        typer.Option(
            "--compute",
            help="Compute methods the study lacks (grows it; a missing study is run on "
            "--model over --tasks labelled HumanEval tasks).",
        ),
    ] = False,
    model: Annotated[str, typer.Option(help="Model for --compute of a new study.")] = "default",
    force: ForceOption = False,
    output_format: FormatOption = "text",
    data: DataOption = None,
) -> None:
    """Build a user study from the attributions of a codefocus study."""
    from codefocus.methods import method_names
    from codefocus.metrics.alignment import check_k
    from codefocus.userstudy.design import DESIGN_NAME, build_design
    from codefocus.userstudy.responses import RESPONSES_NAME

    check_choice("--format", output_format, ("text", "json"))
    chosen = named("--methods", method_names, split(methods))
    check_positive("--tasks", tasks)
    named("--k", check_k, k)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"--out: {out} is a file, not a directory")
    if (out / RESPONSES_NAME).exists():
        raise InvalidArgumentError(
            f"--out: {out} already holds participants' answers: a new design would not match "
            "them; use another --out"
        )
    check_output_file(out / DESIGN_NAME, force, "--out")
    if compute:
        _compute(study_dir, chosen, tasks, model, data)
    elif not (study_dir / "study.sqlite").is_file():
        raise InvalidArgumentError(
            f"STUDY_DIR: no codefocus study in {study_dir} "
            "(run `codefocus study`, or add --compute)"
        )
    design = build_design(study_dir, chosen, tasks, k=k, seed=seed, data_dir=data)
    out.mkdir(parents=True, exist_ok=True)
    path = design.save(out)
    if output_format == "json":
        print_json({"design": str(path), "tasks": len(design.tasks), "methods": design.methods})
    else:
        console.print(
            f"user study: {path} ({len(design.tasks)} tasks x {len(design.methods)} methods, "
            f"top {k}, seed {seed}); serve it with `codefocus userstudy serve {out}`"
        )


def _compute(study_dir: Path, methods: list[str], tasks: int, model: str, data) -> None:
    """Grow the study by the methods it lacks, or run a new one."""
    from dataclasses import replace

    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import STORE_NAME, StudyConfig
    from codefocus.studies.store import StudyStore

    if (study_dir / STORE_NAME).is_file():
        store = StudyStore(study_dir / STORE_NAME)
        try:
            config = StudyConfig.from_dict(store.meta("config", {}))
        finally:
            store.close()
        grown = tuple(dict.fromkeys([*config.methods, *methods]))
        config = replace(config, methods=grown, perturbation_tasks=None)
    else:
        config = StudyConfig(models=(model,), methods=tuple(methods), limit=tasks)
    if data is not None:
        config = replace(config, data_dir=str(data))
    summary = run_study(config, study_dir, console=console)
    console.print(f"{study_dir}: {summary.line()}")
    for failure in summary.failures[:5]:
        console.print(f"  failed: {failure}")


@userstudy_app.command("serve")
def serve_command(
    directory: UsDir,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[
        str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
) -> None:
    """Serve the study to participants in the browser."""
    from codefocus.userstudy.app import create_app

    check_range("--port", port, 1, 65535)
    app = create_app(directory)  # a missing or damaged design fails here, before the server
    console.print(f"user study on http://{host}:{port}/ (Ctrl-C stops; answers are kept)")
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")


@userstudy_app.command("analyze")
def analyze_command(directory: UsDir, output_format: FormatOption = "text") -> None:
    """Ratings per method and question, Welch's t-tests (Holm), charts, open answers."""
    from codefocus.userstudy.analysis import analyze

    check_choice("--format", output_format, ("text", "json"))
    analysis, paths = analyze(directory)
    if output_format == "json":
        print_json(analysis.to_dict())
        return
    from rich.table import Table

    table = Table(title=f"{analysis.participants} participants ({analysis.finished} finished)")
    for column in ("question", "method", "n", "mean", "sd", "median"):
        table.add_column(column)
    for s in analysis.summaries:
        table.add_row(
            s.question, s.method, str(s.n), f"{s.mean:.2f}", f"{s.sd:.2f}", f"{s.median:.1f}"
        )
    console.print(table)
    for t in analysis.tests:
        console.print(
            f"{t.question} {t.a} vs {t.b}: t = {t.t:.2f}, p = {t.p:.3g}, "
            f"Holm p = {t.p_holm:.3g}, d = {t.cohen_d:.2f}"
        )
    console.print("wrote " + ", ".join(str(p) for p in paths))


@userstudy_app.command("export")
def export_command(
    directory: UsDir,
    out: Annotated[Path, typer.Option(help="The JSON file to write.")],
    force: ForceOption = False,
) -> None:
    """Write every participant, rating and open answer as JSON."""
    import json

    from codefocus.storage import write_text_atomic
    from codefocus.userstudy.design import StudyDesign
    from codefocus.userstudy.responses import ResponseStore

    check_output_file(out, force)
    StudyDesign.load(directory)
    write_text_atomic(out, json.dumps(ResponseStore(directory).export(), indent=1))
    console.print(f"wrote {out}")


@userstudy_app.command("import")
def import_command(
    directory: UsDir,
    responses: Annotated[Path, typer.Argument(help="A JSON file from `userstudy export`.")],
) -> None:
    """Add the responses of the same study run elsewhere."""
    from codefocus.userstudy.design import StudyDesign
    from codefocus.userstudy.responses import ResponseStore, read_export

    design = StudyDesign.load(directory)
    added = ResponseStore(directory).import_(read_export(responses), design.methods)
    console.print(f"imported {added} participants")
