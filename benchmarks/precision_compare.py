"""How far bfloat16 scores are from float32 on the default model: per white-box method, the
Spearman correlation of the two score vectors over the model's tokens and the overlap of
their top-10 tokens, per prompt,
with the same completion for both (the float32 model's), so only the attribution's precision
differs. Writes ``benchmarks/results/precision.json`` and ends with one line per method,
``<method>: spearman R top10 O``.

    CODEFOCUS_DATA=../shared/data .venv/bin/python benchmarks/precision_compare.py \\
        [--tasks humaneval/0,humaneval/2,mbpp/602 --protocol kou2024 --out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git  # noqa: E402  (this folder, not a package)

sys.path.pop(0)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "precision.json"
DEFAULT_TASKS = "humaneval/0,humaneval/2,humaneval/12,mbpp/602,mbpp/605,mbpp/617"
TOP = 10


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def top_overlap(a: np.ndarray, b: np.ndarray, k: int = TOP) -> float:
    """Share of float32's top-k units (stable order, NaN last) that bfloat16's top-k also has."""
    k = min(k, len(a))
    if k == 0:
        return float("nan")

    def top(values: np.ndarray) -> set[int]:
        keyed = np.where(np.isnan(values), -np.inf, values)
        return set(np.argsort(-keyed, kind="stable")[:k].tolist())

    return len(top(a) & top(b)) / k


def main() -> int:
    from codefocus.api import attribute
    from codefocus.data.tasks import get_task
    from codefocus.methods import STUDY_WHITEBOX
    from codefocus.options import AttributionOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--protocol", default="kou2024")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    refs = [r.strip() for r in args.tasks.split(",") if r.strip()]
    methods = list(STUDY_WHITEBOX)
    options = {
        dtype: AttributionOptions(protocol=args.protocol, dtype=dtype, device="cpu")
        for dtype in ("float32", "bfloat16")
    }
    models = {dtype: option.load_model("default") for dtype, option in options.items()}
    per_method: dict[str, dict[str, list[float]]] = {
        m: {"spearman": [], "top10": []} for m in methods
    }
    seconds = {"float32": 0.0, "bfloat16": 0.0}
    prompts = []
    for index, ref in enumerate(refs):
        task = get_task(ref)
        results = {}
        for dtype in ("float32", "bfloat16"):
            started = time.perf_counter()
            given = results.get("float32")
            results[dtype] = attribute(
                models[dtype],
                task,
                methods,
                options[dtype],
                completion=given.generated if given else None,  # float32's, for both
                cache=None,
            )
            seconds[dtype] += time.perf_counter() - started
        row = {"task": ref, "units": len(results["float32"].tokens)}
        for method in methods:  # the model's tokens: the units the study ranked
            a = np.asarray(results["float32"].token_scores[method], dtype=float)
            b = np.asarray(results["bfloat16"].token_scores[method], dtype=float)
            rho, overlap = spearman(a, b), top_overlap(a, b)
            per_method[method]["spearman"].append(rho)
            per_method[method]["top10"].append(overlap)
            row[method] = {"spearman": rho, "top10": overlap}
        prompts.append(row)
        print(
            f"[{index + 1}/{len(refs)}] {ref}: {row['units']} units; float32 "
            f"{seconds['float32']:.0f} s, bfloat16 {seconds['bfloat16']:.0f} s so far",
            flush=True,
        )
    summary = {
        m: {
            "spearman_mean": float(np.nanmean(v["spearman"])),
            "spearman_min": float(np.nanmin(v["spearman"])),
            "top10_mean": float(np.nanmean(v["top10"])),
            "top10_min": float(np.nanmin(v["top10"])),
        }
        for m, v in per_method.items()
    }
    record = {
        "benchmark": "precision",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD"),
        "model": "default",
        "protocol": args.protocol,
        "tasks": refs,
        "seconds": seconds,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "device": "cpu"},
        "methods": summary,
        "prompts": prompts,
    }
    from codefocus.storage import write_text_atomic

    write_text_atomic(args.out, json.dumps(record, indent=1) + "\n")
    for method, figures in summary.items():
        print(
            f"{method}: spearman {figures['spearman_mean']:.3f} top10 {figures['top10_mean']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
