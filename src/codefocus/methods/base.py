"""What a method is, what it computes from, and what it returns.

A method is a small frozen dataclass instance with a ``name`` and a ``family``; its other fields
are its options (integrated-gradients steps, SHAP samples, ...), set per instance by
``resolve_methods(names, **options)`` and recorded with the result. It turns ``MethodInputs`` into
scores over the prompt's model tokens (white-box methods) or over its words (perturbation
methods). Methods that share work (the six self-attention methods share one forward pass;
saliency and input×gradient share the backward passes) get it from the white-box context's caches.
The registry lives in ``codefocus.methods``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from codefocus.errors import InvalidArgumentError

if TYPE_CHECKING:
    from codefocus.methods.context import AttributionContext
    from codefocus.methods.setup import PerturbationSetup

FAMILIES = ("attention", "attention-compat", "gradient", "perturbation", "likelihood")


@dataclass
class TokenScores:
    """Scores over the prompt tokens, and optionally one row per generated token (G x P).

    Perturbation methods score words directly: ``word_level=True`` and one score per word.
    """

    scores: np.ndarray
    per_step: np.ndarray | None = None
    word_level: bool = False


@dataclass(frozen=True)
class MethodInputs:
    """What methods compute from: the white-box context (``None`` for a model behind an endpoint)
    and the perturbation setup (``None`` when no perturbation method runs)."""

    white_box: AttributionContext | None = None
    perturbation: PerturbationSetup | None = None

    def context(self, method: str) -> AttributionContext:
        if self.white_box is None:
            raise InvalidArgumentError(f"{method} needs a white-box model")
        return self.white_box

    def setup(self, method: str) -> PerturbationSetup:
        if self.perturbation is None:
            raise InvalidArgumentError(f"{method} needs a perturbation setup")
        return self.perturbation


# fields of a method that identify it rather than configure it
IDENTITY_FIELDS = ("name", "stage", "layers", "heads", "which")


@dataclass(frozen=True)
class Method:
    """Subclasses add their options as fields and implement ``compute``."""

    name: str
    family: ClassVar[str]
    description: ClassVar[str] = ""
    needs_white_box: ClassVar[bool] = True

    def compute(self, inputs: MethodInputs) -> TokenScores:
        raise NotImplementedError

    def options(self) -> dict:
        """The options this instance runs with (recorded in the result's settings)."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in IDENTITY_FIELDS
        }


def cannot_contrast(method: Method) -> str:
    """One line for a method asked to explain a contrast it cannot take (the registry's
    ``contrast_refusal`` also names the methods that can)."""
    name = method.name
    if getattr(method, "stage", None) == "coding" and getattr(method, "coding_steps", "") == "one":
        name += " with coding_steps='one'"
    return f"{name} cannot take a contrast: it explains the model's own code only"
