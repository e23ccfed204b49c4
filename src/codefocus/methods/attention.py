"""Self-attention methods: READING / CODING x first / last / all layers (Kou et al.).

Definitions (heads always summed; "first" = layer 0, "last" = the last layer, "all" = sum over
layers; A = head-summed attention, rows are query positions, columns prompt tokens):

* READING_x(j) = sum over prompt positions i of A_x[i, j]   — what the model attends to while
  reading the task.
* CODING_x(j)  = sum over the G query positions that produced the generated tokens (P-1 .. S-2:
  the query at P-1+s writes token s) of A_x[i, j] — what it attends to while writing code; row s
  is kept for the word -> statement map, aligned with the gradient methods' step s.

Attention is read raw (each row is the model's softmax over every position it sees); only the
scored scope's columns are kept as scores, less the first input position (an attention sink, see
``methods/context.py``) unless the caller keeps it.

``compat_*`` reproduce the study's released code instead, which differs from the paper's text:
it takes layer 0 only and indexes its *heads* (first = head 0, last = the last head, all = sum of
heads), reading one row — READING at the first generated position, CODING at the last generated
position (the end of the generated function).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codefocus.methods.base import Method, MethodInputs, TokenScores


@dataclass(frozen=True)
class SelfAttention(Method):
    """Head-summed self-attention of the chosen layers, while READING or CODING."""

    stage: str = "reading"  # reading | coding
    layers: str = "first"  # first | last | all
    family: ClassVar[str] = "attention"

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"self-attention while {self.stage.upper()}, {self.layers} layer(s), heads summed"

    def compute(self, inputs: MethodInputs) -> TokenScores:
        context = inputs.context(self.name)
        last = context.model.num_layers - 1
        chosen = {"first": [0], "last": [last], "all": list(range(last + 1))}[self.layers]
        matrices = context.attention(set(chosen))
        combined = np.sum([matrices[i] for i in chosen], axis=0)  # (S, P)
        scored = context.attention_scored
        if self.stage == "reading":
            return TokenScores(np.where(scored, combined[: context.P].sum(axis=0), 0.0))
        rows = np.where(scored, context.step_rows(combined), 0.0)
        if len(rows) == 0:
            return TokenScores(np.zeros(context.P), np.zeros((0, context.P)))
        return TokenScores(rows.sum(axis=0), rows)


@dataclass(frozen=True)
class CompatAttention(Method):
    """The study's released code: layer 0, one head (or their sum), one row."""

    stage: str = "reading"
    heads: str = "first"  # first | last | all
    family: ClassVar[str] = "attention-compat"

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"the study's released code: layer 0, head {self.heads}, one {self.stage} row"

    def compute(self, inputs: MethodInputs) -> TokenScores:
        context = inputs.context(self.name)
        per_head = context.layer0_heads()  # (H, S, P)
        selected = {"first": per_head[0], "last": per_head[-1], "all": per_head.sum(0)}[self.heads]
        if context.G == 0:
            return TokenScores(np.zeros(context.P))
        row = context.P if self.stage == "reading" else context.P + context.G - 1
        return TokenScores(np.where(context.attention_scored, selected[row], 0.0))


reading_first = SelfAttention("reading_first", stage="reading", layers="first")
reading_last = SelfAttention("reading_last", stage="reading", layers="last")
reading_all = SelfAttention("reading_all", stage="reading", layers="all")
coding_first = SelfAttention("coding_first", stage="coding", layers="first")
coding_last = SelfAttention("coding_last", stage="coding", layers="last")
coding_all = SelfAttention("coding_all", stage="coding", layers="all")

compat_reading_first = CompatAttention("compat_reading_first", stage="reading", heads="first")
compat_reading_last = CompatAttention("compat_reading_last", stage="reading", heads="last")
compat_reading_all = CompatAttention("compat_reading_all", stage="reading", heads="all")
compat_coding_first = CompatAttention("compat_coding_first", stage="coding", heads="first")
compat_coding_last = CompatAttention("compat_coding_last", stage="coding", heads="last")
compat_coding_all = CompatAttention("compat_coding_all", stage="coding", heads="all")

METHODS: tuple[Method, ...] = (
    reading_first,
    reading_last,
    reading_all,
    coding_first,
    coding_last,
    coding_all,
    compat_reading_first,
    compat_reading_last,
    compat_reading_all,
    compat_coding_first,
    compat_coding_last,
    compat_coding_all,
)
