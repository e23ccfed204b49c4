"""Where the (model, task) units run: in this process, or as Ray tasks with one writer here.

Local: one model loaded at a time, units written as they finish.
Ray: each (model, task) becomes a Ray task (``num_gpus`` per task when asked), returning its
records; this process is the only writer to the store. ``ray.init()`` joins the cluster named by
``RAY_ADDRESS`` (e.g. ``ray://head:10001``) or starts a local one.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from codefocus.errors import InvalidArgumentError
from codefocus.models.base import is_white_box
from codefocus.progress import make_progress
from codefocus.serialization import JsonRecord
from codefocus.studies.runner import (
    STORE_NAME,
    StudyConfig,
    generate_ahead,
    generation_requests,
    is_complete,
    method_names,
    methods_per_task,
    process_task,
    study_tasks,
    todo_for,
)
from codefocus.studies.store import StudyStore

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


def _progress(console: Console | None):
    """Bars on a terminal, plain lines in a log (``codefocus.progress``)."""
    return make_progress(
        console or Console(stderr=True),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )


def _record(store, summary, progress, bars, model, task_id, kind, payload, error, seconds):
    store.put(model, task_id, kind, payload, error, seconds)
    if error:
        summary.units_failed += 1
        summary.failures.append(f"{model} {task_id} {kind}: {error}")
    else:
        summary.units_done += 1
    if kind.startswith("method:") and kind in bars:
        progress.advance(bars[kind])


# settings that change a stored unit's result: a study may not mix two values of any of them
RESULT_SETTINGS = (
    "protocol",
    "max_new_tokens",
    "substitutes",
    "similarity",
    "timeout",
    "scope",
    "exclude_sink",
    "shap_l1_reg",
)
# stores from before a setting existed were computed differently
LEGACY_DEFAULTS: dict = {"protocol": "codefocus"}


def run_study(
    config: StudyConfig,
    out: str | Path,
    executor: str = "local",
    console: Console | None = None,
    num_gpus: float = 0.0,
) -> StudySummary:
    """Run (or resume) the study in ``out``; returns a summary.

    Every finished unit (generation, verdict, method) is stored before the next starts, so an
    interrupted study resumes where it stopped; a unit that fails is stored with its reason.

    Args:
        config: what to run (models, methods, benchmarks, settings).
        out: the study directory (``study.sqlite`` in it).
        executor: ``local`` or ``ray`` (``RAY_ADDRESS`` for an existing cluster).

    Raises:
        InvalidArgumentError: an unknown executor, or ``out`` holds a study run with other
            result settings (its units would not be comparable).
    """
    if executor not in ("local", "ray"):
        raise InvalidArgumentError(f"unknown executor {executor!r}: use local or ray")
    out = Path(out)
    store = StudyStore(out / STORE_NAME)
    previous = store.meta("config")
    current = json.loads(json.dumps(config.to_dict()))
    if previous:
        changed = [
            key
            for key in RESULT_SETTINGS
            if previous.get(key, LEGACY_DEFAULTS.get(key)) != current.get(key)
        ]
        if changed:
            first = changed[0]
            raise InvalidArgumentError(
                f"{out} holds a study run with {first}={previous.get(first)!r}, not "
                f"{current.get(first)!r}: its stored units would not be comparable; use another "
                "--out (or the same settings)"
            )
        if previous != current:
            log.info("the study grows: stored units are kept, new ones are added")
    store.set_meta("config", current)
    tasks = study_tasks(config)
    methods = methods_per_task(config, tasks)
    summary = StudySummary()
    started = time.perf_counter()
    try:
        with _progress(console) as progress:
            bars = {
                f"method:{m}": progress.add_task(
                    f"  {m}",
                    total=sum(m in own for own in methods.values()) * len(config.models),
                    log=False,  # in a log, the model's line per task says it all
                )
                for m in method_names(config)
            }
            if executor == "local":
                _run_local(config, store, tasks, methods, summary, progress, bars)
            else:
                _run_ray(config, store, tasks, methods, summary, progress, bars, num_gpus)
    finally:
        summary.seconds = time.perf_counter() - started
        store.close()
    return summary


def _run_local(config, store, tasks, methods, summary, progress, bars) -> None:
    from codefocus.generation.cache import GenerationCache
    from codefocus.models.loading import load_model

    cache = GenerationCache(Path(store.path).with_name("generations.sqlite"))
    for model_name in config.models:
        bar = progress.add_task(f"{model_name}", total=len(tasks))
        model = None
        todos = {
            t.task_id: todo_for(store, model_name, t, methods[t.task_id], config) for t in tasks
        }
        if any(todo and not is_complete(todo) for todo in todos.values()):
            model = load_model(model_name)
            if is_white_box(model):  # many tasks' generations at once, in wide batches
                requests = generation_requests(model, tasks, config, todos)
                if requests:
                    ahead = progress.add_task(f"{model_name}: generating", total=len(requests))
                    generate_ahead(
                        model, cache, requests, advance=functools.partial(progress.advance, ahead)
                    )
        for task in tasks:
            todo = todos[task.task_id]
            if not todo or is_complete(todo):
                summary.units_skipped += 2 + len(methods[task.task_id])
                for name in methods[task.task_id]:
                    progress.advance(bars[f"method:{name}"])
                progress.advance(bar)
                continue
            assert model is not None
            for unit in process_task(model, task, config, todo, cache):
                _record(store, summary, progress, bars, model_name, task.task_id, *unit)
            for kind, missing in todo.items():
                if kind.startswith("method:") and not missing:
                    progress.advance(bars[kind])
            progress.advance(bar)


def _remote_units(model_name: str, task_dict: dict, config_dict: dict, todo: dict) -> list:
    """Runs inside a Ray worker: load (once per worker) and process one task."""
    from codefocus.data.benchmarks import Task
    from codefocus.models.loading import load_model

    if model_name not in _WORKER_MODELS:
        _WORKER_MODELS[model_name] = load_model(model_name)
    task = Task.from_dict(task_dict)
    config = StudyConfig.from_dict(config_dict)
    return list(process_task(_WORKER_MODELS[model_name], task, config, todo))


_WORKER_MODELS: dict = {}  # per Ray worker process: models stay loaded between tasks


def _run_ray(config, store, tasks, methods, summary, progress, bars, num_gpus) -> None:
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
                todo = todo_for(store, model_name, task, methods[task.task_id], config)
                if not todo or is_complete(todo):
                    summary.units_skipped += 2 + len(methods[task.task_id])
                    progress.advance(bar)
                    continue
                ref = remote.remote(model_name, task.to_dict(), config.to_dict(), todo)
                pending[ref] = task
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done[0])
                try:
                    records = ray.get(done[0])
                except Exception as error:  # noqa: BLE001 - a worker crash is a recorded failure
                    records = [("generation", None, f"ray worker failed: {error}", 0.0)]
                for unit in records:
                    _record(store, summary, progress, bars, model_name, task.task_id, *unit)
                progress.advance(bar)
    finally:
        if started_here:
            ray.shutdown()
