"""Where a study's (model, task) units run: in this process, or as Ray tasks with one writer here.

Local: one model loaded at a time, units written as they finish.
Ray: each (model, task) becomes a Ray task (``num_gpus`` per task when asked), returning its
records; this process is the only writer to the store. ``ray.init()`` joins the cluster named by
``RAY_ADDRESS`` (e.g. ``ray://head:10001``) or starts a local one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from codefocus.errors import InvalidArgumentError
from codefocus.models.base import is_white_box
from codefocus.progress import make_progress
from codefocus.runs.units import Unit, UnitResult, UnitRunner
from codefocus.serialization import JsonRecord
from codefocus.studies.work import (
    StudySettings,
    generate_ahead,
    generation_requests,
    process_task,
    todo_for,
)

if TYPE_CHECKING:
    from codefocus.data.benchmarks import Task

log = logging.getLogger(__name__)


@dataclass
class StudySummary(JsonRecord):
    units_done: int = 0
    units_failed: int = 0
    units_skipped: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.units_done} units done, {self.units_failed} failed, "
            f"{self.units_skipped} already stored, in {self.seconds:.0f} s"
        )


def study_progress(console: Console | None):
    """Bars on a terminal, plain lines in a log (``codefocus.progress``)."""
    return make_progress(
        console or Console(stderr=True),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )


def counter(summary: StudySummary, progress, bars: dict) -> Callable[[UnitResult], None]:
    """What each recorded unit does to the summary and to its method's bar."""

    def count(result: UnitResult) -> None:
        if result.error:
            summary.units_failed += 1
            summary.failures.append(f"{result.unit}: {result.error}")
        else:
            summary.units_done += 1
        if result.unit.kind == "method" and result.unit.name in bars:
            progress.advance(bars[result.unit.name])

    return count


def run_local(
    config: StudySettings,
    runner: UnitRunner,
    tasks: list[Task],
    methods: dict[str, list[str]],
    summary: StudySummary,
    progress,
    bars: dict,
    loaded: dict | None = None,
) -> None:
    """Every task of every model in this process; ``loaded`` holds models already loaded, by
    name (a caller that runs several studies in one process loads each model once)."""
    from codefocus.generation.cache import GenerationCache

    cache = GenerationCache(Path(runner.store.path).with_name("generations.sqlite"))
    for model_name in config.models:
        bar = progress.add_task(f"{model_name}", total=len(tasks))
        model = None
        todos = {
            t.task_id: todo_for(runner, model_name, t, methods[t.task_id], config) for t in tasks
        }
        if any(not todo.complete for todo in todos.values()):
            model = loaded.get(model_name) if loaded else None
            model = model or config.options.load_model(model_name)
            if is_white_box(model):  # many tasks' generations at once, in wide batches
                requests = generation_requests(model, tasks, config, todos)
                if requests:
                    ahead = progress.add_task(f"{model_name}: generating", total=len(requests))
                    generate_ahead(
                        model, cache, requests, advance=functools.partial(progress.advance, ahead)
                    )
        for task in tasks:
            todo = todos[task.task_id]
            if todo.complete:
                summary.units_skipped += 2 + len(methods[task.task_id])
                for name in methods[task.task_id]:
                    progress.advance(bars[name])
                progress.advance(bar)
                continue
            assert model is not None
            for result in process_task(model, task, config, todo, cache):
                runner.record(result)
            for name in todo.stored_methods:
                progress.advance(bars[name])
            progress.advance(bar)


def _remote_units(model_name: str, task_dict: dict, config: Any, todo) -> list[UnitResult]:
    """Runs inside a Ray worker: load (once per worker) and process one task."""
    from codefocus.data.benchmarks import Task

    if model_name not in _WORKER_MODELS:
        _WORKER_MODELS[model_name] = config.options.load_model(model_name)
    task = Task.from_dict(task_dict)
    return list(process_task(_WORKER_MODELS[model_name], task, config, todo))


_WORKER_MODELS: dict = {}  # per Ray worker process: models stay loaded between tasks


def run_ray(
    config: StudySettings,
    runner: UnitRunner,
    tasks: list[Task],
    methods: dict[str, list[str]],
    summary: StudySummary,
    progress,
    num_gpus: float,
) -> None:
    try:
        import ray
    except ImportError:
        raise InvalidArgumentError(
            "the ray executor needs Ray: pip install 'ray==2.60.0'"
        ) from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    remote = ray.remote(num_gpus=num_gpus)(_remote_units)
    try:
        for model_name in config.models:
            bar = progress.add_task(f"{model_name}", total=len(tasks))
            pending = {}
            for task in tasks:
                todo = todo_for(runner, model_name, task, methods[task.task_id], config)
                if todo.complete:
                    summary.units_skipped += 2 + len(methods[task.task_id])
                    progress.advance(bar)
                    continue
                # the config travels whole (pickled): the worker computes its own run protocol
                ref = remote.remote(model_name, task.to_dict(), config, todo)
                pending[ref] = task
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done[0])
                try:
                    results = ray.get(done[0])
                except Exception as error:  # noqa: BLE001 - a worker crash is a recorded failure
                    crashed = Unit(model_name, task.task_id, "generation")
                    results = [UnitResult(crashed, None, f"ray worker failed: {error}")]
                for result in results:
                    runner.record(result)
                progress.advance(bar)
    finally:
        if started_here:
            ray.shutdown()
