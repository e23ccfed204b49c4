"""The typed records generation takes and gives: how to generate, and what was generated."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from codefocus.serialization import JsonRecord


@dataclass(frozen=True)
class GenerationSettings(JsonRecord):
    """How to generate. The defaults follow Kou et al.: greedy, stop at the end of the function.

    ``max_new_tokens=None`` means: tokens of the reference solution + 20, as in the study.
    """

    max_new_tokens: int | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop_at_function_end: bool = True
    chat: bool = False


@dataclass(frozen=True)
class Generation(JsonRecord):
    """A model input and the code the model wrote after it.

    ``token_ids`` are the generated tokens that were kept (white-box models): the completion is
    exactly their decoding, and attribution scores exactly these tokens rather than a
    re-tokenisation of the text. Endpoints give text only (``None``).
    """

    model: str
    model_input: str
    completion: str
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    token_ids: tuple[int, ...] | None = None


def finished_generations(
    model: Any, inputs: Sequence[str], raw: dict[int, list[int]], settings: GenerationSettings
) -> list[Generation]:
    """The ``Generation`` of each input from its raw decoded ids (``raw[index]``), kept as the
    model keeps them (``finish_ids``: before end-of-text, up to the function's end): what every
    engine returns."""
    results = []
    for index, text in enumerate(inputs):
        ids = model.finish_ids(raw[index], settings)
        results.append(Generation(model.name, text, model.decode(ids), settings, tuple(ids)))
    return results
