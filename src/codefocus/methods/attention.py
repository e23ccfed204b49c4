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

from typing import ClassVar

import numpy as np

from codefocus.methods.base import Method, TokenScores, register
from codefocus.methods.context import AttributionContext


class _SelfAttention(Method):
    family: ClassVar[str] = "attention"
    stage: ClassVar[str]
    layers: ClassVar[str]

    def _layer_ids(self, context: AttributionContext) -> list[int]:
        last = context.model.num_layers - 1
        return {"first": [0], "last": [last], "all": list(range(last + 1))}[self.layers]

    def compute(self, context: AttributionContext) -> TokenScores:
        chosen = self._layer_ids(context)
        matrices = context.attention(set(chosen))
        combined = np.sum([matrices[i] for i in chosen], axis=0)  # (S, P)
        scored = context.attention_scored
        if self.stage == "reading":
            return TokenScores(np.where(scored, combined[: context.P].sum(axis=0), 0.0))
        rows = np.where(scored, context.step_rows(combined), 0.0)
        if len(rows) == 0:
            return TokenScores(np.zeros(context.P), np.zeros((0, context.P)))
        return TokenScores(rows.sum(axis=0), rows)


def _make(stage: str, layers: str) -> type[Method]:
    cls = type(
        f"{stage.title()}{layers.title()}Attention",
        (_SelfAttention,),
        {
            "name": f"{stage}_{layers}",
            "stage": stage,
            "layers": layers,
            "description": f"self-attention while {stage.upper()}, {layers} layer(s), heads summed",
        },
    )
    return register(cls)


for _stage in ("reading", "coding"):
    for _layers in ("first", "last", "all"):
        _make(_stage, _layers)


class _CompatAttention(Method):
    family: ClassVar[str] = "attention-compat"
    stage: ClassVar[str]
    heads: ClassVar[str]

    def compute(self, context: AttributionContext) -> TokenScores:
        per_head = context.layer0_heads()  # (H, S, P)
        selected = {"first": per_head[0], "last": per_head[-1], "all": per_head.sum(0)}[self.heads]
        if context.G == 0:
            return TokenScores(np.zeros(context.P))
        row = context.P if self.stage == "reading" else context.P + context.G - 1
        return TokenScores(np.where(context.attention_scored, selected[row], 0.0))


for _stage in ("reading", "coding"):
    for _heads in ("first", "last", "all"):
        register(
            type(
                f"Compat{_stage.title()}{_heads.title()}",
                (_CompatAttention,),
                {
                    "name": f"compat_{_stage}_{_heads}",
                    "stage": _stage,
                    "heads": _heads,
                    "description": "the study's released code: layer 0, head "
                    f"{_heads}, one {_stage} row",
                },
            )
        )
