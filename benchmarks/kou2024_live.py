"""A live model under the study's protocol (``kou2024``): what a full run costs, and why.

Three measurements on one model, every one under protocol ``kou2024`` (the study's released
code: stored labels, the whitespace-reduced HumanEval prompts, ``\\ndef function():`` after
MBPP, a budget of the reference solution's tokens + 20):

1. Generation per prompt, batched across prompts (``studies.runner.generate_ahead`` into a fresh
   ``GenerationCache``, as a study generates) vs one prompt at a time
   (``model.generate([text], batch_size=1)``), on ``--floor-prompts`` HumanEval and as many MBPP
   prompts (evenly spaced over the labelled tasks that fit the model's context). The completions
   must be identical; the script prints how many differ.
2. Each of the study's ten white-box methods (``methods.STUDY_WHITEBOX``) alone on a fresh
   ``AttributionContext`` (``method.compute`` timed; building the context is timed apart), on
   those prompts and their batched completions, against its floor measured in the same run on
   the same prompts:

   * attention methods: one teacher-forced forward over prompt + completion with
     ``output_attentions`` (eager attention) under ``no_grad``;
   * gradient READING: one forward + backward over the prompt for the first generated token's
     logit;
   * gradient CODING (the released code: the last generated token only): one forward + backward
     over prompt + completion (its last token is the target, so it is not fed) for that logit.

   Both gradient floors are plain torch (input embeddings with ``requires_grad``,
   ``model.model(inputs_embeds=...)``, ``logits[0, -1, target].backward()``) and ask for the
   last position's logits only (``logits_to_keep=1`` where the model takes it), as the methods
   do. A method's floor ratio is its seconds over its floor's, pooled over all prompts.
3. A real study run (``studies.executors.run_study``, methods ``all-whitebox``, HumanEval and
   MBPP, protocol ``kou2024``) of ``--prompts`` prompts stratified as the study's mix
   (``studies.runner.demo_sample``), timed end to end (model loading, generation, verdicts and
   attribution included), then scored beside the study (``reproduce.live.compare``): the model's
   Table 2 rows at K = 5, 10, 20 with 95% bootstrap intervals. The full run (the study's 1134
   prompts) is projected from it linearly in prompts.

Everything goes to ``--out`` as JSON (written atomically) with the commit, package versions and
machine. The output ends with one ``<method> floor ratio: X`` line per method and a last line
``projected full run: M min``.

    CODEFOCUS_DATA=../shared/data .venv/bin/python benchmarks/kou2024_live.py \\
        [--model default --prompts 300 --floor-prompts 20 --batch-size 16]

A quick check of the script itself (the tiny random model; its 512-token context leaves out
some HumanEval prompts, recorded as failed units in the study run):

    CODEFOCUS_DATA=../shared/data .venv/bin/python benchmarks/kou2024_live.py \\
        --model tiny --prompts 4 --floor-prompts 1 --out /tmp/kou2024_live_tiny.json
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from codefocus.data.benchmarks import Task
from codefocus.data.paths import resolve_data_dir
from codefocus.data.tasks import load_tasks
from codefocus.data.units import scored_range
from codefocus.errors import RECOVERABLE
from codefocus.generation.cache import GenerationCache
from codefocus.generation.records import GenerationSettings
from codefocus.methods import STUDY_WHITEBOX, MethodInputs
from codefocus.methods.context import AttributionContext
from codefocus.models.base import model_input_for, study_budget
from codefocus.models.loading import load_model
from codefocus.protocols import get_protocol
from codefocus.reproduce.kou2024 import DEFAULT_KS
from codefocus.reproduce.live import compare
from codefocus.serialization import to_jsonable
from codefocus.studies.executors import run_study
from codefocus.studies.export import stored_results
from codefocus.studies.runner import STUDY_MIX, StudyConfig, demo_sample, generate_ahead

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import cpu_model, git, versions, write_json  # noqa: E402  (this folder, not a package)

sys.path.pop(0)

PROTOCOL = "kou2024"
BENCHMARKS = ("humaneval", "mbpp")
STUDY_PROMPTS = sum(STUDY_MIX.values())  # the study's 164 HumanEval + 970 MBPP prompts
FLOORS = ("attention", "gradient_reading", "gradient_coding")
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    """One prompt of the floor sample: its task, the model's input and the token budget."""

    task: Task
    model_input: str
    budget: int
    completion: str = ""
    completion_ids: tuple[int, ...] = ()


