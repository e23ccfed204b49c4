"""The engines, by name: how perturbed inputs are regenerated on a white-box model.

* ``draft``: the exact transformers engine, verifying the original completion as a draft
  (``draft.py``).
* ``plain``: decode every input with the model's own ``generate`` (the baseline).
* ``llama.cpp``: llama.cpp in-process for a model that has a GGUF file, checked against
  transformers per task (``llamacpp.py``).

A model behind an endpoint, sampling, and a call without an original always decode plainly
through the model's ``generate``: the engine only decides how greedy regenerations of perturbed
inputs are made. Engines are built lazily (torch, llama.cpp) by ``CachedGenerator``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codefocus.errors import InvalidArgumentError
from codefocus.generation.records import Generation, GenerationSettings

if TYPE_CHECKING:
    from codefocus.generation.protocol import Regenerator
    from codefocus.models.base import TextGenerator, WhiteBoxModel


class PlainEngine:
    """Every input decoded by the model's ``generate``, in batches (nothing reused)."""

    def __init__(self, model: WhiteBoxModel, batch_size: int = 8) -> None:
        self.model = model
        self.batch_size = batch_size  # at most; fewer where ``max_memory`` says so

    def engine_used(self) -> str:
        return "plain"

    def regenerate(
        self,
        inputs: Sequence[str],
        original: str,
        budget: int,
        settings: GenerationSettings,
        draft: Sequence[int] | None = None,
        max_memory: int | None = None,
    ) -> list[Generation]:
        from codefocus.generation.memory import generation_rows

        rows = generation_rows(self.model, list(inputs), budget, max_memory, self.batch_size)
        return self.model.generate(list(inputs), settings, max_new_tokens=budget, batch_size=rows)


def _draft(model: WhiteBoxModel, batch_size: int) -> Regenerator:
    from codefocus.generation.draft import DraftVerifier

    return DraftVerifier(model, batch_size)


def _llama_cpp(model: WhiteBoxModel, batch_size: int) -> Regenerator:
    from codefocus.generation.llamacpp import LlamaCppEngine

    gguf = model.gguf()
    if gguf is None:
        raise InvalidArgumentError(f"engine llama.cpp needs a GGUF model; {model.name} has none")
    return LlamaCppEngine(model, gguf)


def _usable_anywhere(model: TextGenerator) -> None:
    """Every model can use the engine (an endpoint simply decodes plainly)."""


def _needs_gguf(model: TextGenerator) -> None:
    from codefocus.generation.llamacpp import llama_cpp_available
    from codefocus.models.base import is_white_box

    if not is_white_box(model) or model.gguf_source is None:
        raise InvalidArgumentError(
            f"engine llama.cpp needs a model with a GGUF file (the default, a .gguf); "
            f"{model.name} has none"
        )
    if not llama_cpp_available():
        raise InvalidArgumentError(
            "engine llama.cpp needs llama-cpp-python: pip install 'llama-cpp-python==0.3.36'"
        )


@dataclass(frozen=True)
class Engine:
    """An engine's name, how to build it for a model, and what it asks of the model."""

    name: str
    build: Callable[[WhiteBoxModel, int], Regenerator]  # (model, batch size) -> engine
    check: Callable[[TextGenerator], None] = _usable_anywhere  # raise where the model cannot
    # appended to the model's fingerprint in the cache: an engine whose completions are its
    # own (other kernels) keeps them apart from the exact ones
    cache_tag: str = ""


ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        Engine("draft", _draft),
        Engine("plain", PlainEngine),
        Engine("llama.cpp", _llama_cpp, _needs_gguf, cache_tag="|llama.cpp"),
    )
}
ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)


def get_engine(name: str) -> Engine:
    """The engine called ``name``."""
    if name not in ENGINES:
        raise InvalidArgumentError(f"unknown engine {name!r}: use {' or '.join(ENGINES)}")
    return ENGINES[name]
