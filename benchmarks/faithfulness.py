"""Which attribution can you trust? Alignment with programmers beside faithfulness to the model,
per method, on labelled tasks of HumanEval and MBPP, on one model.

In one study directory (``--work``), one task at a time, the benchmarks taking turns: the
``codefocus`` study grows by the task, with every method that runs on the model (the
regeneration methods — occlusion, BERT masking, both SHAPs — on ``--perturbation-tasks`` of them:
those that already have them, then the first not yet measured), then ``codefocus faithfulness
--study`` measures it. A run stopped at any point has whole tasks, and resumes where it stopped;
a larger plan with the same options keeps every task measured (``--stages``: all attributions,
then all measurements). Per method it
reports F1@10 against the programmers and AOPC (nats per code token, top 1..K words deleted),
each with a 95% bootstrap interval over tasks, AOPC of sufficiency, the lowest-ranked control,
LDS, the share of tasks whose greedy code changed, and the seconds per task of the attribution
and of the faithfulness measurement; then the random control. Hierarchical leave-one-out is
compared with full leave-one-out on the tasks of the run, and the endpoint likelihood figures
(``endpoint_likelihood.py``, run on its own: it needs the llama.cpp server) are read from their
results file when it exists, and shown beside.

Writes ``benchmarks/results/faithfulness.json`` and ends with one line per method,
``<method>: f1@10 X aopc Y``.

    CODEFOCUS_DATA=../shared/data .venv/bin/python benchmarks/faithfulness.py \\
        [--humaneval 10 --mbpp 20] [--methods all] [--perturbation-tasks 6] [--k 10] \\
        [--work DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import ROOT, provenance, write_json  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
REGENERATION = {"occlusion", "bert_masking", "shap", "shap_partition"}  # the perturbation family


def pick_tasks(humaneval: int, mbpp: int, data_dir=None) -> list[str]:
    """Labelled tasks evenly spaced over each benchmark's ids (the same on every machine)."""
    from codefocus.data.tasks import load_tasks

    chosen = []
    for benchmark, count in (("humaneval", humaneval), ("mbpp", mbpp)):
        tasks = [t for t in load_tasks(benchmark, data_dir) if t.human_spans]
        step = max(1, len(tasks) // max(1, count))
        chosen += [t.task_id for t in tasks[::step][:count]]
    return chosen


def alternate(task_ids: Sequence[str]) -> list[str]:
    """The tasks with the benchmarks taking turns in proportion to their counts (the larger
    benchmark first on a tie of position), so a run stopped at any point has measured a mix."""
    by_benchmark: dict[str, list[str]] = {}
    for task_id in task_ids:
        by_benchmark.setdefault(task_id.split("/")[0], []).append(task_id)
    queues = sorted(by_benchmark.values(), key=lambda ids: -len(ids))
    ordered: list[tuple[float, int, str]] = []
    for rank, ids in enumerate(queues):
        ordered += [((i + 0.5) / len(ids), rank, task_id) for i, task_id in enumerate(ids)]
    return [task_id for _, _, task_id in sorted(ordered)]


def measured_before(work: Path, plan: Sequence[str]) -> list[str]:
    """Tasks ``work`` has measured that ``plan`` lacks (an earlier, other plan with the same
    options): kept at the head of the plan, so the study (whose tasks are its plan's) and the
    report still hold them."""
    from codefocus.faithfulness.study import load_faithfulness
    from codefocus.studies.runner import STORE_NAME

    if not (work / STORE_NAME).is_file():
        return []
    return sorted({task for _, task in load_faithfulness(work)} - set(plan))


def perturbation_ids(work: Path, plan: Sequence[str], count: int, data_dir=None) -> list[str]:
    """The tasks that get the regeneration methods: those of the plan that already have them in
    ``work``, then the first of the plan not measured yet, up to ``count`` (a task measured
    without them keeps its measurement; they would not be measured on it)."""
    from codefocus.faithfulness.study import load_faithfulness
    from codefocus.methods import REGISTRY
    from codefocus.studies.runner import STORE_NAME
    from codefocus.studies.store import StudyStore

    have: set[str] = set()
    measured: set[str] = set()
    if (work / STORE_NAME).is_file():
        family = {name for name, m in REGISTRY.items() if m.family == "perturbation"}
        assert family == REGENERATION, family
        store = StudyStore(work / STORE_NAME)
        try:  # every stored unit, whatever tasks the study's last run recorded
            rows = store.rows("method:")
        finally:
            store.close()
        have = {r["task_id"] for r in rows if r["kind"].removeprefix("method:") in family}
        measured = {task for _, task in load_faithfulness(work)}
    chosen = [t for t in plan if t in have]
    fresh = [t for t in plan if t not in have and t not in measured]
    return chosen + fresh[: max(0, count - len(chosen))]


def hierarchical_in_run(attributions, k: int = 10) -> dict | None:
    """``hierarchical_loo`` against full ``loo_logprob`` on the tasks of this run that have both:
    their attribution seconds (substitutes found once per task and shared) and the share of full
    leave-one-out's top-k words that hierarchical's top-k also has."""
    import numpy as np

    from codefocus.metrics.alignment import top_k_indices

    rows = []
    for a in attributions:
        if not {"loo_logprob", "hierarchical_loo"} <= set(a.word_scores) or not a.words:
            continue
        top = min(k, len(a.words))
        full = set(top_k_indices(a.word_scores["loo_logprob"], top).tolist())
        fast = set(top_k_indices(a.word_scores["hierarchical_loo"], top).tolist())
        rows.append(
            {
                "task": a.task_id,
                "words": len(a.words),
                "full_seconds": a.timings.get("loo_logprob"),
                "hierarchical_seconds": a.timings.get("hierarchical_loo"),
                "top_recall": len(full & fast) / top,
            }
        )
    if not rows:
        return None
    full = sum(r["full_seconds"] or 0.0 for r in rows)
    fast = sum(r["hierarchical_seconds"] or 0.0 for r in rows)
    return {
        "tasks": rows,
        "k": k,
        "full_seconds": full,
        "hierarchical_seconds": fast,
        "speedup": full / fast if fast else None,
        "top_recall": float(np.mean([r["top_recall"] for r in rows])),
    }


LIKELIHOOD = ("loo_logprob", "contextcite", "hierarchical_loo")


def agreement_with_bert_masking(attributions, k: int = 10) -> dict | None:
    """Whether the likelihood methods (no regeneration) tell what BERT masking (regeneration)
    tells, on the given attributions that have both (the benchmark passes every measured task):
    per method, the mean over tasks of the Spearman correlation of their word scores and of the
    share of BERT masking's top-k words the method's top-k also has."""
    import numpy as np
    from scipy.stats import spearmanr

    from codefocus.metrics.alignment import top_k_indices

    per_method: dict[str, dict[str, list]] = {}
    for a in attributions:
        reference = a.word_scores.get("bert_masking")
        if reference is None or not a.words or np.ptp(reference) == 0:
            continue
        top = min(k, len(a.words))
        wanted = set(top_k_indices(reference, top).tolist())
        for method in LIKELIHOOD:
            scores = a.word_scores.get(method)
            if scores is None:
                continue
            entry = per_method.setdefault(method, {"tasks": [], "spearman": [], "overlap": []})
            entry["tasks"].append(a.task_id)
            rho = spearmanr(reference, scores).statistic if np.ptp(scores) > 0 else np.nan
            entry["spearman"].append(None if np.isnan(rho) else float(rho))
            found = set(top_k_indices(scores, top).tolist())
            entry["overlap"].append(len(found & wanted) / top)
    if not per_method:
        return None
    return {
        "k": k,
        "methods": {
            method: {
                "tasks": entry["tasks"],
                "spearman": entry["spearman"],
                "top_overlap": entry["overlap"],
                "spearman_mean": (
                    float(np.mean(rhos))
                    if (rhos := [r for r in entry["spearman"] if r is not None])
                    else None
                ),
                "top_overlap_mean": float(np.mean(entry["overlap"])),
            }
            for method, entry in per_method.items()
        },
    }


ENDPOINT_FIGURES = (
    "date", "commit", "server", "max_abs_diff_sequence", "max_abs_diff_token",
    "mean_abs_diff_token", "max_abs_diff_loo", "spearman_loo_mean", "lead",
    "max_abs_diff_sequence_without_lead", "spearman_loo_without_lead_mean",
)  # fmt: skip


def endpoint_figures(path: Path) -> dict | None:
    """The endpoint likelihood benchmark's largest differences from the white-box computation
    (``benchmarks/endpoint_likelihood.py``, run on its own: it needs the llama.cpp server)."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return {key: record.get(key) for key in ENDPOINT_FIGURES}


def _interval(value) -> dict | None:
    return None if value is None else value.to_dict()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--humaneval", type=int, default=10)
    parser.add_argument("--mbpp", type=int, default=20)
    parser.add_argument("--methods", default="all")
    parser.add_argument("--perturbation-tasks", type=int, default=6)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--random-orders", type=int, default=3)
    parser.add_argument("--lds-samples", type=int, default=32)
    parser.add_argument("--work", type=Path, default=Path("/tmp/codefocus-faithfulness"))
    parser.add_argument("--out", type=Path, default=RESULTS / "faithfulness.json")
    parser.add_argument("--data", default=None)
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: summarize what --work already holds (a run stopped early)",
    )
    parser.add_argument(
        "--faithfulness-only",
        action="store_true",
        help="attribute nothing more: measure the attributions --work already holds",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="attribute every task, then measure every task (default: one task at a time, "
        "attributed then measured, so a run stopped at any point has whole tasks)",
    )
    args = parser.parse_args(argv)

    from rich.console import Console

    from codefocus.faithfulness.study import run_study_faithfulness
    from codefocus.studies.runner import StudyConfig, run_study

    console = Console(stderr=True)
    task_ids = alternate(pick_tasks(args.humaneval, args.mbpp, args.data))
    before = set(measured_before(args.work, ()))  # every task measured before this run
    task_ids = [*sorted(before - set(task_ids)), *task_ids]
    by_benchmark: dict[str, list[str]] = {}
    for task_id in task_ids:
        by_benchmark.setdefault(task_id.split("/")[0].lower(), []).append(task_id)
    config = StudyConfig(
        models=(args.model,),
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        benchmarks=("humaneval", "mbpp"),
        task_ids=tuple(task_ids),
        perturbation_tasks=0,  # none but these:
        perturbation_task_ids=tuple(
            perturbation_ids(args.work, task_ids, args.perturbation_tasks, args.data)
        ),
        verdicts="none",
        data_dir=args.data,
    )
    if args.report_only:
        return report(args, task_ids, by_benchmark, None, None, None, None)

    def measure(models=None) -> dict:
        return run_study_faithfulness(
            args.work,
            k=args.k,
            random_orders=args.random_orders,
            lds_samples=args.lds_samples,
            data_dir=args.data,
            models=models,
            on_done=lambda model, task, result, error: console.print(
                f"faithfulness {task}: "
                + (
                    error
                    or f"{result.seconds:.1f} s, {result.settings['variants_scored']} variants"
                )
            ),
        )

    attribution_seconds, faithfulness_seconds = 0.0, 0.0  # this run's wall time
    study_summary, counts = None, {"done": 0, "stored": 0, "failed": 0}
    if args.faithfulness_only:
        started = time.perf_counter()
        counts = measure()
        faithfulness_seconds = time.perf_counter() - started
    elif args.stages:
        started = time.perf_counter()
        study_summary = run_study(config, args.work, console=console).to_dict()
        attribution_seconds = time.perf_counter() - started
        console.print(f"attributions: {study_summary}")
        started = time.perf_counter()
        counts = measure()
        faithfulness_seconds = time.perf_counter() - started
    else:  # one task at a time: the study grows by a task, which is then measured
        models = {args.model: config.options.load_model(args.model)}
        # from the longest measured head of the plan: the study's recorded tasks never shrink
        head = next((i for i, t in enumerate(task_ids) if t not in before), len(task_ids))
        for done in range(max(1, head), len(task_ids) + 1):
            started = time.perf_counter()
            grown = replace(config, task_ids=tuple(task_ids[:done]))
            study_summary = run_study(grown, args.work, console=console, models=models).to_dict()
            attribution_seconds += time.perf_counter() - started
            started = time.perf_counter()
            measured = measure(models)
            faithfulness_seconds += time.perf_counter() - started
            counts = {
                "done": counts["done"] + measured["done"],
                "failed": measured["failed"],  # every failure on record, this run's or earlier
                "stored": len(before),  # measured before this run
            }
            console.print(f"task {done}/{len(task_ids)} ({task_ids[done - 1]}) measured")
    return report(
        args, task_ids, by_benchmark, attribution_seconds, study_summary, faithfulness_seconds,
        counts,
    )  # fmt: skip


def report(args, task_ids, by_benchmark, attribution_seconds, study_summary,
           faithfulness_seconds, counts) -> int:  # fmt: skip
    """Summarize what the work directory holds, write the results file, print the lines."""
    from codefocus.faithfulness import summarize
    from codefocus.faithfulness.study import load_faithfulness
    from codefocus.studies.results import load_results
    from codefocus.studies.runner import STORE_NAME
    from codefocus.studies.store import StudyStore

    _, results = load_results(args.work, args.data, task_ids)
    measured = load_faithfulness(args.work)
    # each method's seconds as the study stored its unit (work shared by several methods, the
    # forward of the attention methods, is billed to the first that needs it)
    store = StudyStore(args.work / STORE_NAME)
    try:
        for row in store.rows("method:"):
            for r in results:
                if (r.model, r.attribution.task_id) == (row["model"], row["task_id"]):
                    r.attribution.timings[row["kind"].removeprefix("method:")] = row["seconds"]
    finally:
        store.close()
    keys = [(r.model, r.attribution.task_id) for r in results]
    own = [measured[key] for key in keys if key in measured]
    rows = summarize(own, [r.attribution for r in results], k=10)
    per_task_faithfulness = {f.task_id: f.seconds for f in own}
    record = {
        "benchmark": "faithfulness",
        **provenance(),
        "command": "python benchmarks/faithfulness.py " + " ".join(sys.argv[1:]),
        "model": args.model,
        "tasks_planned": task_ids,
        "tasks": [f.task_id for f in own],  # measured
        "tasks_by_benchmark": {
            benchmark: sum(f.task_id.lower().startswith(benchmark + "/") for f in own)
            for benchmark in ("humaneval", "mbpp")
        },
        "perturbation_tasks": args.perturbation_tasks,
        "perturbation_task_ids": sorted(
            r.attribution.task_id or ""
            for r in results
            if (r.model, r.attribution.task_id) in measured
            and REGENERATION & (set(r.attribution.word_scores) | set(r.attribution.failures))
        ),
        "k": args.k,
        "perturbation": "delete",
        "random_orders": args.random_orders,
        "lds_samples": args.lds_samples,
        # seconds as stored with each unit, whichever run (and session) computed it
        "attribution": {
            "seconds": sum(
                sum(r.attribution.timings.values())
                for r in results
                if (r.model, r.attribution.task_id) in measured
            ),
            "this_run_seconds": attribution_seconds,
            "summary": study_summary,
        },
        "faithfulness": {
            "seconds": sum(per_task_faithfulness.values()),
            "this_run_seconds": faithfulness_seconds,
            "counts": counts,
            "seconds_per_task_mean": sum(per_task_faithfulness.values())
            / max(1, len(per_task_faithfulness)),
            "seconds_per_task": per_task_faithfulness,
        },
        "methods": [
            {
                "method": row.method,
                "tasks": row.tasks,
                "f1_at_10": _interval(row.f1),
                "aopc": _interval(row.aopc),
                "aopc_sufficiency": _interval(row.aopc_sufficiency),
                "lowest_aopc": _interval(row.lowest_aopc),
                "lds": _interval(row.lds),
                "code_changed": row.code_changed,
                "seconds_per_task": row.seconds_per_task,
            }
            for row in rows
        ],
    }
    record["hierarchical_in_run"] = hierarchical_in_run([r.attribution for r in results])
    record["agreement_with_bert_masking"] = agreement_with_bert_masking(
        [r.attribution for r in results if (r.model, r.attribution.task_id) in measured]
    )
    record["endpoint_likelihood"] = endpoint_figures(RESULTS / "endpoint_likelihood.json")
    write_json(args.out, record)
    endpoint = record["endpoint_likelihood"]
    if endpoint and None not in (endpoint["max_abs_diff_sequence"], endpoint["max_abs_diff_token"]):
        print(
            f"endpoint likelihood ({str(endpoint['date'])[:10]}): largest difference from "
            f"white-box {endpoint['max_abs_diff_sequence']:.4f} nats per sequence, "
            f"{endpoint['max_abs_diff_token']:.4f} per token"
        )
    for row in rows:
        f1 = "n/a" if row.f1 is None else f"{row.f1.estimate:.3f}"
        print(f"{row.method}: f1@10 {f1} aopc {row.aopc.estimate:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