# ---------------------------------------------------------------- helpers


def _sync(model) -> None:
    """Wait for the device (CUDA runs asynchronously: a timer must not stop before it)."""
    import torch

    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _show(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _spread(items: list, count: int) -> list:
    """``count`` items evenly spaced over ``items`` (all of them when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[(i * len(items)) // count] for i in range(count)]


def floor_sample(model, per_benchmark: int, data_dir) -> tuple[list[Case], dict[str, int]]:
    """``per_benchmark`` labelled tasks of each benchmark, evenly spaced over those whose input
    and budget fit the model's context, and how many labelled tasks did not fit, per benchmark."""
    protocol = get_protocol(PROTOCOL)
    cases: list[Case] = []
    unfit: dict[str, int] = {}
    for benchmark in BENCHMARKS:
        fitting = []
        tasks = [
            t for t in load_tasks(benchmark, data_dir, labels=protocol.labels) if t.human_spans
        ]
        for task in tasks:
            model_input = model_input_for(task, protocol.mbpp_header)
            budget = study_budget(model, task.reference_solution, protocol.budget_extra)
            try:
                model.check_fits(model.count_tokens(model_input), budget)
            except RECOVERABLE:
                continue
            fitting.append(Case(task, model_input, budget))
        unfit[benchmark] = len(tasks) - len(fitting)
        cases += _spread(fitting, per_benchmark)
    return cases, unfit


# ---------------------------------------------------------------- 1. generation


def measure_generation(model, cases: list[Case], batch_size: int, folder: Path) -> dict:
    """Seconds of batched generation (``generate_ahead``, a fresh cache) and of one prompt at a
    time, and how many completions differ; the batched completions are kept on the cases."""
    settings = GenerationSettings()
    key = settings.to_dict()
    fingerprint = model.fingerprint  # hashed once, outside both timings
    model.generate([cases[0].model_input], settings, max_new_tokens=2, batch_size=1)  # warm-up
    cache = GenerationCache(folder / "batched.sqlite")
    _sync(model)
    started = time.perf_counter()
    generated = generate_ahead(
        model, cache, [(c.model_input, c.budget) for c in cases], batch_size=batch_size
    )
    _sync(model)
    batched = time.perf_counter() - started
    for case in cases:
        completion, ids = cache.get_many(fingerprint, [case.model_input], key, case.budget)[
            case.model_input
        ]
        case.completion, case.completion_ids = completion, tuple(ids or ())
    one_at_a_time = 0.0
    differ: list[str] = []
    for case in cases:
        _sync(model)
        started = time.perf_counter()
        (single,) = model.generate(
            [case.model_input], settings, max_new_tokens=case.budget, batch_size=1
        )
        _sync(model)
        one_at_a_time += time.perf_counter() - started
        if single.completion != case.completion or tuple(single.token_ids or ()) != (
            case.completion_ids
        ):
            differ.append(case.task.task_id)
    n = len(cases)
    return {
        "prompts": n,
        "generated_batched": generated,
        "batch_size": batch_size,
        "seconds_batched": batched,
        "seconds_one_at_a_time": one_at_a_time,
        "seconds_per_prompt_batched": batched / n,
        "seconds_per_prompt_one_at_a_time": one_at_a_time / n,
        "batched_over_one_ratio": _ratio(batched, one_at_a_time),
        "completions_differ": len(differ),
        "differing_tasks": differ,
        "generated_tokens": sum(len(c.completion_ids) for c in cases),
    }


# ---------------------------------------------------------------- 2. methods vs floors


def _forward_backward(model, ids: list[int], target: int) -> None:
    """One forward over ``ids`` from input embeddings that require a gradient, and the backward
    of ``target``'s logit at the last position."""
    import torch

    tensor = torch.tensor([ids], device=model.device)
    with torch.no_grad():
        embeds = model.model.get_input_embeddings()(tensor).detach()
    embeds.requires_grad_(True)
    try:  # the last position's logits only, as the methods compute them
        logits = model.model(inputs_embeds=embeds, use_cache=False, logits_to_keep=1).logits
    except TypeError:  # a model without logits_to_keep: every position's logits
        logits = model.model(inputs_embeds=embeds, use_cache=False).logits
    logits[0, -1, target].backward()
    assert embeds.grad is not None


def floor_seconds(model, prompt_ids: list[int], completion_ids: list[int]) -> dict[str, float]:
    """Seconds of each floor on one prompt and its completion."""
    import torch

    seconds: dict[str, float] = {}
    whole = prompt_ids + completion_ids
    _sync(model)
    started = time.perf_counter()
    with torch.no_grad():
        output = model.model(
            torch.tensor([whole], device=model.device), output_attentions=True, use_cache=False
        )
    if not output.attentions or output.attentions[0] is None:
        raise RuntimeError(f"{model.name} returned no attention weights (eager attention?)")
    _sync(model)
    seconds["attention"] = time.perf_counter() - started
    del output
    first = completion_ids[0] if completion_ids else 0
    last = completion_ids[-1] if completion_ids else 0
    for name, ids, target in (
        ("gradient_reading", prompt_ids, first),
        ("gradient_coding", whole[:-1] if completion_ids else prompt_ids, last),
    ):
        _sync(model)
        started = time.perf_counter()
        _forward_backward(model, ids, target)
        _sync(model)
        seconds[name] = time.perf_counter() - started
    return seconds


def floor_of(method) -> str:
    """Which floor a method is held against."""
    if method.family.startswith("attention"):
        return "attention"
    if getattr(method, "stage", "reading") == "coding":
        return "gradient_coding"
    return "gradient_reading"


def _context(model, case: Case, protocol) -> AttributionContext:
    return AttributionContext(
        model,
        case.model_input,
        case.completion,
        completion_ids=list(case.completion_ids),
        scope=scored_range(case.task.prompt, protocol.scope),
        exclude_sink=protocol.exclude_sink,
    )


def measure_methods(model, cases: list[Case]) -> dict:
    """Per method and per floor: seconds summed per benchmark; each method alone on a fresh
    context per prompt."""
    protocol = get_protocol(PROTOCOL)
    methods = [protocol.method(name) for name in STUDY_WHITEBOX]
    # warm-up (first calls allocate and compile what every later call reuses): untimed
    warm = cases[0]
    floor_seconds(model, model.encode(warm.model_input).ids, list(warm.completion_ids))
    for method in methods:
        try:
            method.compute(MethodInputs(_context(model, warm, protocol), None))
        except RECOVERABLE:  # met again, and recorded, below
            pass
    method_totals = {m.name: dict.fromkeys(BENCHMARKS, 0.0) for m in methods}
    context_totals = {m.name: dict.fromkeys(BENCHMARKS, 0.0) for m in methods}
    floor_totals = {f: dict.fromkeys(BENCHMARKS, 0.0) for f in FLOORS}
    prompts = dict.fromkeys(BENCHMARKS, 0)
    failures: dict[str, list[str]] = {}
    for case in cases:
        benchmark = case.task.benchmark
        prompts[benchmark] += 1
        prompt_ids = model.encode(case.model_input).ids
        for name, seconds in floor_seconds(model, prompt_ids, list(case.completion_ids)).items():
            floor_totals[name][benchmark] += seconds
        for method in methods:
            started = time.perf_counter()
            context = _context(model, case, protocol)
            built = time.perf_counter()
            try:
                method.compute(MethodInputs(context, None))
            except RECOVERABLE as error:  # recorded; its time and floor still count
                failures.setdefault(method.name, []).append(f"{case.task.task_id}: {error}")
            _sync(model)
            done = time.perf_counter()
            context_totals[method.name][benchmark] += built - started
            method_totals[method.name][benchmark] += done - built
            del context
        gc.collect()
    floors = {
        name: {
            **{
                f"seconds_per_prompt_{b}": _ratio(floor_totals[name][b], prompts[b])
                for b in BENCHMARKS
            },
            "seconds": sum(floor_totals[name].values()),
        }
        for name in FLOORS
    }
    per_method = {}
    for method in methods:
        floor = floor_of(method)
        seconds = sum(method_totals[method.name].values())
        per_method[method.name] = {
            "floor": floor,
            "seconds": seconds,
            "context_seconds": sum(context_totals[method.name].values()),
            "floor_seconds": floors[floor]["seconds"],
            "floor_ratio": _ratio(seconds, floors[floor]["seconds"]),
            **{
                f"seconds_per_prompt_{b}": _ratio(method_totals[method.name][b], prompts[b])
                for b in BENCHMARKS
            },
            **{
                f"floor_ratio_{b}": _ratio(method_totals[method.name][b], floor_totals[floor][b])
                for b in BENCHMARKS
            },
            "failures": failures.get(method.name, []),
        }
    return {"prompts": prompts, "floors": floors, "methods": per_method}


# ---------------------------------------------------------------- 3. a live run


def measure_run(model_name: str, prompts: int, data_dir, folder: Path, workers) -> dict:
    """A study run of ``prompts`` stratified prompts, timed end to end, and its Table 2 rows."""
    task_ids, _ = demo_sample(prompts, 0, data_dir, "stored")
    config = StudyConfig(
        models=(model_name,),
        methods=("all-whitebox",),
        benchmarks=BENCHMARKS,
        task_ids=tuple(task_ids),
        protocol=PROTOCOL,
        data_dir=None if data_dir is None else str(data_dir),
    )
    study = folder / "study"
    started = time.perf_counter()
    summary = run_study(config, study)
    seconds = time.perf_counter() - started
    added = stored_results(study)
    comparison = compare(added, data_dir, workers=workers) if added else None
    order = {name: i for i, name in enumerate(STUDY_WHITEBOX)}
    live = sorted(
        comparison.live if comparison else [],
        key=lambda r: (order.get(r.row.method, len(order)), r.row.k),
    )
    return {
        "prompts": len(task_ids),
        "task_ids": task_ids,
        "seconds": seconds,
        "seconds_per_prompt": seconds / len(task_ids),
        # linear in prompts: the study's 1134 prompts at this run's seconds per prompt
        "projected_full_run_minutes": seconds / len(task_ids) * STUDY_PROMPTS / 60,
        "summary": to_jsonable(summary),
        "prompts_scored": len({p for stored in added.values() for p in stored}),
        "table2": [to_jsonable(r) for r in live],
        "study_rows": to_jsonable(comparison.rows) if comparison else [],
        "study_means": to_jsonable(comparison.means) if comparison else [],
        "rankings": to_jsonable(comparison.rankings) if comparison else [],
        "_live": live,
    }


# ---------------------------------------------------------------- provenance and output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default", help="default, tiny, a hub id, a directory")
    parser.add_argument("--prompts", type=int, default=300, help="prompts of the live run")
    parser.add_argument(
        "--floor-prompts", type=int, default=20, help="prompts per benchmark for parts 1 and 2"
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", default="benchmarks/results/kou2024_live.json")
    parser.add_argument("--data", default=None, help="the data directory (default CODEFOCUS_DATA)")
    parser.add_argument(
        "--workers", type=int, default=None, help="processes scoring the study's files"
    )
    args = parser.parse_args()
    if args.prompts < 1 or args.floor_prompts < 1 or args.batch_size < 1:
        parser.error("--prompts, --floor-prompts and --batch-size must be positive")
    data_dir = args.data
    print(f"data {resolve_data_dir(data_dir)}, protocol {PROTOCOL}, model {args.model}")

    started = time.perf_counter()
    model = load_model(args.model)
    load_seconds = time.perf_counter() - started
    print(f"model {model.name} on {model.device}, loaded in {load_seconds:.1f} s", flush=True)

    status = git("status", "--porcelain")
    record: dict = {
        "benchmark": "kou2024_live",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD") or None,
        # uncommitted changes in the tree: the commit alone does not name the code that ran
        "uncommitted_changes": None if status is None else bool(status),
        "versions": versions(),
        "machine": {
            "processor": platform.processor(),
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "device": str(model.device),
        },
        "arguments": vars(args),
        "protocol": get_protocol(PROTOCOL).to_dict(),
        "model": model.name,
        "model_load_seconds": load_seconds,
    }

    with tempfile.TemporaryDirectory(prefix="kou2024-live-") as folder:
        cases, unfit = floor_sample(model, args.floor_prompts, data_dir)
        counts = {b: sum(c.task.benchmark == b for c in cases) for b in BENCHMARKS}
        print(
            f"floor sample: {counts['humaneval']} HumanEval + {counts['mbpp']} MBPP prompts "
            f"(labelled tasks that do not fit the context, left out: "
            f"{unfit['humaneval']} HumanEval, {unfit['mbpp']} MBPP)"
        )
        record["floor_sample"] = {
            "task_ids": [c.task.task_id for c in cases],
            "unfit": unfit,
        }
        generation = methods = None
        if cases:
            generation = measure_generation(model, cases, args.batch_size, Path(folder))
            print(
                f"completions differing batched vs one at a time: "
                f"{generation['completions_differ']} of {generation['prompts']}"
            )
            print(
                "generation seconds per prompt batched: "
                f"{generation['seconds_per_prompt_batched']:.3f}"
            )
            print(
                "generation seconds per prompt one at a time: "
                f"{generation['seconds_per_prompt_one_at_a_time']:.3f}"
            )
            print(f"generation batched/one ratio: {_show(generation['batched_over_one_ratio'])}")
            methods = measure_methods(model, cases)
            for name, floor in methods["floors"].items():
                print(
                    f"floor {name}: seconds per prompt humaneval "
                    f"{_show(floor['seconds_per_prompt_humaneval'], 4)}, mbpp "
                    f"{_show(floor['seconds_per_prompt_mbpp'], 4)}"
                )
            for name, figures in methods["methods"].items():
                failed = f", {len(figures['failures'])} failed" if figures["failures"] else ""
                print(
                    f"{name}: seconds per prompt humaneval "
                    f"{_show(figures['seconds_per_prompt_humaneval'], 4)}, mbpp "
                    f"{_show(figures['seconds_per_prompt_mbpp'], 4)} (floor {figures['floor']}; "
                    f"ratio humaneval {_show(figures['floor_ratio_humaneval'])}, mbpp "
                    f"{_show(figures['floor_ratio_mbpp'])}){failed}"
                )
        else:
            print("no labelled prompt fits the model: parts 1 and 2 skipped")
        record["generation"] = generation
        record["methods"] = methods
        del model
        gc.collect()

        run = measure_run(args.model, args.prompts, data_dir, Path(folder), args.workers)
    live = run.pop("_live")
    record["run"] = run
    summary = run["summary"]
    print(
        f"study run: {summary['units_done']} units done, {summary['units_failed']} failed; "
        f"{run['prompts_scored']} of {run['prompts']} prompts scored"
    )
    for failure in summary["failures"][:5]:
        print(f"  failed: {failure}")
    if len(summary["failures"]) > 5:
        print(f"  ... and {len(summary['failures']) - 5} more failures (in the JSON)")
    ks = ", ".join(str(k) for k in DEFAULT_KS)
    print(f"Table 2 rows of {args.model} (K = {ks}; 95% bootstrap intervals over prompts):")
    for row in live:
        print(
            f"  {row.row.method} K={row.row.k}: F1 {row.row.f1:.3f} "
            f"[{row.f1_interval.low:.3f}, {row.f1_interval.high:.3f}], alpha "
            f"{row.row.alpha:.2f} [{row.alpha_interval.low:.2f}, {row.alpha_interval.high:.2f}]"
        )
    if not live:
        print("  none: no method result was stored")

    out = Path(args.out)
    write_json(out, record)
    print(f"results written to {out}")
    print(f"measured run: {run['prompts']} prompts in {run['seconds']:.1f} s")
    for name in STUDY_WHITEBOX:
        ratio = methods["methods"][name]["floor_ratio"] if methods else None
        print(f"{name} floor ratio: {_show(ratio)}")
    # linear in prompts: S / N x 1134 / 60
    print(f"projected full run: {run['projected_full_run_minutes']:.1f} min")


if __name__ == "__main__":
    main()
