"""Gradient methods: Saliency and Input×Gradient (reading / coding), Integrated Gradients.

* Saliency(step, j) = ||d logit(token_step) / d e_j||_2, normalised to sum 1 over the step's inputs.
* Input×Gradient(step, j) = ||e_j ⊙ d logit(token_step) / d e_j||_2, normalised the same way.
* *reading* = the first generated token's vector; *coding* = the sum over all generated tokens
  (``coding_steps="summed"``, the paper's text) or the last generated token's vector alone
  (``coding_steps="one"``, the study's released code: one backward pass instead of G).
* Integrated Gradients (new): first generated token, zero baseline, ``ig_steps`` trapezoid steps.

Options: ``coding_steps``, ``gradient_chunk`` (backward passes batched per chunk of generated
tokens: memory, not values), ``ig_steps`` and ``max_memory`` (bytes: where given, the chunk of
backward passes, and the interpolation steps run together, are the most that fit in it by the
estimates of ``generation/memory.py``, instead of ``gradient_chunk`` and all ``ig_steps``). Like
``gradient_chunk``, ``max_memory`` never changes a score; it is not recorded among the options.

Contrastive (``attribute(..., contrast=...)``): the CODING methods with ``coding_steps="summed"``
differentiate ``log p(code) - log p(contrast)`` instead (``AttributionContext.
contrastive_gradients``): saliency stays an unsigned norm, input×gradient becomes the signed
``e_j · g_j``; neither has per-statement rows. The READING methods, ``coding_steps="one"`` and
integrated gradients take no contrast: with one, they fail with a one-line error.

Precision: gradients are taken in the model's dtype, their norms and sums in float32 or wider
(``methods/context.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from codefocus.errors import InvalidArgumentError
from codefocus.generation.memory import check_max_memory, options_without_budget
from codefocus.methods.base import Method, MethodInputs, TokenScores, cannot_contrast


@dataclass(frozen=True)
class Gradient(Method):
    """Saliency (``which=0``) or input×gradient (``which=1``), READING or CODING."""

    stage: str = "reading"
    which: int = 0
    coding_steps: str = "summed"  # summed | one (the last generated token only)
    gradient_chunk: int = 16
    max_memory: int | None = None  # bytes; chooses the chunk instead of gradient_chunk
    family: ClassVar[str] = "gradient"

    def __post_init__(self) -> None:
        if self.coding_steps not in ("summed", "one"):
            raise InvalidArgumentError(
                f"coding_steps must be summed or one, got {self.coding_steps!r}"
            )
        if self.gradient_chunk < 1:
            raise InvalidArgumentError(
                f"gradient_chunk must be positive, got {self.gradient_chunk}"
            )
        check_max_memory(self.max_memory)

    def options(self) -> dict:
        return options_without_budget(super().options())

    @property
    def description(self) -> str:  # type: ignore[override]
        kind = ("saliency", "inputxgradient")[self.which]
        return f"{kind} while {self.stage.upper()}"

    @property
    def takes_contrast(self) -> bool:
        """Only the whole generation's target (CODING, summed) has a contrastive form."""
        return self.stage == "coding" and self.coding_steps == "summed"

    def compute(self, inputs: MethodInputs) -> TokenScores:
        context = inputs.context(self.name)
        if context.contrast is not None:
            if not self.takes_contrast:
                raise InvalidArgumentError(cannot_contrast(self))
            return TokenScores(context.contrastive_gradients()[self.which].copy())
        if self.stage == "reading":
            return TokenScores(context.first_step_gradients()[self.which][0].copy())
        if self.coding_steps == "one":
            return TokenScores(context.last_step_gradients()[self.which][0].copy())
        both = context.gradients(chunk=self.gradient_chunk, max_memory=self.max_memory)
        per_step = both[self.which]
        rows = per_step[: context.G] if context.G else per_step[:0]
        return TokenScores(rows.sum(axis=0), rows)


@dataclass(frozen=True)
class IntegratedGradients(Method):
    """Integrated gradients of the first generated token (new)."""

    ig_steps: int = 20
    max_memory: int | None = None  # bytes; bounds the interpolation steps run together
    family: ClassVar[str] = "gradient"
    description: ClassVar[str] = "integrated gradients of the first generated token (new)"

    def __post_init__(self) -> None:
        if self.ig_steps < 2:
            raise InvalidArgumentError(f"ig_steps must be at least 2, got {self.ig_steps}")
        check_max_memory(self.max_memory)

    def options(self) -> dict:
        return options_without_budget(super().options())

    def compute(self, inputs: MethodInputs) -> TokenScores:
        context = inputs.context(self.name)
        if context.contrast is not None:
            raise InvalidArgumentError(cannot_contrast(self))
        return TokenScores(context.integrated_gradients(self.ig_steps, self.max_memory))


saliency_reading = Gradient("saliency_reading", stage="reading", which=0)
saliency_coding = Gradient("saliency_coding", stage="coding", which=0)
inputxgradient_reading = Gradient("inputxgradient_reading", stage="reading", which=1)
inputxgradient_coding = Gradient("inputxgradient_coding", stage="coding", which=1)
integrated_gradients_reading = IntegratedGradients("integrated_gradients_reading")

METHODS: tuple[Method, ...] = (
    saliency_reading,
    saliency_coding,
    inputxgradient_reading,
    inputxgradient_coding,
    integrated_gradients_reading,
)
