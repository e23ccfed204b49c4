"""The two generation seams, declared: what an engine does, and what perturbation methods call.

* ``Regenerator``: an engine (``draft``, ``plain``, ``llama.cpp``; ``registry.py``) regenerates
  the greedy completions of inputs that perturb one original input. ``DraftVerifier`` and
  ``LlamaCppEngine`` share this contract; ``CachedGenerator`` calls only it. ``max_memory``
  (bytes) bounds its batches (``memory.py``); it never changes an answer.
* ``CompletionGenerator``: what the perturbation methods regenerate through
  (``CachedGenerator``, or any callable wrapped by ``as_completion_generator``). Whether it
  remembers what it generated, and which engine it used, are members rather than flags probed
  by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from codefocus.generation.records import Generation, GenerationSettings


class Regenerator(Protocol):
    """Greedy completions of ``inputs``, each of which perturbs ``original``.

    Each result is the greedy completion of its input, cut by the truncation rule
    (``truncation.py``), as ``TextGenerator.generate`` would write it: an engine may use
    ``original`` and ``draft`` (the tokens of ``original``'s completion, a guess) to skip work,
    never to change an answer. ``llama.cpp`` decodes with its own kernels and falls back to the
    transformers engine for an original it does not reproduce.
    """

    def regenerate(
        self,
        inputs: Sequence[str],
        original: str,
        budget: int,
        settings: GenerationSettings,
        draft: Sequence[int] | None = None,
        max_memory: int | None = None,
    ) -> list[Generation]: ...

    def engine_used(self) -> str:
        """How this engine regenerated, for the record kept with the scores."""
        ...


@runtime_checkable
class MemoryBounded(Protocol):
    """A generator whose batches keep within a memory budget (bytes; None: no budget), which
    the methods that generate through it may set while they run (``memory.memory_budget``)."""

    max_memory: int | None


@runtime_checkable
class CompletionGenerator(Protocol):
    """What perturbation methods call: completions of many inputs (perturbations of
    ``original``) at once."""

    # whether what it generated is answered again from memory: ``prefetch`` generates every
    # planned input in one call only then (one that forgets would generate everything twice)
    remembers: bool

    def __call__(
        self,
        inputs: list[str],
        budget: int,
        settings: GenerationSettings | None = None,
        original: str | None = None,
    ) -> list[str]: ...

    def engine_used(self) -> str:
        """How perturbed inputs were regenerated, for the record kept with the scores."""
        ...


class _Function:
    """A plain callable as a ``CompletionGenerator``: it remembers nothing, and its engine is
    its own (``custom``)."""

    remembers = False

    def __init__(self, function: Callable[..., list[str]]) -> None:
        self.function = function

    def __call__(
        self,
        inputs: list[str],
        budget: int,
        settings: GenerationSettings | None = None,
        original: str | None = None,
    ) -> list[str]:
        return self.function(inputs, budget, settings, original=original)

    def engine_used(self) -> str:
        return "custom"


def as_completion_generator(generator: object) -> CompletionGenerator:
    """``generator`` itself where it offers the protocol; a callable (a test's stand-in for a
    model, a benchmark's baseline) wrapped as one."""
    if isinstance(generator, CompletionGenerator):
        return generator
    return _Function(generator)  # type: ignore[arg-type]
