"""AutoFocus over several seeds: per seed, train one classifier, analyse the test programs, and
report mean ± sd across the seeds.

Per encoder (``--encoder ggnn``, ``transformer`` or ``ggnn,transformer``) and GGNN pooling
(``--pooling``, default ``softmax-dot``: the paper's alpha_i = softmax(h_i^T a)), for each seed
0..N-1 (``--seeds N``; the seed fixes the 70/10/20 split, the initialisation and the batch order,
as ``codefocus autofocus train --seed``): test accuracy; per test program the Pearson (and
Spearman) correlation of a(s) with -delta(s), that of size alone, and the partial correlation
given size; the minimal-program statistics on the first ``--minimal-limit`` test programs (the
share of statements kept, whether the minimal program keeps the prediction). Then, across the
seeds, mean ± sd (sample sd, n - 1; ``nan`` for one seed) of the per-seed figures. Ends with one
line per encoder run, the GGNN's for the first ``--pooling`` given:

    ggnn: test accuracy A±a pearson mean M±m partial P±p seeds N
    transformer: test accuracy A±a pearson mean M±m partial P±p seeds N

Results go to ``--out`` (default benchmarks/results/autofocus.json) as JSON, rewritten atomically
after every seed: one entry per encoder/pooling/seed, with its settings. A rerun skips the entries
already there with the same settings (``--fresh``: start again from an empty file).

    CODEFOCUS_DATA=../shared/data python benchmarks/autofocus_run.py --encoder ggnn --seeds 3 \\
        [--pooling softmax-dot,sigmoid-gate --epochs N --limit N --minimal-limit N --language cpp]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from codefocus.errors import InvalidArgumentError
from codefocus.lab.autofocus import ProgramAnalysis, analyse, summary
from codefocus.lab.ggnn import DEFAULT_POOLING, build_classifier, resolve_pooling
from codefocus.storage import write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git  # noqa: E402  (this folder, not a package)

sys.path.pop(0)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "autofocus.json"
ENCODERS = ("ggnn", "transformer")
DEFAULT_EPOCHS = {"ggnn": 60, "transformer": 30}
# The minimal-program search classifies once per statement, one deletion after the other (a
# batch of one each time), where the deletion effects batch 32 deletions. The whole GGNN analysis
# of the 77 Java test programs took 135 s on 2 cores (docs/autofocus.md, one seed), so the search
# costs at most about 1.5 s per program, less for the transformer: 30 programs keep it under a
# minute per seed and encoder, a few minutes for three seeds.
DEFAULT_MINIMAL_LIMIT = 30
# per-seed figures reported as mean ± sd across seeds
ACROSS = (
    "test_accuracy",
    "pearson_mean",
    "spearman_mean",
    "size_pearson_mean",
    "partial_mean",
    "minimal_kept_share_mean",
    "minimal_keeps_prediction",
    "minimal_true_class",
)


def say(text: str) -> None:
    print(text, flush=True)  # a log file shows progress as it happens


def run_key(encoder: str, pooling: str, seed: int) -> str:
    return f"{encoder}/{pooling}/seed{seed}"


def load_results(path: Path, fresh: bool) -> dict:
    if fresh or not path.is_file():
        return {"benchmark": "autofocus_run", "runs": {}}
    record = json.loads(path.read_text(encoding="utf-8"))
    record.setdefault("runs", {})
    return record


def save_results(path: Path, record: dict) -> None:
    record["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    record["commit"] = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")
    record["uncommitted_changes"] = None if status is None else bool(status)
    write_text_atomic(path, json.dumps(_finite(record), indent=1, allow_nan=False))


def program_record(analysis: ProgramAnalysis) -> dict:
    """What the figures over programs need, without the source text."""
    return {
        "label": analysis.label,
        "predicted": analysis.predicted,
        "confidence": analysis.confidence,
        "statements": len(analysis.statements),
        "pearson": analysis.pearson,
        "spearman": analysis.spearman,
        "size_pearson": analysis.size_pearson,
        "partial": analysis.partial,
        "kept_share": analysis.kept_share,
        "minimal_predicted": analysis.minimal_predicted,
    }


def train_and_analyse(dataset, encoder: str, pooling: str, seed: int, settings: dict) -> dict:
    """One seed of one encoder/pooling: the entry stored in the results."""
    name = f"seed {seed} {encoder}" + (f" ({pooling})" if encoder == "ggnn" else "")
    start = time.perf_counter()
    model = build_classifier(dataset, encoder, seed, pooling)
    fitted = model.fit(
        dataset,
        settings["epochs"],
        progress=lambda epoch, h: say(
            f"  {name} epoch {epoch}: loss {h['loss']:.3f} valid {h['valid_accuracy']:.3f} "
            f"({time.perf_counter() - start:.0f} s)"
        ),
    )
    accuracy = model.accuracy(dataset.test)
    trained = time.perf_counter() - start
    say(f"  {name}: test accuracy {accuracy:.3f}, trained in {trained:.0f} s; analysing")
    programs = dataset.test[: settings["limit"] or None]
    searched = settings["minimal_limit"] or len(programs)
    start = time.perf_counter()
    analyses = []
    for index, sample in enumerate(programs):
        analyses.append(analyse(sample.code, sample.label, model, minimal=index < searched))
        if (index + 1) % 10 == 0 or index + 1 == len(programs):
            say(
                f"  {name}: analysed {index + 1}/{len(programs)} "
                f"({time.perf_counter() - start:.0f} s)"
            )
    figures = summary(analyses)
    return {
        "encoder": encoder,
        "pooling": pooling,
        "seed": seed,
        "settings": settings,
        "data": {"train": len(dataset.train), "valid": len(dataset.valid), "test": len(programs)},
        "epochs_run": len(fitted["history"]),
        "best_valid_accuracy": fitted["best_valid_accuracy"],
        "test_accuracy": accuracy,
        "seconds": {"training": trained, "analysis": time.perf_counter() - start},
        "summary": figures,
        "programs": [program_record(a) for a in analyses],
    }


def mean_sd(values: list[float | None]) -> dict:
    """Mean and sample sd (n - 1) over the seeds that have the figure; NaN where undefined."""
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    mean = float(np.mean(present)) if present else math.nan
    sd = float(np.std(present, ddof=1)) if len(present) > 1 else math.nan
    return {"mean": mean, "sd": sd, "seeds": len(present)}


def across_seeds(entries: list[dict]) -> dict:
    def value(entry: dict, name: str):
        return entry["test_accuracy"] if name == "test_accuracy" else entry["summary"][name]

    return {name: mean_sd([value(e, name) for e in entries]) for name in ACROSS}


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def figure(stat: dict, seeds: int | None = None) -> str:
    """``mean±sd``; with ``seeds``, how many seeds had the figure when fewer did."""
    fewer = f" ({stat['seeds']} seeds)" if seeds is not None and stat["seeds"] < seeds else ""
    return f"{stat['mean']:.3f}±{stat['sd']:.3f}{fewer}"


def headline(name: str, stats: dict, seeds: int) -> str:
    """The benchmark's last line(s): ``ggnn: test accuracy A±a pearson mean M±m partial P±p
    seeds N``."""
    return (
        f"{name}: test accuracy {figure(stats['test_accuracy'])} pearson mean "
        f"{figure(stats['pearson_mean'])} partial {figure(stats['partial_mean'])} seeds {seeds}"
    )


def detail(stats: dict, seeds: int) -> str:
    def shown(name: str) -> str:
        return figure(stats[name], seeds)

    return (
        f"  across seeds: pearson mean {shown('pearson_mean')}, partial {shown('partial_mean')}, "
        f"spearman {shown('spearman_mean')}, size alone {shown('size_pearson_mean')}; minimal "
        f"programs keep {shown('minimal_kept_share_mean')} of the statements, keep the "
        f"prediction {shown('minimal_keeps_prediction')}, true class "
        f"{shown('minimal_true_class')}"
    )


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="ggnn", help="ggnn, transformer or ggnn,transformer")
    parser.add_argument("--pooling", default=DEFAULT_POOLING, help="GGNN poolings, comma-separated")
    parser.add_argument("--seeds", type=int, default=3, help="seeds F..F+N-1 (F: --first-seed)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="the first seed (to run seeds in parallel)"
    )
    parser.add_argument("--language", default="java", choices=["java", "cpp"])
    parser.add_argument("--epochs", type=int, default=0, help="0: 60 for ggnn, 30 transformer")
    parser.add_argument("--limit", type=int, default=0, help="test programs analysed (0: all)")
    parser.add_argument(
        "--minimal-limit",
        type=int,
        default=DEFAULT_MINIMAL_LIMIT,
        help="test programs whose minimal program is searched (0: all analysed)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="the results JSON")
    parser.add_argument("--fresh", action="store_true", help="ignore the results already there")
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=[],
        help="results files of other runs (e.g. seeds run in parallel) whose runs join --out's",
    )
    args = parser.parse_args(argv)
    args.encoder = [e.strip() for e in args.encoder.split(",") if e.strip()]
    if not args.encoder or set(args.encoder) - set(ENCODERS):
        parser.error(f"--encoder: use {', '.join(ENCODERS)} (comma-separated)")
    try:
        args.pooling = [resolve_pooling(p.strip()) for p in args.pooling.split(",") if p.strip()]
    except InvalidArgumentError as error:
        parser.error(f"--pooling: {error}")
    if not args.pooling:
        parser.error("--pooling: give at least one")
    for option in ("seeds", "first_seed", "epochs", "limit", "minimal_limit"):
        if getattr(args, option) < (1 if option == "seeds" else 0):
            parser.error(f"--{option.replace('_', '-')} is too small")
    return args


def plan(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(encoder, pooling) pairs; the transformer pools by softmax(h_i^T a) as well."""
    return [
        (encoder, pooling)
        for encoder in args.encoder
        for pooling in (args.pooling if encoder == "ggnn" else [DEFAULT_POOLING])
    ]


