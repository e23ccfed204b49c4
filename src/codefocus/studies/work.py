"""A study's units of one (model, task): what is still to do (``todo_for``), and doing it
(``process_task``); and the generations of many tasks at once (``generate_ahead``).

Units are the task's generation, its verdict, and one ``method`` unit per attribution method
(``runs.units.Unit``). What is still to do is a ``TaskTodo``: the stored generation, when there
is one, and which of the verdict and the methods are missing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from typing import Protocol as Shape

from codefocus.errors import RECOVERABLE
from codefocus.runs.programs import generate_checked, run_verdict, study_input, verdict_input
from codefocus.runs.units import Unit, UnitResult, UnitRunner, failure

if TYPE_CHECKING:
    from codefocus.data.benchmarks import Task
    from codefocus.options import AttributionOptions
    from codefocus.protocols import Protocol


class StudySettings(Shape):
    """What a study's units read of its configuration: ``studies.runner.StudyConfig``, typed by
    its shape (the runner imports this module, so this module does not import it back)."""

    @property
    def models(self) -> tuple[str, ...]: ...
    @property
    def max_new_tokens(self) -> int | None: ...
    @property
    def timeout(self) -> float: ...
    @property
    def options(self) -> AttributionOptions: ...
    @property
    def verdicts(self) -> str: ...
    def declared_protocol(self) -> Protocol: ...
    def run_protocol(self) -> Protocol: ...


@dataclass(frozen=True)
class StoredGeneration:
    """A task's stored generation, which its other units build on."""

    completion: str
    token_ids: Sequence[int] | None = None


@dataclass(frozen=True)
class TaskTodo:
    """What is still to do for ``model`` on one task.

    ``generation``: the stored generation (``None``: generate it first); ``verdict``: the verdict
    is missing; ``methods``: the methods still to run, in order; ``stored_methods``: those already
    stored; ``stopped``: the generation failed (recorded), so nothing more is done.
    """

    model: str
    task_id: str
    generation: StoredGeneration | None = None
    verdict: bool = False
    methods: tuple[str, ...] = ()
    stored_methods: tuple[str, ...] = ()
    stopped: bool = False

    @property
    def complete(self) -> bool:
        """Nothing is left to do (or can be done) for this task."""
        return self.stopped or (
            self.generation is not None and not self.verdict and not self.methods
        )


def process_task(
    model, task: Task, config: StudySettings, todo: TaskTodo, cache=None
) -> Iterator[UnitResult]:
    """Yield the result of each unit of one task that is still to do (``todo``)."""
    from codefocus.api import attribute
    from codefocus.generation.records import GenerationSettings
    from codefocus.models.base import study_budget

    protocol = config.run_protocol()
    settings = GenerationSettings(max_new_tokens=config.max_new_tokens)
    model_input = study_input(task, protocol.mbpp_header)
    budget = config.max_new_tokens or study_budget(
        model, task.reference_solution, protocol.budget_extra
    )
    unit = functools.partial(Unit, todo.model, todo.task_id)
    completion: str | None
    completion_ids: Sequence[int] | None
    if todo.generation is None:
        started = time.perf_counter()
        try:
            generation = generate_checked(model, cache, model_input, budget, settings)
            completion, completion_ids = generation.completion, generation.token_ids
        except RECOVERABLE as error:
            seconds = time.perf_counter() - started
            yield UnitResult(unit("generation"), None, failure(error), seconds)
            return
        payload = {
            "model_input": model_input,
            "completion": completion,
            "token_ids": list(completion_ids) if completion_ids is not None else None,
        }
        yield UnitResult(unit("generation"), payload, None, time.perf_counter() - started)
    else:
        completion, completion_ids = todo.generation.completion, todo.generation.token_ids
    if todo.verdict:
        started = time.perf_counter()
        tested_input = verdict_input(task, model_input)
        tested: str | None = completion
        if tested_input != model_input:
            try:
                tested = generate_checked(model, cache, tested_input, budget, settings).completion
            except RECOVERABLE as error:
                yield UnitResult(unit("verdict"), None, failure(error), 0.0)
                tested = None
        if tested is not None:
            outcome = run_verdict(task, tested_input, tested, config.timeout)
            verdict = {
                "passed": outcome.passed,
                "status": outcome.status,
                "result": outcome.reason,
                # which generation was tested: the attributed one, or a testable one of its own
                "generation": "attributed" if tested_input == model_input else "evaluable",
                "model_input": tested_input,
                "completion": tested,
            }
            yield UnitResult(unit("verdict"), verdict, None, time.perf_counter() - started)
    pending = list(todo.methods)
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
            # the study's options (device, dtype, memory, method options), under the protocol
            # as this run resolved it
            options=config.options.changed(protocol=protocol),
            completion_ids=completion_ids,
        )
    except RECOVERABLE as error:
        for name in pending:
            yield UnitResult(unit("method", name), None, failure(error), 0.0)
        return
    for name in pending:
        if name in result.failures:
            yield UnitResult(unit("method", name), None, result.failures[name], 0.0)
            continue
        seconds = result.timings.get(name, time.perf_counter() - started)
        # stored without timings (the unit's seconds hold them): a resumed study stores the
        # same payloads as one run without a break
        stored = replace(result.select([name]), timings={})
        yield UnitResult(unit("method", name), stored.to_dict(), None, seconds)


def wants_verdict(task: Task, config: StudySettings) -> bool:
    """Whether ``config.verdicts`` asks for this task's verdict (``attributed``: only where the
    attributed generation is the tested one, so no second generation is needed)."""
    if config.verdicts == "none":
        return False
    if config.verdicts == "attributed":
        model_input = study_input(task, config.declared_protocol().mbpp_header)
        return verdict_input(task, model_input) == model_input
    return True


def todo_for(
    runner: UnitRunner, model: str, task: Task, methods: list[str], config: StudySettings
) -> TaskTodo:
    """What the store still lacks of ``model`` on ``task``."""
    generation = runner.stored(Unit(model, task.task_id, "generation"))
    if generation is not None and not generation.done:
        # failed generation: recorded, nothing more to do for this task
        return TaskTodo(model, task.task_id, stopped=True)
    stored = None
    if generation is not None:
        payload = generation.payload
        stored = StoredGeneration(payload["completion"], payload.get("token_ids"))
    verdict = wants_verdict(task, config) and not runner.has(Unit(model, task.task_id, "verdict"))
    missing = [m for m in methods if not runner.has(Unit(model, task.task_id, "method", m))]
    return TaskTodo(
        model,
        task.task_id,
        stored,
        verdict,
        tuple(missing),
        tuple(m for m in methods if m not in missing),
    )


def generation_requests(
    model, tasks: list[Task], config: StudySettings, todos: dict[str, TaskTodo]
) -> list[tuple[str, int]]:
    """(input, budget) of every generation the tasks' pending units will ask for: the attributed
    input where no generation is stored, and an MBPP verdict's testable input."""
    from codefocus.models.base import study_budget

    protocol = config.declared_protocol()
    requests: list[tuple[str, int]] = []
    for task in tasks:
        todo = todos.get(task.task_id)
        if todo is None or todo.complete:
            continue
        model_input = study_input(task, protocol.mbpp_header)
        budget = config.max_new_tokens or study_budget(
            model, task.reference_solution, protocol.budget_extra
        )
        if todo.generation is None:
            requests.append((model_input, budget))
        tested = verdict_input(task, model_input)
        if todo.verdict and tested != model_input:
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
