"""The memorization study (Rabin et al.): models x label-noise levels x seeds on one dataset, CPU.

Every model named in --model (default: transformer and transformer-large, over 10x its parameters,
for Observation 1) trains on the same data and the same noised labels at every level in --noise,
for a fixed number of epochs, once per seed 0..N-1 (--seeds N, default 3). A seed draws the
label noise (the same for every model, nested across levels), the initialisation (the same for
every level) and the batch order; the data (split and --per-class subset) stay those of
--data-seed for every seed. Each model trains with Adam at its own peak learning rate
(``MODELS``, or --learning-rate for all) after a linear warmup over --warmup of the steps, then
--schedule's decay, the gradient clipped at --clip-norm; every entry records how it trained.
Both parameter counts (sum of p.numel()) are printed first, then one progress line per epoch
(flushed, so a log file shows them).

Results go to --out (default benchmarks/results/memorization.json), rewritten atomically after each
finished (seed, model, noise level); a re-run with the same settings and data resumes the finished
ones, and a larger --seeds adds seeds (--fresh starts over; other settings in an existing file are
refused, never mixed, and so is a file of the one-seed schema 1). The JSON holds, per entry, every
epoch's records and its summary; per (model, level), mean ± sd (sample sd, n - 1; null for one
seed) over the seeds of the summary's figures; the dataset's sizes, digest and manifest (for
method names: each package and version it was built from); and the models' parameter counts and
training. The run ends with one line per noise level (per model when several):

    transformer noise 25%: gini G±g test_f1 F±f csr C±c mean_score S±s seeds 3

gini, test_f1 (sub-token F1 for method names, macro-F1 otherwise) and csr are the last epoch's;
mean_score is the mean of the paper's predicted-score distribution (each epoch's test scores
sorted, then averaged over all epochs); each as mean±sd over the seeds. The lines before them give
the fit (train accuracy against the noised labels) the same way. --report DIR also writes each
model's and seed's CSVs, plots and page.

    CODEFOCUS_DATA=../shared/data python benchmarks/memorization_run.py
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from codefocus.errors import CodefocusError
from codefocus.lab.classifier import SCHEDULES
from codefocus.lab.memorization import (
    MODELS,
    EpochRecord,
    LevelResult,
    MemorizationConfig,
    MemorizationResult,
    load_lab_dataset,
    parameter_count,
    prepare,
    sizes_of,
    train_level,
    validate,
)
from codefocus.serialization import to_jsonable
from codefocus.storage import write_text_atomic

SCHEMA = 2  # 2: entries per seed and mean ± sd across seeds; 1 (one seed) is refused
# summary figures given as mean ± sd across seeds: (name across seeds, name in the summary)
ACROSS = (
    ("fit", "train_accuracy"),
    ("train_accuracy_clean", "train_accuracy_clean"),
    ("test_f1", "test_f1"),
    ("test_accuracy", "test_accuracy"),
    ("gini", "gini"),
    ("csr", "csr"),
    ("mean_score", "mean_score"),
    ("mean_score_last_epoch", "mean_score_last_epoch"),
)


def _ints(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated integers: {text!r}") from None


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="algorithms", help="algorithms, methodnames or a dir")
    parser.add_argument("--model", default="transformer,transformer-large", help="comma-separated")
    parser.add_argument("--noise", type=_ints, default=[0, 25, 50, 75, 100], help="percentages")
    parser.add_argument("--noise-kind", default="label", choices=["label", "input"])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds 0..N-1: noise draw, initialisation, order"
    )
    parser.add_argument("--data-seed", type=int, default=0, help="the split and subset, all seeds")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--learning-rate", type=float, help="Adam's peak for every model (default: each its own)"
    )
    parser.add_argument("--schedule", default="cosine", choices=SCHEDULES, help="after warmup")
    parser.add_argument("--warmup", type=float, default=0.1, help="share of steps warming up")
    parser.add_argument(
        "--clip-norm", type=float, default=1.0, help="gradient norm bound (0: no clipping)"
    )
    parser.add_argument("--per-class", type=int, help="algorithms: files read per class (smoke)")
    parser.add_argument(
        "--max-len", type=int, default=400, help="tokens kept per program (attention cost ~ len^2)"
    )
    parser.add_argument("--csr-programs", type=int, help="test programs used for CSR (all)")
    parser.add_argument("--renamings", type=int, help="CSR: variables renamed per program (each)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/memorization.json"))
    parser.add_argument("--fresh", action="store_true", help="ignore finished entries in --out")
    parser.add_argument("--report", type=Path, help="also write each model's CSVs, plots, page")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.model.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown or not args.models:
        parser.error(f"--model: choose from {', '.join(MODELS)}")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


def summary(level: LevelResult) -> dict:
    """What the last lines print, and the two views of the predicted scores."""
    last = level.epochs[-1]
    names = last.test_subtoken_f1 is not None
    over_epochs = level.scores_over_epochs()
    fitted = next((e.epoch for e in level.epochs if e.train_accuracy >= 0.95), None)
    return {
        "gini": last.gini,
        "test_f1": last.test_subtoken_f1 if names else last.test_f1,
        "test_f1_kind": "sub-token F1" if names else "macro-F1",
        "csr": last.csr,
        "mean_score": float(np.mean(over_epochs)) if over_epochs else float("nan"),
        "mean_score_last_epoch": float(np.mean(last.test_scores)) if last.test_scores else None,
        "train_accuracy": last.train_accuracy,
        "train_accuracy_clean": last.train_accuracy_clean,
        "test_accuracy": last.test_accuracy,
        "first_epoch_95_percent_fit": fitted,
        "scores_over_epochs": over_epochs,
        "scores_last_epoch": level.scores_last_epoch(),
    }


def _load(out: Path, fresh: bool, identity: dict) -> dict:
    """The results document to extend: the existing one when its settings and data match."""
    if fresh or not out.is_file():
        return {}
    document = json.loads(out.read_text(encoding="utf-8"))
    if document.get("schema") != SCHEMA:
        sys.exit(
            f"{out} holds results of schema {document.get('schema')} (one seed per entry), not "
            f"{SCHEMA} (entries per seed): pass --fresh to replace them, or another --out"
        )
    mine = json.loads(json.dumps(to_jsonable(identity)))
    differ = sorted(key for key in mine if document.get(key) != mine[key])
    if differ:
        sys.exit(
            f"{out} holds results of other settings or data ({', '.join(differ)} differ): "
            "pass --fresh to replace them, or another --out"
        )
    return document


def _save(out: Path, document: dict) -> None:
    write_text_atomic(out, json.dumps(to_jsonable(document), indent=1, allow_nan=False) + "\n")


def entry_key(model: str, noise_kind: str, noise: int, seed: int) -> str:
    return f"{model}/{noise_kind}/{noise}/seed{seed}"


def _level(args, config, noise, dataset, vocabulary, renamed, document) -> LevelResult:
    """One (seed, model, noise level): reused from ``document`` when finished, else trained and
    saved at once (a crash never loses a finished level)."""
    entries = document["entries"]
    key = entry_key(config.model, config.noise_kind, noise, config.seed)
    training = json.loads(json.dumps(config.training(len(dataset.train))))
    parameters = document["models"][config.model]["parameters"]
    if key in entries:
        stored = entries[key]
        differ = [
            name
            for name, value in (("training", training), ("parameters", parameters))
            if stored.get(name) != value
        ]
        if differ:
            sys.exit(
                f"{args.out}: {key} was trained otherwise ({', '.join(differ)} differ): pass "
                "--fresh to replace the results, or another --out"
            )
        print(f"{key}: finished in {args.out}, reused", flush=True)
        return LevelResult.from_dict(stored["level"])
    started = time.perf_counter()

    def progress(record: EpochRecord) -> None:
        f1 = record.test_subtoken_f1 if record.test_subtoken_f1 is not None else record.test_f1
        print(
            f"  {config.model} {noise:3d}% seed {config.seed} epoch {record.epoch:3d}: train acc "
            f"{record.train_accuracy:.3f} test F1 {f1:.3f} gini {record.gini:.3f} "
            f"csr {record.csr:.3f}",
            flush=True,
        )

    level = train_level(dataset, vocabulary, config, noise, renamed, on_epoch=progress)
    entries[key] = {
        "model": config.model,
        "noise_kind": config.noise_kind,
        "noise": noise,
        "seed": config.seed,
        "parameters": level.parameters,
        "training": training,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary(level),
        "level": level.to_dict(),
    }
    _save(args.out, document)
    return level


def mean_sd(values: list[float | None]) -> dict:
    """Mean and sample sd (n - 1) over the seeds that have the figure (a CSR over no program
    has none); NaN where undefined (the sd of one seed)."""
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    mean = float(np.mean(present)) if present else math.nan
    sd = float(np.std(present, ddof=1)) if len(present) > 1 else math.nan
    return {"mean": mean, "sd": sd, "seeds": len(present)}


def across_seeds(entries: list[dict]) -> dict:
    """One (model, noise level)'s entries, one per seed, as mean ± sd of each summary figure,
    and the first epoch of a 95 % fit per seed (None: never)."""
    first = entries[0]
    stats = {name: mean_sd([e["summary"][field] for e in entries]) for name, field in ACROSS}
    return {
        "model": first["model"],
        "noise_kind": first["noise_kind"],
        "noise": first["noise"],
        "parameters": first["parameters"],
        "seeds": [e["seed"] for e in entries],
        "test_f1_kind": first["summary"]["test_f1_kind"],
        **stats,
        "first_epoch_95_percent_fit": [e["summary"]["first_epoch_95_percent_fit"] for e in entries],
    }


def figure(stat: dict) -> str:
    """``mean±sd`` (``nan`` where undefined: the sd of one seed)."""
    return f"{stat['mean']:.3f}±{stat['sd']:.3f}"


def last_line(prefix: str, stats: dict) -> str:
    """``noise N%: gini G±g test_f1 F±f csr C±c mean_score S±s seeds K``."""
    return (
        f"{prefix}noise {stats['noise']}%: gini {figure(stats['gini'])} test_f1 "
        f"{figure(stats['test_f1'])} csr {figure(stats['csr'])} mean_score "
        f"{figure(stats['mean_score'])} seeds {len(stats['seeds'])}"
    )


def fit_line(prefix: str, stats: dict) -> str:
    firsts = ", ".join(
        "never" if e is None else str(e) for e in stats["first_epoch_95_percent_fit"]
    )
    return (
        f"{prefix}noise {stats['noise']}%: fit {figure(stats['fit'])} (true labels "
        f"{figure(stats['train_accuracy_clean'])}), test accuracy "
        f"{figure(stats['test_accuracy'])}; first epoch of 95% fit per seed: {firsts}"
    )


def main(argv: list[str] | None = None) -> None:
    try:
        run(_arguments(argv))
    except CodefocusError as error:
        sys.exit(f"error: {error}")


def run(args: argparse.Namespace) -> None:
    base = MemorizationConfig(
        dataset=args.dataset,
        model=args.models[0],
        noise_kind=args.noise_kind,
        noise=args.noise,
        epochs=args.epochs,
        seed=0,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        schedule=args.schedule,
        warmup=args.warmup,
        clip_norm=args.clip_norm or None,
        data_seed=args.data_seed,
        per_class=args.per_class,
        max_len=args.max_len,
        csr_programs=args.csr_programs,
        renamings=args.renamings,
    )
    for model in args.models:
        validate(replace(base, model=model))
    seeds = list(range(args.seeds))
    begin = time.perf_counter()
    dataset = load_lab_dataset(args.dataset, None, args.per_class, args.data_seed)
    vocabulary, renamed = prepare(base, dataset)
    sizes = sizes_of(dataset, renamed)
    print(
        f"data {dataset.name}: {len(dataset.classes)} classes; train {sizes['train']} valid "
        f"{sizes['valid']} test {sizes['test']}; CSR: {sizes['csr_variants']} renamings of "
        f"{sizes['csr_programs_with_variables']} test programs; vocabulary "
        f"{len(vocabulary.tokens)} tokens ({time.perf_counter() - begin:.0f} s)",
        flush=True,
    )
    # what every entry of the file shares (a seed is an entry's own)
    settings = {k: v for k, v in asdict(base).items() if k not in ("model", "noise", "seed")}
    identity = {"schema": SCHEMA, "settings": settings, "dataset_sha256": dataset.sha256()}
    document = _load(args.out, args.fresh, identity)
    document.update(identity)
    document["dataset"] = {
        "name": dataset.name,
        "language": dataset.language,
        "classes": dataset.classes,
        "sizes": sizes,
        "report": dataset.report,
        "manifest": dataset.manifest,
    }
    document["environment"] = {"python": platform.python_version()}
    models = document.setdefault("models", {})
    document.setdefault("entries", {})
    for model in args.models:
        count = parameter_count(model, vocabulary, dataset.classes, dataset.language)
        training = replace(base, model=model).training(len(dataset.train))
        models[model] = {**MODELS[model], "parameters": count, "training": training}
        print(f"model {model}: {count:,} parameters {MODELS[model]}; {training}", flush=True)
    if len(args.models) > 1:
        counts = [models[m]["parameters"] for m in args.models]
        print(f"parameter ratio largest/smallest: {max(counts) / min(counts):.1f}x", flush=True)

    results: dict[str, list[MemorizationResult]] = {model: [] for model in args.models}
    for seed in seeds:  # seed by seed: each finished seed is a whole picture of every model
        for model in args.models:
            config = replace(base, model=model, seed=seed)
            levels = [
                _level(args, config, noise, dataset, vocabulary, renamed, document)
                for noise in args.noise
            ]
            results[model].append(MemorizationResult(config, dataset.classes, sizes, levels))
    aggregated = document.setdefault("across_seeds", {})
    lines = []
    for model in args.models:
        prefix = f"{model} " if len(results) > 1 else ""
        for noise in args.noise:
            keys = [entry_key(model, args.noise_kind, noise, seed) for seed in seeds]
            stats = across_seeds([document["entries"][key] for key in keys])
            aggregated[f"{model}/{args.noise_kind}/{noise}"] = stats
            lines.append((prefix, stats))
    _save(args.out, document)

    from codefocus.reports.memorization import reading, write_report

    for model, runs in results.items():
        for line in reading(runs[0]):  # one seed's reading; the figures below are across seeds
            print(f"{model} seed {seeds[0]}: {line}")
        if args.report:
            for result in runs:
                folder = args.report / model / f"seed{result.config.seed}"
                print(f"{model} seed {result.config.seed}: report {write_report(result, folder)}")
    print(f"total {time.perf_counter() - begin:.0f} s; results {args.out}", flush=True)
    for prefix, stats in lines:
        print(fit_line(prefix, stats), flush=True)
    for prefix, stats in lines:
        print(last_line(prefix, stats), flush=True)


if __name__ == "__main__":
    main()