def main(argv: list[str] | None = None) -> None:
    from codefocus.lab.datasets import load_algorithms

    args = parse_arguments(argv)
    record = load_results(args.out, args.fresh)
    for other in args.merge:  # runs of the same settings are then skipped below, as if run here
        record["runs"].update(load_results(other, False)["runs"])
    record["command"] = " ".join(["benchmarks/autofocus_run.py", *(argv or sys.argv[1:])])
    pairs = plan(args)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        dataset = None
        for encoder, pooling in pairs:
            settings = {
                "language": args.language,
                "epochs": args.epochs or DEFAULT_EPOCHS[encoder],
                "limit": args.limit,
                "minimal_limit": args.minimal_limit,
            }
            key = run_key(encoder, pooling, seed)
            stored = record["runs"].get(key)
            if stored is not None and stored.get("settings") == settings:
                say(f"{key}: in {args.out} already, skipped (--fresh runs it again)")
                continue
            if stored is not None:
                say(f"{key}: in {args.out} with other settings {stored.get('settings')}; rerun")
            if dataset is None:
                dataset = load_algorithms(seed=seed, language=args.language)
                say(
                    f"seed {seed}: {args.language} data, train {len(dataset.train)} valid "
                    f"{len(dataset.valid)} test {len(dataset.test)}"
                )
            record["runs"][key] = train_and_analyse(dataset, encoder, pooling, seed, settings)
            save_results(args.out, record)
            figures = record["runs"][key]["summary"]
            say(
                f"{key}: test accuracy {record['runs'][key]['test_accuracy']:.3f}, pearson mean "
                f"{_number(figures['pearson_mean'])} partial {_number(figures['partial_mean'])}, "
                f"minimal-program kept share {_number(figures['minimal_kept_share_mean'])}; saved "
                f"to {args.out}"
            )
    lines, summaries = [], {}
    for encoder, pooling in pairs:
        entries = [record["runs"][run_key(encoder, pooling, s)] for s in seeds]
        stats = across_seeds(entries)
        summaries[f"{encoder}/{pooling}"] = {"seeds": args.seeds, **stats}
        say(headline(f"{encoder} ({pooling})", stats, args.seeds))
        say(detail(stats, args.seeds))
        if encoder != "ggnn" or pooling == args.pooling[0]:
            lines.append(headline(encoder, stats, args.seeds))
    record["across_seeds"] = summaries
    save_results(args.out, record)
    for line in lines:
        say(line)


def _finite(value):
    """NaN (one seed's sd, a figure no seed has) as JSON ``null``."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


if __name__ == "__main__":
    main()
