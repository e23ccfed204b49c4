"""The memorization study (Rabin et al.): models x label-noise levels on one dataset, CPU.

Every model named in --model (default: transformer and transformer-large, over 10x its parameters,
for Observation 1) trains on the same data and the same noised labels at every level in --noise,
for a fixed number of epochs. Both parameter counts (sum of p.numel()) are printed first, then one
progress line per epoch (flushed, so a log file shows them).

Results go to --out (default benchmarks/results/memorization.json), rewritten atomically after each
finished (model, noise level); a re-run with the same settings and data resumes the finished ones
(--fresh starts over; other settings in an existing file are refused, never mixed). The JSON holds,
per entry, every epoch's records and the summary the last lines print; the dataset's sizes, digest
and manifest (for method names: each package and version it was built from); and the models'
parameter counts. The run ends with one line per noise level (per model when several):

    transformer noise 25%: gini G test_f1 F csr C mean_score S

gini, test_f1 (sub-token F1 for method names, macro-F1 otherwise) and csr are the last epoch's;
mean_score is the mean of the paper's predicted-score distribution (each epoch's test scores
sorted, then averaged over all epochs). --report DIR also writes each model's CSVs, plots and page.

    CODEFOCUS_DATA=../shared/data python benchmarks/memorization_run.py
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from codefocus.errors import CodefocusError
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

SCHEMA = 1


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
    parser.add_argument("--seed", type=int, default=0)
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


def _level(args, config, noise, dataset, vocabulary, renamed, document) -> LevelResult:
    """One (model, noise level): reused from ``document`` when finished, else trained and saved
    at once (a crash never loses a finished level)."""
    entries = document["entries"]
    key = f"{config.model}/{config.noise_kind}/{noise}"
    if key in entries:
        print(f"{key}: finished in {args.out}, reused", flush=True)
        return LevelResult.from_dict(entries[key]["level"])
    started = time.perf_counter()

    def progress(record: EpochRecord) -> None:
        f1 = record.test_subtoken_f1 if record.test_subtoken_f1 is not None else record.test_f1
        print(
            f"  {config.model} {noise:3d}% epoch {record.epoch:3d}: train acc "
            f"{record.train_accuracy:.3f} test F1 {f1:.3f} gini {record.gini:.3f} "
            f"csr {record.csr:.3f}",
            flush=True,
        )

    level = train_level(dataset, vocabulary, config, noise, renamed, on_epoch=progress)
    entries[key] = {
        "model": config.model,
        "noise_kind": config.noise_kind,
        "noise": noise,
        "parameters": level.parameters,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary(level),
        "level": level.to_dict(),
    }
    _save(args.out, document)
    return level


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
        seed=args.seed,
        per_class=args.per_class,
        max_len=args.max_len,
        csr_programs=args.csr_programs,
        renamings=args.renamings,
    )
    for model in args.models:
        validate(replace(base, model=model))
    begin = time.perf_counter()
    dataset = load_lab_dataset(args.dataset, None, args.per_class, args.seed)
    vocabulary, renamed = prepare(base, dataset)
    sizes = sizes_of(dataset, renamed)
    print(
        f"data {dataset.name}: {len(dataset.classes)} classes; train {sizes['train']} valid "
        f"{sizes['valid']} test {sizes['test']}; CSR: {sizes['csr_variants']} renamings of "
        f"{sizes['csr_programs_with_variables']} test programs; vocabulary "
        f"{len(vocabulary.tokens)} tokens ({time.perf_counter() - begin:.0f} s)",
        flush=True,
    )
    settings = {k: v for k, v in asdict(base).items() if k not in ("model", "noise")}
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
        models[model] = {**MODELS[model], "parameters": count}
        print(f"model {model}: {count:,} parameters {MODELS[model]}", flush=True)
    if len(args.models) > 1:
        counts = [models[m]["parameters"] for m in args.models]
        print(f"parameter ratio largest/smallest: {max(counts) / min(counts):.1f}x", flush=True)

    results = {}
    for model in args.models:
        config = replace(base, model=model)
        levels = [
            _level(args, config, noise, dataset, vocabulary, renamed, document)
            for noise in args.noise
        ]
        results[model] = MemorizationResult(config, dataset.classes, sizes, levels)
    _save(args.out, document)

    from codefocus.reports.memorization import reading, write_report

    for model, result in results.items():
        for line in reading(result):
            print(f"{model}: {line}" if len(results) > 1 else line)
        if args.report:
            print(f"{model}: report {write_report(result, args.report / model)}")
    print(f"total {time.perf_counter() - begin:.0f} s; results {args.out}", flush=True)
    for model, result in results.items():
        prefix = f"{model} " if len(results) > 1 else ""
        for level in result.levels:
            s = summary(level)
            print(
                f"{prefix}noise {level.noise}%: gini {s['gini']:.3f} test_f1 {s['test_f1']:.3f} "
                f"csr {s['csr']:.3f} mean_score {s['mean_score']:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
