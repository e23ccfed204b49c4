"""Run a study: for each model and task, generate, check the code in the sandbox, attribute.

Units are (model, task, kind) with kind = generation, verdict, or method:<name>. Each finished unit
is written to the study's SQLite store before the next starts, so a killed study resumes where it
stopped: re-running the same command skips stored units and never duplicates one. A unit that
fails (context too long, out of memory, endpoint error) is stored with its reason; the study
goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from codefocus.data.tasks import Task, load_tasks
from codefocus.errors import RECOVERABLE, InvalidArgumentError
from codefocus.methods import method_names as resolve_names
from codefocus.methods import resolve_methods
from codefocus.serialization import JsonRecord
from codefocus.studies.store import StudyStore

log = logging.getLogger(__name__)
STORE_NAME = "study.sqlite"


@dataclass(frozen=True)
class StudyConfig(JsonRecord):
    models: tuple[str, ...] = ("default",)
    methods: tuple[str, ...] = ("all-whitebox",)
    benchmarks: tuple[str, ...] = ("humaneval",)
    limit: int | None = None
    labelled_only: bool = True
    max_new_tokens: int | None = None
    substitutes: str = "embedding"
    similarity: str = "bleu"
    timeout: float = 3.0
    scope: str = "study"  # study (Kou et al.'s part of the prompt) or prompt (all of it)
    exclude_sink: bool = True  # attention methods do not score the first input position
    shap_l1_reg: str = "none"
    perturbation_tasks: int | None = None  # perturbation methods on the first N tasks only
    data_dir: str | None = None
    task_ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        """Every value checked where the study starts (a TOML file reaches here too)."""
        for key in ("models", "methods", "benchmarks", "task_ids"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise InvalidArgumentError(f"{key} must be a list of names, got {value!r}")
            if not value and key != "task_ids":
                raise InvalidArgumentError(f"{key} must name at least one, got none")
        for key, least in (("limit", 1), ("max_new_tokens", 1), ("perturbation_tasks", 0)):
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or value < least):
                bound = "a positive integer" if least else "an integer >= 0"
                raise InvalidArgumentError(f"{key} must be {bound}, got {value!r}")
        for key in ("labelled_only", "exclude_sink"):
            if not isinstance(getattr(self, key), bool):
                raise InvalidArgumentError(
                    f"{key} must be true or false, got {getattr(self, key)!r}"
                )
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float):
            raise InvalidArgumentError(f"timeout must be a number of seconds, got {self.timeout!r}")
        if self.timeout <= 0:
            raise InvalidArgumentError(f"timeout must be positive, got {self.timeout!r}")
        for key in ("substitutes", "similarity", "scope", "shap_l1_reg"):
            if not isinstance(getattr(self, key), str):
                raise InvalidArgumentError(f"{key} must be a name, got {getattr(self, key)!r}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise InvalidArgumentError(f"data_dir must be a path, got {self.data_dir!r}")
        from codefocus.data.units import scored_range
        from codefocus.methods.perturbation import shap_l1_reg
        from codefocus.methods.substitutes import check_provider
        from codefocus.metrics.similarity import check_similarity

        scored_range("", self.scope)
        shap_l1_reg(self.shap_l1_reg)
        check_provider(self.substitutes)
        check_similarity(self.similarity)
        resolve_names(list(self.methods))

    @classmethod
    def from_file(cls, path: str | Path) -> StudyConfig:
        """A small TOML (or YAML-free) config: the same keys as the command's options."""
        import tomllib

        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise InvalidArgumentError(f"cannot read study config {path}: {error}") from None
        study = data.get("study", data)
        if not isinstance(study, dict):
            raise InvalidArgumentError(f"bad study config {path}: [study] is not a table")
        for key in ("models", "methods", "benchmarks", "task_ids"):
            if isinstance(study.get(key), str):
                study[key] = [v.strip() for v in study[key].split(",") if v.strip()]
        try:
            return cls.from_dict(study)
        except (TypeError, ValueError) as error:
            raise InvalidArgumentError(f"bad study config {path}: {error}") from None
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"study config {path}: {error}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def study_tasks(config: StudyConfig) -> list[Task]:
    tasks: list[Task] = []
    for benchmark in config.benchmarks:
        chosen = load_tasks(benchmark, config.data_dir)
        if config.labelled_only:
            chosen = [t for t in chosen if t.human_spans]
        if config.task_ids:  # in the order given (perturbation_tasks takes the first ones)
            by_id = {t.task_id: t for t in chosen}
            chosen = [by_id[i] for i in config.task_ids if i in by_id]
        tasks += chosen[: config.limit]
    return tasks


def method_names(config: StudyConfig) -> list[str]:
    return resolve_names(list(config.methods))


