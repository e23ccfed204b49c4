"""Gradient methods: Saliency and Input×Gradient (reading / coding), Integrated Gradients.

* Saliency(step, j) = ||d logit(token_step) / d e_j||_2, normalised to sum 1 over the step's inputs.
* Input×Gradient(step, j) = ||e_j ⊙ d logit(token_step) / d e_j||_2, normalised the same way.
* *reading* = the first generated token's vector; *coding* = the sum over all generated tokens.
* Integrated Gradients (new): first generated token, zero baseline, 20 trapezoid steps.
"""

from __future__ import annotations

from typing import ClassVar

from codefocus.methods.base import Method, TokenScores, register
from codefocus.methods.context import AttributionContext


class _Gradient(Method):
    family: ClassVar[str] = "gradient"
    stage: ClassVar[str]
    which: ClassVar[int]  # 0 saliency, 1 input x gradient

    def compute(self, context: AttributionContext) -> TokenScores:
        if self.stage == "reading":
            return TokenScores(context.first_step_gradients()[self.which][0].copy())
        per_step = context.gradients()[self.which]
        rows = per_step[: context.G] if context.G else per_step[:0]
        return TokenScores(rows.sum(axis=0), rows)


for _which, _kind in enumerate(("saliency", "inputxgradient")):
    for _stage in ("reading", "coding"):
        register(
            type(
                f"{_kind.title()}{_stage.title()}",
                (_Gradient,),
                {
                    "name": f"{_kind}_{_stage}",
                    "stage": _stage,
                    "which": _which,
                    "description": f"{_kind} while {_stage.upper()}",
                },
            )
        )


@register
class IntegratedGradientsReading(Method):
    name: ClassVar[str] = "integrated_gradients_reading"
    family: ClassVar[str] = "gradient"
    description: ClassVar[str] = "integrated gradients of the first generated token (new)"

    def compute(self, context: AttributionContext) -> TokenScores:
        return TokenScores(context.integrated_gradients())
