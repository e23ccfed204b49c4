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
from codefocus.protocols import CODEFOCUS_METHOD_NAMES, Protocol, get_protocol
from codefocus.serialization import JsonRecord
from codefocus.studies.store import StudyStore

log = logging.getLogger(__name__)
STORE_NAME = "study.sqlite"
VERDICT_POLICIES = ("all", "attributed", "none")


@dataclass(frozen=True)
class StudyConfig(JsonRecord):
    models: tuple[str, ...] = ("default",)
    methods: tuple[str, ...] = ("all-whitebox",)
    benchmarks: tuple[str, ...] = ("humaneval",)
    limit: int | None = None
    labelled_only: bool = True
    max_new_tokens: int | None = None
    # None: as the protocol says; a value changes that field of the protocol
    substitutes: str | None = None
    similarity: str | None = None
    timeout: float = 3.0
    scope: str | None = None  # study (Kou et al.'s part of the prompt) or prompt (all of it)
    exclude_sink: bool | None = None  # attention methods do not score the first input position
    shap_l1_reg: str = "none"
    protocol: str = "codefocus"  # codefocus.protocols: kou2024, kou2024-paper, codefocus, ...
    perturbation_tasks: int | None = None  # perturbation methods on the first N tasks only
    data_dir: str | None = None
    task_ids: tuple[str, ...] = field(default=())
    # perturbation methods on these tasks only (instead of perturbation_tasks' first N)
    perturbation_task_ids: tuple[str, ...] = field(default=())
    # which tasks get a verdict: all; only those whose attributed generation is itself testable
    # (no second generation: HumanEval, and MBPP where the protocol's prompt is the testable one);
    # none
    verdicts: str = "all"

    def __post_init__(self) -> None:
        """Every value checked where the study starts (a TOML file reaches here too)."""
        for key in ("models", "methods", "benchmarks", "task_ids", "perturbation_task_ids"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise InvalidArgumentError(f"{key} must be a list of names, got {value!r}")
            if not value and key not in ("task_ids", "perturbation_task_ids"):
                raise InvalidArgumentError(f"{key} must name at least one, got none")
        for key, least in (("limit", 1), ("max_new_tokens", 1), ("perturbation_tasks", 0)):
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or value < least):
                bound = "a positive integer" if least else "an integer >= 0"
                raise InvalidArgumentError(f"{key} must be {bound}, got {value!r}")
        for key in ("labelled_only", "exclude_sink"):
            if key == "exclude_sink" and self.exclude_sink is None:
                continue
            if not isinstance(getattr(self, key), bool):
                raise InvalidArgumentError(
                    f"{key} must be true or false, got {getattr(self, key)!r}"
                )
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float):
            raise InvalidArgumentError(f"timeout must be a number of seconds, got {self.timeout!r}")
        if self.timeout <= 0:
            raise InvalidArgumentError(f"timeout must be positive, got {self.timeout!r}")
        for key in ("substitutes", "similarity", "scope", "shap_l1_reg", "protocol"):
            value = getattr(self, key)
            if not isinstance(value, str) and not (value is None and key not in ("shap_l1_reg",)):
                raise InvalidArgumentError(f"{key} must be a name, got {value!r}")
        if self.verdicts not in VERDICT_POLICIES:
            raise InvalidArgumentError(
                f"verdicts must be one of {', '.join(VERDICT_POLICIES)}, got {self.verdicts!r}"
            )
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise InvalidArgumentError(f"data_dir must be a path, got {self.data_dir!r}")
        from codefocus.data.units import scored_range
        from codefocus.methods.perturbation import shap_l1_reg
        from codefocus.methods.substitutes import check_provider
        from codefocus.metrics.similarity import check_similarity

        protocol = self.declared_protocol()
        scored_range("", protocol.scope)
        shap_l1_reg(self.shap_l1_reg)
        check_provider(protocol.substitutes)
        check_similarity(protocol.similarity)
        resolve_names([CODEFOCUS_METHOD_NAMES.get(m, m) for m in self.methods])

    def declared_protocol(self) -> Protocol:
        """The protocol named, with the fields this config sets changed."""
        changes = {
            key: getattr(self, key)
            for key in ("scope", "exclude_sink", "substitutes", "similarity")
            if getattr(self, key) is not None
        }
        return get_protocol(self.protocol).derive(**changes)

    def run_protocol(self) -> Protocol:
        """The protocol as it runs here (a masked LM that is not installed gives way to the
        embedding provider: ``api.effective_protocol``)."""
        from codefocus.api import effective_protocol

        return effective_protocol(self.declared_protocol(), list(self.methods))

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
        for key in ("models", "methods", "benchmarks", "task_ids", "perturbation_task_ids"):
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
    labels = config.declared_protocol().labels
    for benchmark in config.benchmarks:
        chosen = load_tasks(benchmark, config.data_dir, labels=labels)
        if config.labelled_only:
            chosen = [t for t in chosen if t.human_spans]
        if config.task_ids:  # in the order given (perturbation_tasks takes the first ones)
            by_id = {t.task_id: t for t in chosen}
            chosen = [by_id[i] for i in config.task_ids if i in by_id]
        tasks += chosen[: config.limit]
    return tasks


