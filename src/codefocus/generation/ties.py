"""Near ties in half precision: where the draft engine does not decide a token itself
(``generation.draft``'s module doc says why), and the margin it uses by default."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codefocus.models.base import WhiteBoxModel


def default_tie_margin(model: WhiteBoxModel) -> float:
    """4 machine epsilons of a half-precision model's dtype (bfloat16: 1/32, float16: 1/256);
    0 (no tie check) in float32 and wider."""
    import torch

    dtype = getattr(model.model, "dtype", torch.float32)
    if dtype not in (torch.bfloat16, torch.float16):
        return 0.0
    return 4 * torch.finfo(dtype).eps


def near_ties(logits, margin: float) -> list[bool]:
    """Per row of ``logits``: whether its two best values are within ``margin`` times the best
    one's magnitude (at least 1), in float32."""
    top = logits.float().topk(2, dim=-1).values
    gap = top[:, 0] - top[:, 1]
    return (gap <= margin * top[:, 0].abs().clamp(min=1.0)).tolist()
