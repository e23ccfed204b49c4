"""Prefix reuse: the keys and values of an original prompt, read by every input that shares
its first tokens instead of computing them again (the draft engine, likelihood methods).

The forwards go through the white-box model's declared ``hidden_states`` (hidden states from a
cache, and the cache it extended); nothing here reaches into the transformer itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codefocus.models.base import WhiteBoxModel


def prefix_cache(model: WhiteBoxModel, ids: list[int]) -> Any:
    """Keys and values of ``ids`` (an original prompt), for inputs that share its first tokens."""
    import torch

    with torch.no_grad():
        _, cache = model.hidden_states(torch.tensor([ids], device=model.device))
    return cache


def repeated_prefix(cache: Any, start: int, rows: int) -> Any:
    """The first ``start`` tokens of a ``prefix_cache``, once per row (None where nothing is
    shared); the original cache is left as it is."""
    import copy

    if cache is None or start <= 0:
        return None
    past = copy.deepcopy(cache)
    if past.get_seq_length() > start:
        past.crop(start - past.get_seq_length())  # negative: tokens to remove
    past.batch_repeat_interleave(rows)
    return past


def forward_from_prefix(
    model: WhiteBoxModel, sequences: list[list[int]], cache: Any = None, start: int = 0
) -> Any:
    """Last hidden states of ``sequences`` (right padded, one row each) from position ``start``
    on: with ``cache`` (a ``prefix_cache``), the first ``start`` tokens, which every sequence
    shares with the cached prompt, are read from it instead of being recomputed. Row r, column
    c is position ``start + c`` of sequence r."""
    import torch

    pad = model.tokenizer.pad_token_id or 0
    start = start if cache is not None else 0
    rows = [s[start:] for s in sequences]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), start + width), dtype=torch.long)
    mask[:, :start] = 1
    for row, sequence in enumerate(rows):  # right padding: causal rows are unaffected
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, start : start + len(sequence)] = 1
    past = repeated_prefix(cache, start, len(rows))
    hidden, _ = model.hidden_states(
        ids.to(model.device),
        past,
        use_cache=past is not None,
        attention_mask=mask.to(model.device),
    )
    return hidden


def shared_prefix(ids: Sequence[int], original: Sequence[int]) -> int:
    """Tokens an input can read from the original's cache: the common prefix, less at least
    the input's last token (whose hidden state is needed)."""
    return min(common_prefix(ids, original), len(ids) - 1)


def changed(ids: Sequence[int], original: Sequence[int]) -> int:
    """Tokens of ``ids`` outside its common prefix and common suffix with ``original``."""
    prefix = common_prefix(ids, original)
    suffix = common_prefix(ids[prefix:][::-1], original[prefix:][::-1])
    return len(ids) - prefix - suffix


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many first tokens ``a`` and ``b`` share."""
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count
