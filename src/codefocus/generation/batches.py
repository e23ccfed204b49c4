"""The draft engine's batches: rows decoded together over one key/value cache, and the cache
surgery that keeps them cheap (dropping finished rows, compacting holes, merging batches).

Nothing here changes a token: rows and their cache columns only move, and every column a row
does not own stays masked out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class Row:
    """One input being regenerated: its tokens, what is settled, and what is fed next."""

    index: int  # position among the inputs
    prompt: list[int]
    cached: int  # tokens of this row held in the batch's keys and values (its next position)
    pending: list[int]  # settled tokens not yet in the cache: fed at the next step
    draft: list[int]  # guessed continuation, fed after ``pending`` and kept where greedy agrees
    out: list[int] = field(default_factory=list)  # settled completion tokens
    budget: int | None = None  # this row's own token budget (else the call's)


@dataclass
class Batch:
    """Rows decoded together over one key/value cache. ``mask`` marks, per row, the cache
    columns that hold its tokens; the others are holes (padding, rejected draft tokens, or
    columns another batch brought in when two were merged), never attended to."""

    rows: list[Row]
    cache: Any  # a transformers DynamicCache, or None before the first step
    mask: torch.Tensor  # long, (rows, columns)


def keep_open(batch: Batch, finished: dict[int, list[int]], device: Any) -> Batch:
    """The batch without its finished rows."""
    keep = [i for i, row in enumerate(batch.rows) if row.index not in finished]
    return batch if len(keep) == len(batch.rows) else select(batch, keep, device)


def select(batch: Batch, keep: list[int], device: Any) -> Batch:
    """The rows ``keep`` of the batch, with their cache and mask rows."""
    import torch

    if not keep:
        return Batch([], None, batch.mask[:0])
    index = torch.tensor(keep, device=device)
    cache = None
    if batch.cache is not None:
        cache = rebuild([(k[index], v[index]) for k, v in layers(batch.cache)])
    return Batch([batch.rows[i] for i in keep], cache, batch.mask[index.cpu()])


def compact(batch: Batch) -> Batch:
    """The batch with its holes dropped once they are a third of the cache (the same batch
    otherwise): each row's tokens move right, in order, holes left-pad the shorter rows (as in
    a left-padded batch). Keeps attention cheap, and the column count no larger than plain
    decoding's (a model with a sliding window counts its window in columns)."""
    import torch

    if not batch.rows:
        return batch
    valid = batch.mask.sum(dim=1)
    width = int(valid.max())
    if batch.mask.shape[1] * 2 <= width * 3:
        return batch
    index = torch.zeros((len(batch.rows), width), dtype=torch.long)
    mask = torch.zeros((len(batch.rows), width), dtype=torch.long)
    for row in range(len(batch.rows)):
        columns = batch.mask[row].nonzero().flatten()
        index[row, width - len(columns) :] = columns
        mask[row, width - len(columns) :] = 1
    gathered = []
    for keys, values in layers(batch.cache):
        gather = index.to(keys.device)[:, None, :, None].expand(
            -1, keys.shape[1], -1, keys.shape[3]
        )
        gathered.append((keys.gather(2, gather), values.gather(2, gather)))
    return Batch(batch.rows, rebuild(gathered), mask)


def merge(batches: list[Batch]) -> Batch:
    """One batch of all rows: caches padded with holes to the same width and stacked."""
    import torch
    from torch.nn.functional import pad

    batches = [b for b in batches if b.rows]
    if len(batches) <= 1:
        return batches[0] if batches else Batch([], None, torch.zeros((0, 0), dtype=torch.long))
    width = max(b.mask.shape[1] for b in batches)
    extra = [width - b.mask.shape[1] for b in batches]
    stacked = [
        tuple(
            torch.cat(
                [pad(layer[kind], (0, 0, 0, e)) for layer, e in zip(per_batch, extra, strict=True)]
            )
            for kind in (0, 1)
        )
        for per_batch in zip(*(layers(b.cache) for b in batches), strict=True)
    ]
    masks = [pad(b.mask, (0, e)) for b, e in zip(batches, extra, strict=True)]
    rows = [r for b in batches for r in b.rows]
    return Batch(rows, rebuild(stacked), torch.cat(masks))


def even_split(rows: list, size: int) -> list[list]:
    """``rows`` in as few batches of at most ``size`` as possible, of nearly equal sizes (a
    forward of one row costs nearly as much as one of several: weights are read either way)."""
    count = -(-len(rows) // size)
    return [rows[i * len(rows) // count : (i + 1) * len(rows) // count] for i in range(count)]


def layers(cache: Any) -> list:
    """(keys, values) per layer of a transformers DynamicCache: (batch, heads, columns, dim)."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def rebuild(per_layer: list) -> Any:
    """A transformers DynamicCache of (keys, values) per layer."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=per_layer)