def methods_per_task(config: StudyConfig, tasks: list[Task]) -> dict[str, list[str]]:
    """The methods each task gets: all of them, except that with ``perturbation_tasks = N`` the
    perturbation methods (one regeneration per perturbed prompt: by far the slowest) run on the
    first N tasks of each benchmark only."""
    chosen = resolve_methods(list(config.methods))
    seen: dict[str, int] = {}
    result = {}
    for task in tasks:
        index = seen.get(task.benchmark, 0)
        seen[task.benchmark] = index + 1
        keep_perturbation = config.perturbation_tasks is None or index < config.perturbation_tasks
        result[task.task_id] = [
            m.name for m in chosen if keep_perturbation or m.family != "perturbation"
        ]
    return result


def verdict_program(task: Task, model_input: str, completion: str) -> tuple[str, str]:
    """The study's generations, made testable. HumanEval: prompt + completion. MBPP: the study's
    header was ``def function():``, so the tests reach the function through an alias."""
    if task.benchmark == "humaneval":
        return model_input + completion, task.tests
    program = model_input[len(task.prompt) :].lstrip("\n") + completion
    return program + f"\n{task.entry_point} = function\n", task.tests


def process_task(
    model, task: Task, config: StudyConfig, todo: dict[str, Any], cache=None
) -> Iterator[tuple[str, dict | None, str | None, float]]:
    """Yield (kind, payload, error, seconds) for each unit of one task that is still to do.

    ``todo`` maps kinds to whether they are missing; a stored generation is passed back in
    through ``todo["_completion"]``.
    """
    from codefocus.api import attribute
    from codefocus.execution.sandbox import Limits, run_python
    from codefocus.models.base import GenerationSettings, model_input_for
    from codefocus.models.cache import CachedGenerator

    settings = GenerationSettings(max_new_tokens=config.max_new_tokens)
    model_input = model_input_for(task)
    completion = todo.get("_completion")
    completion_ids = todo.get("_completion_ids")
    if completion is None:
        started = time.perf_counter()
        try:
            budget = config.max_new_tokens or model.default_max_new_tokens(task.reference_solution)
            model.check_fits(model.count_tokens(model_input), budget)
            generation = CachedGenerator(model, cache).generations([model_input], budget, settings)
            completion, completion_ids = generation[0].completion, generation[0].token_ids
        except RECOVERABLE as error:
            yield (
                "generation",
                None,
                f"{type(error).__name__}: {error}",
                time.perf_counter() - started,
            )
            return
        payload = {
            "model_input": model_input,
            "completion": completion,
            "token_ids": list(completion_ids) if completion_ids is not None else None,
        }
        yield "generation", payload, None, time.perf_counter() - started
    if todo.get("verdict"):
        program, tests = verdict_program(task, model_input, completion)
        outcome = run_python(program, tests, Limits(timeout=config.timeout))
        verdict = {"passed": outcome.passed, "status": outcome.status, "result": outcome.reason}
        yield "verdict", verdict, None, outcome.seconds
    pending = [
        kind.split(":", 1)[1]
        for kind, missing in todo.items()
        if kind.startswith("method:") and missing
    ]
    if not pending:
        return
    started = time.perf_counter()
    try:
        result = attribute(
            model,
            task,
            pending,
            completion=completion,
            settings=settings,
            substitutes=config.substitutes,
            similarity=config.similarity,
            cache=cache,
            scope=config.scope,
            exclude_sink=config.exclude_sink,
            shap_l1_reg=config.shap_l1_reg,
            completion_ids=completion_ids,
        )
    except RECOVERABLE as error:
        for name in pending:
            yield f"method:{name}", None, f"{type(error).__name__}: {error}", 0.0
        return
    for name in pending:
        if name in result.failures:
            yield f"method:{name}", None, result.failures[name], 0.0
            continue
        seconds = result.timings.get(name, time.perf_counter() - started)
        # stored without timings (the unit's seconds hold them): a resumed study stores the
        # same payloads as one run without a break
        stored = replace(result.select([name]), timings={})
        yield f"method:{name}", stored.to_dict(), None, seconds


def todo_for(store: StudyStore, model: str, task: Task, methods: list[str]) -> dict:
    todo: dict = {}
    generation = store.get(model, task.task_id, "generation")
    if generation is not None and generation["status"] == "done":
        todo["_completion"] = generation["payload"]["completion"]
        todo["_completion_ids"] = generation["payload"].get("token_ids")
    elif generation is not None:
        return {}  # failed generation: recorded, nothing more to do for this task
    todo["verdict"] = not store.has(model, task.task_id, "verdict")
    for name in methods:
        todo[f"method:{name}"] = not store.has(model, task.task_id, f"method:{name}")
    return todo


def is_complete(todo: dict) -> bool:
    return "_completion" in todo and not any(v for k, v in todo.items() if not k.startswith("_"))
