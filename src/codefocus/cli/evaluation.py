"""Functional-correctness commands: write samples, run them against the tests in the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    BenchmarkOption,
    DataOption,
    DeviceOption,
    DtypeOption,
    ForceOption,
    FormatOption,
    MaxNewTokensOption,
    ModelOption,
    attribution_options,
    check_choice,
    check_output_file,
    check_positive,
    console,
    print_json,
)
from codefocus.errors import InvalidArgumentError


def generate_command(
    out: Annotated[Path, typer.Option(help="samples.jsonl to write (resumes if present)")],
    model: ModelOption = "default",
    benchmark: BenchmarkOption = "humaneval",
    n: Annotated[int, typer.Option(help="Samples per task.")] = 1,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    limit: Annotated[int | None, typer.Option(help="Only the first N tasks.")] = None,
    max_new_tokens: MaxNewTokensOption = None,
    force: ForceOption = False,
    output_format: FormatOption = "text",
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    data: DataOption = None,
) -> None:
    """Write samples in the human-eval / EvalPlus samples.jsonl format (resumable: an existing
    samples file is continued; any other file is replaced only with --force)."""
    from codefocus.data.tasks import load_tasks
    from codefocus.execution.generate import check_samples_file, generate_samples
    from codefocus.generation.records import GenerationSettings
    from codefocus.progress import make_progress

    check_choice("--format", output_format, ("text", "json"))
    check_positive("--n", n)
    check_positive("--limit", limit)
    check_positive("--max-new-tokens", max_new_tokens)
    check_positive("--temperature", temperature, allow_zero=True)
    placement = attribution_options(device=device, dtype=dtype)
    check_samples_file(out, force)
    tasks = load_tasks(benchmark, data, with_labels=False)[:limit]
    settings = GenerationSettings(
        max_new_tokens=max_new_tokens, do_sample=temperature > 0, temperature=temperature or 1.0
    )
    loaded = placement.load_model(model)
    with make_progress(console) as progress:
        bar = progress.add_task(f"generating ({benchmark})", total=len(tasks) * n)
        written = generate_samples(
            loaded, tasks, out, n, settings, lambda k: progress.advance(bar, k), replace=force
        )
    if output_format == "json":
        print_json({"samples_written": written, "out": str(out), "tasks": len(tasks), "n": n})
    else:
        console.print(f"{written} new samples; {out}")


def evaluate_command(
    samples: Annotated[str, typer.Argument(help="samples.jsonl, or 'canonical'")],
    benchmark: BenchmarkOption = "humaneval",
    workers: Annotated[int, typer.Option(help="Parallel sandboxed processes.")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds per program.")] = 3.0,
    out: Annotated[
        Path | None,
        typer.Option(help="Results file (default: <samples name>_results.jsonl here)."),
    ] = None,
    force: ForceOption = False,
    output_format: FormatOption = "text",
    data: DataOption = None,
) -> None:
    """Run samples against the tests in the sandbox; write per-sample results and pass@k."""
    import logging

    from codefocus.data.tasks import load_tasks
    from codefocus.execution.evaluate import (
        canonical_samples,
        evaluate_samples,
        read_samples,
        results_path,
        write_results,
    )
    from codefocus.execution.sandbox import Limits
    from codefocus.progress import make_progress

    check_choice("--format", output_format, ("text", "json"))
    check_positive("--workers", workers)
    check_positive("--timeout", timeout)
    if samples == "canonical":
        target = out or Path(f"{benchmark}-canonical.jsonl_results.jsonl")
    else:
        path = Path(samples)
        if not path.is_file():
            raise InvalidArgumentError(f"SAMPLES: file not found: {samples}")
        target = out or results_path(path)
    check_output_file(target, force)
    tasks = load_tasks(benchmark, data, with_labels=False)
    if samples == "canonical":
        programs = canonical_samples(tasks)
    else:
        logging.basicConfig(format="codefocus: warning: %(message)s", level=logging.WARNING)
        programs = read_samples(path, {t.task_id: t for t in tasks})
    with make_progress(console) as progress:
        bar = progress.add_task("evaluating", total=len(programs))
        evaluation = evaluate_samples(
            programs, Limits(timeout=timeout), workers, lambda _: progress.advance(bar)
        )
    write_results(target, evaluation.results)
    if output_format == "json":
        print_json(
            {
                "samples": len(evaluation.results),
                "counts": evaluation.counts,
                "pass_at_k": evaluation.pass_at_k,
                "results": str(target),
            }
        )
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(evaluation.counts.items()))
    console.print(f"{len(evaluation.results)} samples: {counts}; results in {target}")
    for name, value in evaluation.pass_at_k.items():
        print(f"{name}: {value:.3f}")
