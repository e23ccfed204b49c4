"""Code-classification lab commands: AutoFocus on an attention-pooled classifier, and the
memorization study."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    DataOption,
    ForceOption,
    check_choice,
    check_output_file,
    check_positive,
    console,
    parse_ints,
    write_output,
)
from codefocus.errors import DataError, InvalidArgumentError
from codefocus.progress import make_progress

autofocus_app = typer.Typer(
    no_args_is_help=True, help="AutoFocus on an attention-pooled code classifier."
)


ENCODERS = ("transformer", "ggnn")


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}"


@autofocus_app.command("train")
def autofocus_train(
    out: Annotated[Path, typer.Option(help="Directory for the dataset split, model and metrics.")],
    per_class: Annotated[int | None, typer.Option(help="Files read per class (subset).")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Maximum epochs (early stopping); 30 / 60 for ggnn.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for split, initialisation and order.")] = 0,
    encoder: Annotated[
        str, typer.Option(help="transformer (tokens) or ggnn (program graphs, as AutoFocus)")
    ] = "transformer",
    pooling: Annotated[
        str,
        typer.Option(
            help="GGNN pooling: softmax-dot (AutoFocus's softmax of h_i.a), sigmoid-gate or "
            "softmax-gate (a learned score of h_T and h_0)."
        ),
    ] = "softmax-dot",
    language: Annotated[
        str, typer.Option(help="java (bi-tbcnn-java) or cpp (bi-tbcnn-cpp)")
    ] = "java",
    data: DataOption = None,
) -> None:
    """Train the classifier on the algorithm data (deduplicated, 70/10/20 split)."""
    check_positive("--epochs", epochs)
    check_positive("--per-class", per_class)
    check_choice("--encoder", encoder, ENCODERS)
    from codefocus.lab.ggnn import OLD_POOLING_NAMES, POOLINGS

    pooling = check_choice("--pooling", pooling, tuple(POOLINGS), OLD_POOLING_NAMES)
    check_choice("--language", language, ("java", "cpp"))
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"--out: {out} is a file, not a directory")
    from codefocus.lab.datasets import load_algorithms
    from codefocus.storage import write_text_atomic

    dataset = load_algorithms(data, per_class, seed, language)
    console.print(
        f"data: {dataset.report}; train {len(dataset.train)}, "
        f"valid {len(dataset.valid)}, test {len(dataset.test)}"
    )
    dataset.save(out / "dataset")
    from codefocus.lab.ggnn import build_classifier

    model = build_classifier(dataset, encoder, seed, pooling)
    epochs = epochs or (60 if encoder == "ggnn" else 30)
    with make_progress(console) as progress:
        bar = progress.add_task("training", total=epochs)
        result = model.fit(
            dataset,
            epochs,
            progress=lambda epoch, h: progress.update(
                bar, completed=epoch, description=f"training (valid acc {h['valid_accuracy']:.3f})"
            ),
        )
    model.save(out / "model")
    result["test_accuracy"] = model.accuracy(dataset.test)
    write_text_atomic(out / "metrics.json", json.dumps(result, indent=1))
    console.print(f"test accuracy {result['test_accuracy']:.3f}")


@autofocus_app.command("analyze")
def autofocus_analyze(
    directory: Annotated[Path, typer.Argument(help="A directory written by autofocus train.")],
    limit: Annotated[int | None, typer.Option(help="Only the first N test programs.")] = None,
    minimal_limit: Annotated[
        int | None,
        typer.Option(help="Search the minimal program of the first N only (default: all)."),
    ] = None,
) -> None:
    """Attention vs statement deletion on the test programs; writes analysis.json."""
    check_positive("--limit", limit)
    check_positive("--minimal-limit", minimal_limit, allow_zero=True)
    from codefocus.lab.autofocus import analyse, summary
    from codefocus.lab.datasets import LabDataset
    from codefocus.lab.ggnn import load_classifier
    from codefocus.storage import write_text_atomic

    if not (directory / "model" / "classifier.json").is_file():
        raise DataError(f"no trained model in {directory}: run codefocus autofocus train first")
    model = load_classifier(directory / "model")
    dataset = LabDataset.load(directory / "dataset")
    programs = dataset.test[:limit]
    analyses = []
    with make_progress(console) as progress:
        bar = progress.add_task("analysing", total=len(programs))
        for index, sample in enumerate(programs):
            search = minimal_limit is None or index < minimal_limit
            analyses.append(analyse(sample.code, sample.label, model, minimal=search))
            progress.advance(bar)
    result = summary(analyses)
    write_text_atomic(
        directory / "analysis.json",
        json.dumps({"summary": result, "programs": [a.to_dict() for a in analyses]}),
    )
    if result["pearson_mean"] is None:
        console.print("no program has a defined correlation (too few statements)")
        return
    console.print(
        f"pearson mean {result['pearson_mean']:.3f} sd {result['pearson_sd']:.3f} "
        f"over {result['with_correlation']} programs; size alone "
        f"{_fmt(result['size_pearson_mean'])}, partial given size {_fmt(result['partial_mean'])}"
    )
    if result["minimal_programs"]:
        console.print(
            f"minimal programs ({result['minimal_programs']}): keep "
            f"{_fmt(result['minimal_kept_share_mean'])} of the statements; keep the prediction "
            f"{_fmt(result['minimal_keeps_prediction'])}, the true class "
            f"{_fmt(result['minimal_true_class'])}"
        )


@autofocus_app.command("show")
def autofocus_show(
    directory: Annotated[Path, typer.Argument(help="A directory with analysis.json.")],
    index: Annotated[int, typer.Option(help="Which analysed program.")] = 0,
    output_format: Annotated[str, typer.Option("--format", help="text or html")] = "text",
    out: Annotated[Path | None, typer.Option(help="Write the HTML here.")] = None,
    grey: Annotated[
        str,
        typer.Option(
            help="Grey levels: program (the program's largest score is black) or absolute "
            "(scores on the fixed 0-1 scale, as AutoFocus)."
        ),
    ] = "program",
    force: ForceOption = False,
) -> None:
    """A program in grey scale by attention and by deletion effect, side by side."""
    from codefocus.lab.autofocus import GREY_SCALES, ProgramAnalysis
    from codefocus.lab.datasets import LabDataset
    from codefocus.reports.autofocus import analysis_html, print_analysis

    output_format = check_choice("--format", output_format, ("text", "html"), {"terminal": "text"})
    grey = check_choice("--grey", grey, GREY_SCALES)
    if output_format == "html":
        check_output_file(out, force)
    elif out is not None:
        raise InvalidArgumentError("--out needs --format html")
    path = directory / "analysis.json"
    if not path.is_file():
        raise DataError(f"no analysis in {directory}: run codefocus autofocus analyze first")
    try:
        programs = json.loads(path.read_text(encoding="utf-8"))["programs"]
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{path} is not an analysis written by autofocus analyze ({error})"
        ) from None
    if not 0 <= index < len(programs):
        raise InvalidArgumentError(f"--index must be between 0 and {len(programs) - 1}")
    analysis = ProgramAnalysis.from_dict(programs[index])
    dataset = LabDataset.load(directory / "dataset")
    if output_format == "html":
        write_output(analysis_html(analysis, dataset.language, dataset.classes, grey), out)
    else:
        print_analysis(analysis, dataset.language, console, grey)


def memorization_command(
    out: Annotated[Path, typer.Option(help="Directory for CSVs, JSON, plots and report.html.")],
    dataset: Annotated[
        str, typer.Option(help="algorithms, methodnames, or a saved dataset directory")
    ] = "algorithms",
    model: Annotated[
        str,
        typer.Option(help="transformer, transformer-large (10x its parameters) or attention-bag"),
    ] = "transformer",
    noise: Annotated[str, typer.Option(help="Noise levels in percent, comma-separated.")] = (
        "0,25,50,75,100"
    ),
    noise_kind: Annotated[
        str, typer.Option(help="label (wrong labels) or input (statements deleted)")
    ] = "label",
    epochs: Annotated[int, typer.Option(help="Epochs per level (fixed, no early stop).")] = 30,
    seed: Annotated[int, typer.Option(help="Seed for split, noise, initialisation, order.")] = 0,
    per_class: Annotated[int | None, typer.Option(help="algorithms: files per class.")] = None,
    csr_programs: Annotated[
        int | None, typer.Option(help="Test programs used for the critical sample ratio.")
    ] = None,
    renamings: Annotated[
        int | None,
        typer.Option(help="CSR: variables renamed per test program (default: each variable)."),
    ] = None,
    data: DataOption = None,
) -> None:
    """Train under 0-100 % label (or input) noise; F1, score spread, Gini of loss, CSR per epoch."""
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

    from codefocus.lab.memorization import MemorizationConfig, run_memorization
    from codefocus.reports.memorization import reading, write_report

    levels = parse_ints(noise, "--noise", "noise must be percentages like 0,50")
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"--out: {out} is a file, not a directory")
    config = MemorizationConfig(
        dataset=dataset,
        model=model,
        noise_kind=noise_kind,
        noise=levels,
        epochs=epochs,
        seed=seed,
        per_class=per_class,
        csr_programs=csr_programs,
        renamings=renamings,
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} epochs"),
        TimeRemainingColumn(),
    )
    with make_progress(console, *columns) as progress:
        bar = progress.add_task("loading data", total=len(levels) * epochs)

        def on_epoch(level: int, record) -> None:
            progress.update(
                bar,
                advance=1,
                description=f"{level}% {noise_kind} noise, epoch {record.epoch}: "
                f"train acc {record.train_accuracy:.2f}, test F1 {record.test_f1:.2f}",
            )

        def on_dataset(loaded) -> None:
            progress.update(bar, description="renaming test programs")
            progress.console.print(
                f"{loaded.name}: {len(loaded.classes)} classes; train {len(loaded.train)}, "
                f"valid {len(loaded.valid)}, test {len(loaded.test)}"
            )

        result = run_memorization(
            config, out, data_dir=data, on_epoch=on_epoch, on_dataset=on_dataset
        )
    report = write_report(result, out)
    for level in result.levels:
        last = level.epochs[-1]
        print(
            f"{level.noise}% {noise_kind} noise: train acc {last.train_accuracy:.3f} "
            f"test F1 {result.primary_f1(last, 'test'):.3f} gini {last.gini:.3f} "
            f"csr {last.csr:.3f}"
        )
    for line in reading(result):
        console.print(line)
    console.print(f"CSV, JSON and plots in {out}; report: {report}")
