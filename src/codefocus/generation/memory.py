"""Memory budgets: how many rows a batch may hold, estimated from the model's configuration.

Every batched piece of work — the coding-stage gradients' batched backward passes, integrated
gradients' interpolation steps, the engines' prefill and decoding batches, the likelihood
methods' teacher-forced batches — takes a budget ``max_memory`` (bytes; ``None``: no budget, the
batch sizes as they always were). With a budget, the number of rows is the largest whose
estimated memory fits, never fewer than one:

    rows = max(1, min(most, (max_memory - fixed) // per_row))

A batch's size changes where the work happens, not the results: each row is computed on its
own, so gradient scores are the same bit for bit, regenerations token for token (the engines'
contract), and integrated gradients and log-likelihoods to float rounding (a batched forward may
round a row differently than a lone one); the tests compare them across budgets.

The estimates (``b`` bytes per element of the model's dtype; attention probabilities counted
at ``a = 4`` bytes, plus ``b`` more in half precision, because eager attention takes its softmax
in float32 and casts it back; S tokens; layers, hidden, heads, kv heads, head dim, intermediate
size and vocabulary from the configuration):

* ``attention(q, k) = heads * q * k * a`` — one layer's attention probabilities. With eager
  attention (which the white-box methods need, to read the weights) this S^2 term dominates long
  prompts.
* ``activations(t) = t * (8 * hidden + 3 * intermediate) * b`` — one layer's other activations
  (norm inputs, q / k / v / output projections, residuals; the MLP's gate, up and product).
* ``cache(t) = 2 * layers * kv_heads * head_dim * t * b`` — one row's keys and values.
* gradient graph (one forward with the autograd graph kept, fixed): ``layers * (attention(S, S)
  + activations(S)) + 2 * attention(S, S) + 4 * S^2`` (the kept graph, the transient scores of
  the layer being computed, the causal mask).
* gradient row (each row of a batched backward): ``4 * attention(S, S) + 2 * activations(S) +
  8 * S * hidden`` (the gradients of one layer's probabilities, scores and softmax in float32,
  its other activations, and the row's gradient w.r.t. the embeddings).
* forward row (no gradient; t new tokens after c cached ones, logits at p positions):
  ``2 * cache(c + t) + 3 * attention(t, c + t) + activations(t) + p * vocab * (b + 4)``.
* decoding row (the engine; a row's cache grows to its prompt, the budget and a lookup draft,
  d tokens fed a step): ``4 * cache(t) + 3 * attention(d, t) + d * vocab * (b + 4)`` (the cache
  with up to a third of holes before it is compacted, the copies made when batches are merged
  and rows selected, one step's attention over it).
* generation row (``generate`` of transformers, p prompt tokens, n new ones): the larger of a
  forward row over the prompt and a decoding row of p + n tokens.

The constants were checked against the peak resident memory measured on the tiny models at
1,000 and 2,000 tokens, in float32 and bfloat16: a gradient row took about 3 ``attention(S, S)``
(the estimate says 4), and the fixed part is over- rather than underestimated, so a budget is
kept with room to spare; ``tests/test_memory_budget.py`` keeps a 2,000-token prompt within its
budget, measured. Weights and whatever the process holds already are not part of the budget: it
bounds the memory the work adds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from codefocus.errors import InvalidArgumentError

log = logging.getLogger(__name__)

SOFTMAX_BYTES = 4  # eager attention takes its softmax in float32


@dataclass(frozen=True)
class ModelShape:
    """What the estimates read from a model: its configuration and its dtype's element size."""

    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    element: int  # bytes per element of the model's dtype

    @classmethod
    def of(cls, config: Any, element: int = 4) -> ModelShape:
        """From a transformers configuration (Qwen2 / Llama names, or GPT-2's)."""

        def first(*names: str, default: int | None = None) -> int:
            for name in names:
                value = getattr(config, name, None)
                if isinstance(value, int) and value > 0:
                    return value
            if default is None:
                raise ValueError(f"the configuration has none of {names}")
            return default

        hidden = first("hidden_size", "n_embd", "d_model")
        heads = first("num_attention_heads", "n_head")
        return cls(
            layers=first("num_hidden_layers", "n_layer"),
            hidden=hidden,
            heads=heads,
            kv_heads=first("num_key_value_heads", "n_head_kv", default=heads),
            head_dim=first("head_dim", default=hidden // heads),
            intermediate=first("intermediate_size", "n_inner", default=4 * hidden),
            vocab=first("vocab_size"),
            element=element,
        )

    @classmethod
    def of_model(cls, model: Any) -> ModelShape:
        """From a white-box model (its torch module's configuration and dtype)."""
        import torch

        module = model.model
        dtype = getattr(module, "dtype", torch.float32)
        return cls.of(module.config, torch.empty((), dtype=dtype).element_size())

    # ---- the parts ---------------------------------------------------------------------
    def attention(self, queries: int, keys: int) -> int:
        """One layer's attention probabilities (float32 softmax, plus its cast in half
        precision)."""
        element = SOFTMAX_BYTES + (self.element if self.element < SOFTMAX_BYTES else 0)
        return self.heads * queries * keys * element

    def activations(self, tokens: int) -> int:
        """One layer's activations other than attention probabilities."""
        return tokens * (8 * self.hidden + 3 * self.intermediate) * self.element

    def cache(self, tokens: int) -> int:
        """One row's keys and values over ``tokens`` positions."""
        return 2 * self.layers * self.kv_heads * self.head_dim * tokens * self.element

    def logits(self, positions: int) -> int:
        """Logits at ``positions`` (in the model's dtype and in float32)."""
        return positions * self.vocab * (self.element + 4)

    # ---- the work ------------------------------------------------------------------------
    def gradient_graph(self, tokens: int) -> int:
        """One forward over ``tokens`` with its autograd graph kept (the fixed part)."""
        square = self.attention(tokens, tokens)
        return self.layers * (square + self.activations(tokens)) + 2 * square + 4 * tokens**2

    def gradient_row(self, tokens: int) -> int:
        """One row of a batched backward over ``tokens`` positions."""
        return (
            4 * self.attention(tokens, tokens)
            + 2 * self.activations(tokens)
            + 8 * tokens * self.hidden
        )

    def forward_row(self, new: int, cached: int = 0, predicted: int = 1) -> int:
        """One row of a forward without gradients: ``new`` tokens after ``cached`` ones,
        logits at ``predicted`` positions."""
        total = cached + new
        return (
            2 * self.cache(total)
            + 3 * self.attention(new, total)
            + self.activations(new)
            + self.logits(predicted)
        )

    def decoding_row(self, tokens: int, step: int = 1) -> int:
        """One row of the engine's decoding batches, whose cache grows to ``tokens``, fed
        ``step`` tokens a step."""
        return 4 * self.cache(tokens) + 3 * self.attention(step, tokens) + self.logits(step)

    def generation_row(self, prompt: int, new: int) -> int:
        """One row of a batch given to ``generate``: its prefill, then its decoding."""
        return max(self.forward_row(prompt), self.decoding_row(prompt + new))


def rows_within(max_memory: int | None, per_row: int, fixed: int = 0, most: int = 1) -> int:
    """The most rows (at most ``most``, at least one) whose ``fixed + rows * per_row`` bytes fit
    in ``max_memory``; ``most`` without a budget. A budget too small for one row gives one row
    (the work cannot be smaller) and a warning."""
    most = max(int(most), 1)
    if max_memory is None:
        return most
    room = max_memory - fixed
    if room < per_row:
        log.warning(
            "a memory budget of %s is below the estimated %s for one row; running one row",
            _size(max_memory),
            _size(fixed + per_row),
        )
        return 1
    return max(1, min(most, room // max(per_row, 1)))


def generation_rows(
    model: Any, inputs: list[str], new: int, max_memory: int | None, most: int
) -> int:
    """Rows per batch given to a white-box model's ``generate`` for ``inputs`` and ``new``
    tokens each: ``most``, or fewer where they would not fit in ``max_memory``."""
    if max_memory is None or not inputs:
        return most
    longest = max(model.count_tokens(text) for text in inputs)
    per_row = ModelShape.of_model(model).generation_row(longest, new)
    return rows_within(max_memory, per_row, most=most)


@contextmanager
def memory_budget(generator: object, max_memory: int | None) -> Iterator[None]:
    """While the block runs, ``generator`` (a ``MemoryBounded`` one; any other is left alone)
    keeps within ``max_memory`` as well as within its own budget; None changes nothing."""
    from codefocus.generation.protocol import MemoryBounded

    if max_memory is None or not isinstance(generator, MemoryBounded):
        yield
        return
    own = generator.max_memory
    generator.max_memory = max_memory if own is None else min(own, max_memory)
    try:
        yield
    finally:
        generator.max_memory = own


def check_max_memory(max_memory: int | None) -> None:
    """A memory budget is a positive number of bytes, or None (no budget)."""
    if max_memory is None:
        return
    if isinstance(max_memory, bool) or not isinstance(max_memory, int) or max_memory <= 0:
        raise InvalidArgumentError(
            f"max_memory must be a positive number of bytes, got {max_memory!r}"
        )


def options_without_budget(options: dict) -> dict:
    """A method's recorded options less ``max_memory``: it decides how work is batched, never a
    score, so results computed under different budgets stay comparable and mergeable."""
    return {name: value for name, value in options.items() if name != "max_memory"}


def _size(count: int) -> str:
    return f"{count / 2**20:.0f} MiB"


@dataclass(frozen=True)
class Sizes:
    """Rows per prefill batch (per kind of rows), per wave and per decoding batch
    (``DraftVerifier._sizes``)."""

    prefill: tuple[int, ...]
    wave: int
    decode: int


def engine_sizes(
    model,
    kinds,
    original: int,
    budget: int,
    max_memory: int | None,
    batch_size: int,
    decode_batch_size: int,
    lookup: int,
) -> Sizes:
    """The draft engine's rows per prefill batch (for each kind of rows), per wave (rows prefilled
    before the open ones decode) and per decoding batch: its own sizes, or within ``max_memory``
    (``generation.draft``'s module doc). A row's prefill feeds its tokens past the shared prefix
    and its draft; ``original`` is the original prompt's length, whose keys and values are kept
    throughout."""
    count = sum(len(kind) for kind in kinds)
    if max_memory is None or count == 0:
        return Sizes(tuple(batch_size for _ in kinds), count, decode_batch_size)
    shape = ModelShape.of_model(model)
    fixed = shape.cache(original)
    prefill, largest = [], 0
    for kind in kinds:
        if not kind:
            prefill.append(batch_size)
            continue
        cached = max(r.cached for r in kind)
        new = max(len(r.prompt) - r.cached + len(r.draft) for r in kind)
        row = shape.forward_row(new, cached, max(len(r.draft) for r in kind) + 1)
        prefill.append(rows_within(max_memory, row, fixed, batch_size))
        largest = max(largest, prefill[-1] * row)
    longest = max(len(r.prompt) for kind in kinds for r in kind)
    decoding = shape.decoding_row(longest + budget + lookup + 1, lookup + 1)
    wave = rows_within(max_memory, decoding, fixed + largest, count)
    return Sizes(tuple(min(p, wave) for p in prefill), wave, min(decode_batch_size, wave))
