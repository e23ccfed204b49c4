"""The method registry and the shared computation context.

A method is one class with a ``name`` that turns an ``AttributionContext`` into scores over the
prompt's model tokens. Methods that share work (the six self-attention methods share one forward
pass; saliency and input×gradient share the backward passes) get it from the context's caches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from codefocus.errors import UnknownNameError

if TYPE_CHECKING:
    from codefocus.methods.context import AttributionContext


@dataclass
class TokenScores:
    """Scores over the prompt tokens, and optionally one row per generated token (G x P).

    Perturbation methods score words directly: ``word_level=True`` and one score per word.
    """

    scores: np.ndarray
    per_step: np.ndarray | None = None
    word_level: bool = False


class Method:
    """Subclasses set ``name``, ``family`` and ``description`` and implement ``compute``."""

    name: ClassVar[str]
    family: ClassVar[str]  # "attention", "gradient", "perturbation"
    description: ClassVar[str] = ""
    needs_white_box: ClassVar[bool] = True

    def compute(self, context: AttributionContext) -> TokenScores:
        raise NotImplementedError


_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method available by its name."""
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    from codefocus.methods import attention, gradient, perturbation  # noqa: F401  (registers)


def available_methods() -> dict[str, type[Method]]:
    _load_builtin()
    return dict(_REGISTRY)


GROUPS: dict[str, Callable[[dict[str, type[Method]]], list[str]]] = {
    "all-whitebox": lambda r: [n for n in r if n in STUDY_WHITEBOX],
    "all": lambda r: list(r),
    "kou2024-compat": lambda r: [n for n, c in r.items() if c.family == "attention-compat"],
    "attention": lambda r: [n for n, c in r.items() if c.family == "attention"],
    "gradient": lambda r: [n for n, c in r.items() if c.family == "gradient"],
    "perturbation": lambda r: [n for n, c in r.items() if c.family == "perturbation"],
    "study": lambda r: [n for n in r if n in STUDY_WHITEBOX],
}
STUDY_WHITEBOX = (
    "reading_first",
    "reading_last",
    "reading_all",
    "coding_first",
    "coding_last",
    "coding_all",
    "saliency_reading",
    "saliency_coding",
    "inputxgradient_reading",
    "inputxgradient_coding",
)


def resolve_methods(names: list[str] | str) -> list[Method]:
    """Method instances for names or group names (``all-whitebox``, ``attention``, ...)."""
    registry = available_methods()
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    chosen: list[str] = []
    for name in names:
        if name in GROUPS:
            chosen += GROUPS[name](registry)
        elif name in registry:
            chosen.append(name)
        else:
            known = ", ".join([*GROUPS, *registry])
            raise UnknownNameError(f"unknown method {name!r}: choose from {known}")
    return [registry[n]() for n in dict.fromkeys(chosen)]