# the study's mix: 164 HumanEval prompts and 970 distinct MBPP texts
STUDY_MIX = {"humaneval": 164, "mbpp": 970}


def _spread(items: list, count: int) -> list:
    """``count`` items evenly spaced over ``items`` (all of them when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[(i * len(items)) // count] for i in range(count)]


def demo_sample(
    prompts: int, perturbed: int, data_dir=None, labels: str = "stored"
) -> tuple[list[str], list[str]]:
    """A stratified sample of labelled prompts that mirrors the study's mix of HumanEval and
    MBPP, evenly spaced over each benchmark's task ids (so it is the same on every machine), and
    the ones of them that get the perturbation methods: the same mix, shortest reference
    solution first (they regenerate once per word). Returns both lists of task ids."""
    total = sum(STUDY_MIX.values())
    chosen: list[str] = []
    cheapest: list[str] = []
    for benchmark, share in STUDY_MIX.items():
        tasks = [t for t in load_tasks(benchmark, data_dir, labels=labels) if t.human_spans]
        count = round(prompts * share / total) if benchmark == "humaneval" else 0
        if benchmark == "mbpp":
            count = prompts - len(chosen)
        picked = _spread(tasks, count)
        chosen += [t.task_id for t in picked]
        want = round(perturbed * share / total) if benchmark == "humaneval" else 0
        if benchmark == "mbpp":
            want = perturbed - len(cheapest)
        by_length = sorted(picked, key=lambda t: len(t.reference_solution))
        cheapest += [t.task_id for t in by_length[:want]]
    return chosen, cheapest


def method_names(config: StudyConfig) -> list[str]:
    return [m.name for m in config.declared_protocol().methods(list(config.methods))]


def methods_per_task(config: StudyConfig, tasks: list[Task]) -> dict[str, list[str]]:
    """The methods each task gets: all of them, except that with ``perturbation_tasks = N`` the
    perturbation methods (one regeneration per perturbed prompt: by far the slowest) run on the
    first N tasks of each benchmark only."""
    chosen = config.declared_protocol().methods(list(config.methods))
    seen: dict[str, int] = {}
    result = {}
    for task in tasks:
        index = seen.get(task.benchmark, 0)
        seen[task.benchmark] = index + 1
        keep_perturbation = config.perturbation_tasks is None or index < config.perturbation_tasks
        if config.perturbation_task_ids:
            keep_perturbation = task.task_id in config.perturbation_task_ids
        result[task.task_id] = [
            m.name for m in chosen if keep_perturbation or m.family != "perturbation"
        ]
    return result


def verdict_input(task: Task, model_input: str) -> str:
    """The input whose completion is tested. HumanEval: the attributed input itself (its
    completion is the function's body). MBPP: the attributed input (the study's ``def
    function():``) cannot pass the tests, which call the task's own function, so the verdict
    comes from a testable generation of its own: the task text and its first test in a
    docstring, then ``def <entry_point>(`` (``models.base.evaluation_input_for``)."""
    from codefocus.models.base import evaluation_input_for

    if task.benchmark == "humaneval":
        return model_input
    return evaluation_input_for(task)


def verdict_program(task: Task, tested_input: str, completion: str) -> tuple[str, str]:
    """The program and tests of a verdict: the tested input and its completion, as written."""
    return tested_input + completion, task.tests


def process_task(
    model, task: Task, config: StudyConfig, todo: dict[str, Any], cache=None
) -> Iterator[tuple[str, dict | None, str | None, float]]:
    """Yield (kind, payload, error, seconds) for each unit of one task that is still to do.

    ``todo`` maps kinds to whether they are missing; a stored generation is passed back in
    through ``todo["_completion"]``.
    """
    from codefocus.api import attribute
    from codefocus.execution.sandbox import Limits, run_python
    from codefocus.generation.generator import CachedGenerator
    from codefocus.generation.records import GenerationSettings
    from codefocus.models.base import model_input_for, study_budget

    protocol = config.run_protocol()
    settings = GenerationSettings(max_new_tokens=config.max_new_tokens)
    model_input = model_input_for(task, protocol.mbpp_header)
    budget = config.max_new_tokens or study_budget(
        model, task.reference_solution, protocol.budget_extra
    )
    completion = todo.get("_completion")
    completion_ids = todo.get("_completion_ids")
    if completion is None:
        started = time.perf_counter()
        try:
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
        started = time.perf_counter()
        tested_input = verdict_input(task, model_input)
        tested = completion
        if tested_input != model_input:
            try:
                model.check_fits(model.count_tokens(tested_input), budget)
                tested = (
                    CachedGenerator(model, cache)
                    .generations([tested_input], budget, settings)[0]
                    .completion
                )
            except RECOVERABLE as error:
                yield "verdict", None, f"{type(error).__name__}: {error}", 0.0
                tested = None
        if tested is not None:
            program, tests = verdict_program(task, tested_input, tested)
            outcome = run_python(program, tests, Limits(timeout=config.timeout))
            verdict = {
                "passed": outcome.passed,
                "status": outcome.status,
                "result": outcome.reason,
                # which generation was tested: the attributed one, or a testable one of its own
                "generation": "attributed" if tested_input == model_input else "evaluable",
                "model_input": tested_input,
                "completion": tested,
            }
            yield "verdict", verdict, None, time.perf_counter() - started
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
            cache=cache,
            protocol=protocol,
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


def wants_verdict(task: Task, config: StudyConfig) -> bool:
    """Whether ``config.verdicts`` asks for this task's verdict (``attributed``: only where the
    attributed generation is the tested one, so no second generation is needed)."""
    from codefocus.models.base import model_input_for

    if config.verdicts == "none":
        return False
    if config.verdicts == "attributed":
        model_input = model_input_for(task, config.declared_protocol().mbpp_header)
        return verdict_input(task, model_input) == model_input
    return True


def todo_for(
    store: StudyStore, model: str, task: Task, methods: list[str], config: StudyConfig
) -> dict:
    todo: dict = {}
    generation = store.get(model, task.task_id, "generation")
    if generation is not None and generation["status"] == "done":
        todo["_completion"] = generation["payload"]["completion"]
        todo["_completion_ids"] = generation["payload"].get("token_ids")
    elif generation is not None:
        return {}  # failed generation: recorded, nothing more to do for this task
    todo["verdict"] = wants_verdict(task, config) and not store.has(model, task.task_id, "verdict")
    for name in methods:
        todo[f"method:{name}"] = not store.has(model, task.task_id, f"method:{name}")
    return todo


def is_complete(todo: dict) -> bool:
    return "_completion" in todo and not any(v for k, v in todo.items() if not k.startswith("_"))


def generation_requests(
    model, tasks: list[Task], config: StudyConfig, todos: dict[str, dict]
) -> list[tuple[str, int]]:
    """(input, budget) of every generation the tasks' pending units will ask for: the attributed
    input where no generation is stored, and an MBPP verdict's testable input."""
    from codefocus.models.base import model_input_for, study_budget

    protocol = config.declared_protocol()
    requests: list[tuple[str, int]] = []
    for task in tasks:
        todo = todos.get(task.task_id)
        if not todo or is_complete(todo):
            continue
        model_input = model_input_for(task, protocol.mbpp_header)
        budget = config.max_new_tokens or study_budget(
            model, task.reference_solution, protocol.budget_extra
        )
        if "_completion" not in todo:
            requests.append((model_input, budget))
        tested = verdict_input(task, model_input)
        if todo.get("verdict") and tested != model_input:
            requests.append((tested, budget))
    return requests


