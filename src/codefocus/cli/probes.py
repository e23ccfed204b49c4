"""The probe command: attention-guided robustness probes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from codefocus.cli.options import (
    BenchmarkOption,
    DataOption,
    DeviceOption,
    DtypeOption,
    FormatOption,
    MaxMemoryOption,
    MethodOptionOption,
    ModelOption,
    ProtocolOption,
    attribution_options,
    check_choice,
    check_positive,
    console,
    named,
    parse_ints,
    parse_ks,
    parse_method_options,
    print_json,
    split,
)
from codefocus.errors import InvalidArgumentError


def probe_command(
    out: Annotated[Path, typer.Option(help="Directory for the probes (re-run to resume).")],
    model: ModelOption = "default",
    benchmark: BenchmarkOption = "mbpp",
    limit: Annotated[int | None, typer.Option(help="Labelled tasks to try.")] = None,
    rank_by: Annotated[
        str,
        typer.Option(
            help="Methods (comma-separated), programmers, random, or all (every method the "
            "model supports)."
        ),
    ] = "bert_masking",
    k: Annotated[str, typer.Option("--k", help="How many top words to substitute.")] = "1,3",
    substitutes: Annotated[
        str, typer.Option(help="embedding, wordnet, codemodel, mlm:<id>")
    ] = "embedding",
    random_seeds: Annotated[str, typer.Option(help="Seeds of the random control.")] = "0,1,2",
    protocol: ProtocolOption = "codefocus",
    output_format: FormatOption = "text",
    device: DeviceOption = "auto",
    dtype: DtypeOption = "auto",
    max_memory: MaxMemoryOption = None,
    method_option: MethodOptionOption = None,
    data: DataOption = None,
) -> None:
    """Substitute the words a method ranks highest, regenerate, run the tests: break rates
    against random words, lowest-ranked words and the programmers' words."""
    from codefocus.methods import REGISTRY, method_names
    from codefocus.probes.analysis import write_outputs
    from codefocus.probes.runner import ProbeConfig, ProbeRun
    from codefocus.progress import make_progress

    check_choice("--format", output_format, ("text", "json"))
    check_choice("--benchmark", benchmark, ("humaneval", "mbpp"))
    check_positive("--limit", limit)
    ks = parse_ks(k)
    seeds = parse_ints(random_seeds, "--random-seeds", "seeds must be integers")
    options = attribution_options(
        protocol=protocol,
        substitutes=substitutes,
        device=device,
        dtype=dtype,
        max_memory=max_memory,
        method_options=parse_method_options(method_option),
    )
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"--out: {out} is a file, not a directory")
    rankings: list[str] = []
    for name in split(rank_by):
        if name == "all":
            white = not model.startswith(("http://", "https://", "openai:"))
            rankings += [m for m in REGISTRY if white or not REGISTRY[m].needs_white_box]
        elif name in ("programmers", "random"):
            rankings.append(name)
        else:
            rankings += named("--rank-by", method_names, [name])
    if not rankings:
        raise InvalidArgumentError(f"--rank-by: name at least one ranking, got {rank_by!r}")
    config = ProbeConfig(
        model=model,
        benchmark=benchmark,
        limit=limit,
        rank_by=tuple(dict.fromkeys(rankings)),
        ks=tuple(ks),
        random_seeds=tuple(seeds),
        data_dir=str(data) if data else None,
        options=options,
    )
    run = ProbeRun(config, out)
    with make_progress(console) as progress:
        bar = progress.add_task("probing", total=None)
        summary = run.run(
            lambda done, total, task_id: progress.update(
                bar, completed=done, total=total, description=f"probing {task_id}"
            )
        )
    analysis, paths = write_outputs(out)
    if output_format == "json":
        print_json({"summary": summary.to_dict(), "analysis": analysis.to_dict()})
        return
    console.print(
        f"{summary.tasks} tasks, {summary.passing} pass and were probed, {summary.probes} "
        f"probes, {len(summary.failed_units)} failed units, {summary.seconds:.0f} s"
    )
    for rate in analysis.rates:
        p = (
            ""
            if rate.p_value is None
            else f" (vs random {rate.vs_random:+.3f}, p {rate.p_value:.3g})"
        )
        console.print(
            f"{rate.ranking} k={rate.k} break rate {rate.rate:.3f} over {rate.tasks} tasks{p}"
        )
    console.print("wrote " + ", ".join(str(p) for p in paths))