def generate_ahead(
    model, cache, requests: list[tuple[str, int]], batch_size: int = 128, advance=None
) -> int:
    """Greedy generations of many tasks at once, into ``cache``, where each task's own units read
    them. Inputs are batched across tasks by the exact engine (``DraftVerifier.generate_many``:
    prefill in batches of 8, decoding ``batch_size`` rows together, finished rows dropped), each
    with its own budget; the completions equal one-at-a-time generation
    (``tests/test_protocol.py``).
    Inputs that do not fit the model are left to their task, which records the failure. Returns
    how many were generated."""
    from codefocus.generation.records import GenerationSettings

    settings = GenerationSettings()
    key = settings.to_dict()
    fingerprint = model.fingerprint
    missing: list[tuple[str, int, int]] = []
    for text, budget in dict.fromkeys(requests):
        if cache.get_many(fingerprint, [text], key, budget):
            continue
        length = model.count_tokens(text)
        try:
            model.check_fits(length, budget)
        except RECOVERABLE:
            continue
        missing.append((text, budget, length))
    from codefocus.generation.draft import DraftVerifier

    engine = DraftVerifier(model, batch_size=8, decode_batch_size=batch_size)
    missing.sort(key=lambda item: (item[2], item[1]))
    for begin in range(0, len(missing), batch_size):
        chunk = missing[begin : begin + batch_size]
        outputs = engine.generate_many(
            [text for text, _, _ in chunk], [budget for _, budget, _ in chunk], settings
        )
        for (text, budget, _), output in zip(chunk, outputs, strict=True):
            cache.put_many(fingerprint, {text: (output.completion, output.token_ids)}, key, budget)
        if advance is not None:
            advance(len(chunk))
    return len(missing)
