"""Exact greedy regeneration for perturbation methods: stop at the function's end while decoding,
verify the original completion as a draft instead of decoding it again, and decode on from a
divergence over the verification's own keys and values.

Greedy decoding is deterministic, and most perturbed prompts give the original code back. So for a
batch of perturbed inputs we run one teacher-forced forward over ``perturbed input + original
tokens`` and read the argmax at each completion position. Where every argmax equals the original
token, greedy decoding of the perturbed input would produce exactly those tokens, and stop where
the original stopped (the stop depends on the tokens alone: end of function, end of text, or the
budget) — so the original completion is the answer, with no decoding at all. Where the argmax
first differs, at position L, the greedy output begins with the first L original tokens and the
argmax; decoding continues from there, on the keys and values that forward already computed
(rejected draft positions become holes in the attention mask, never attended to). The rows still
decoding after every first forward are merged into wide batches (a CPU decoding step costs about
the same for 8 rows as for 40), and each step feeds, per row, its next token plus a short lookup
draft: the tokens that follow the row's last tokens in the original completion (code often
re-aligns after a renamed word), kept where greedy agrees. Every perturbed input shares its first
tokens with the original (BERT masking changes one word), so the first forward reads those
tokens' keys and values from the original prompt's cache — each row all of its own shared prefix,
the cache columns past it being holes for that row — and computes only the rest. The original
itself (SHAP asks for it) is answered by the model's own greedy tokens, without a forward. The
draft may come from the caller (the tokens of a stored completion): any draft keeps the results
exact, since only what greedy agrees with is kept. The perturbation methods hand every input they
will need to one call (``methods.perturbation.prefetch``), so all of a task's regenerations share
these batches. An input that changes much of the prompt
(most SHAP coalitions) would almost always diverge at once, so its first forward feeds the prompt
alone. The result equals plain greedy decoding up to floating-point differences between a
teacher-forced and an incremental forward, which could only matter where the two best logits
(nearly) tie; the tests compare both on every perturbation of several prompts, on tiny models and
the packaged one, and the benchmark compares the scores.

Half precision: in bfloat16 or float16 logits are coarse (bfloat16 keeps 8 significant bits), so
two of them tie, or nearly, far more often, and a teacher-forced forward may round where an
incremental one does not. Where the two best logits of a token this engine settles are within
``tie_margin`` (relative to the best, 4 machine epsilons of the model's dtype by default; off in
float32, whose results stay as they always were), the engine does not decide: that input is
decoded plainly (``raw_ids``: one ``generate``, batch of one), so its completion is plain greedy
decoding's by construction. The tests compare the engine with plain decoding in bfloat16.

Memory: with ``max_memory`` (bytes) the prefill batches, the decoding batches, and how many rows
wait between the two (each holding its keys and values) are the most whose estimated memory fits
(``generation/memory.py``): rows are then prefilled and decoded in waves. Without one, every
first batch runs before the rows still open decode together, as above.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from codefocus.generation.batches import (
    Batch,
    Row,
    compact,
    even_split,
    keep_open,
    merge,
    select,
)
from codefocus.generation.memory import Sizes, engine_sizes
from codefocus.generation.prefix import changed, prefix_cache, repeated_prefix, shared_prefix
from codefocus.generation.records import Generation, GenerationSettings, finished_generations
from codefocus.generation.ties import default_tie_margin, near_ties
from codefocus.generation.truncation import function_ended

if TYPE_CHECKING:
    from codefocus.models.base import WhiteBoxModel


class DraftVerifier:
    """Regenerate greedy completions of inputs that differ from ``original`` (see module doc)."""

    def __init__(
        self,
        model: WhiteBoxModel,
        batch_size: int = 8,
        reuse_prefix: bool = True,
        max_changed: float = 0.25,
        decode_batch_size: int = 64,
        lookup: int = 8,
        step_tokens: int = 32,
        max_memory: int | None = None,
        tie_margin: float | None = None,
    ) -> None:
        self.model = model
        self.batch_size = batch_size  # rows per first (prefill + verification) forward
        # rows decoded together: a decoding step reads every weight once whatever the batch, so
        # on a CPU wide batches are nearly free (memory-bound) while prefill is compute-bound
        self.decode_batch_size = decode_batch_size
        self.reuse_prefix = reuse_prefix
        self.max_changed = max_changed  # verify inputs that change at most this share of tokens
        # after a divergence, up to ``lookup`` tokens that follow the row's last tokens in the
        # original completion are fed as a draft, as long as a step stays within about
        # ``step_tokens`` tokens (beyond that a CPU step is compute-bound: drafts cost time)
        self.lookup = lookup
        self.step_tokens = step_tokens
        self.max_memory = max_memory  # bytes, for calls that give none; None: no budget
        # near ties settled by plain decoding: best two logits closer than this share of the
        # best (None: 4 machine epsilons in half precision, 0 = never in float32 and wider)
        self.tie_margin = tie_margin if tie_margin is not None else default_tie_margin(model)
        self.decoded = 0  # inputs decoded without the original as a draft (too different)
        self.accepted = 0  # inputs whose greedy completion is the original one: no decoding
        self.diverged = 0  # inputs decoded from their first divergence on
        self.looked_up = 0  # tokens settled from lookup drafts after a divergence
        self.steps = 0  # forwards run
        self.compactions = 0  # caches rewritten without their holes
        self.tied = 0  # inputs decoded plainly because a token they settled nearly tied
        self._tied: set[int] = set()  # this call's inputs with a near tie

    def engine_used(self) -> str:
        return "draft"

    def regenerate(
        self,
        inputs: Sequence[str],
        original: str,
        budget: int,
        settings: GenerationSettings,
        draft: Sequence[int] | None = None,
        max_memory: int | None = None,
    ) -> list[Generation]:
        """``draft``: the original's completion tokens where the caller has them (any guess
        keeps the results exact; without one the original is generated first). ``max_memory``:
        a budget in bytes for this call (default: the engine's)."""
        if settings.do_sample:
            raise ValueError("draft verification is for greedy decoding only")
        # only the model's own greedy tokens may answer for the original itself unverified
        trusted = draft is None
        draft = list(draft) if draft is not None else self.model.raw_ids(original, settings, budget)
        encoded = [self.model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in inputs]
        original_ids = self.model.tokenizer(original, add_special_tokens=False)["input_ids"]
        # an input that changes much of the prompt (a SHAP coalition without most of its words)
        # almost always writes other code: verifying the draft would only add a forward, so its
        # first step feeds the prompt alone (the answer is the same either way)
        near = [changed(ids, original_ids) <= self.max_changed * len(ids) for ids in encoded]
        perturbed = not trusted or any(ids != original_ids for ids in encoded)
        cache = prefix_cache(self.model, original_ids) if self.reuse_prefix and perturbed else None
        rows = []
        finished: dict[int, list[int]] = {}
        for index, ids in enumerate(encoded):
            if trusted and ids == original_ids:  # the original itself (SHAP asks for it): the
                finished[index] = list(draft)  # draft is its greedy completion by definition
                self.accepted += 1
                continue
            start = shared_prefix(ids, original_ids) if cache is not None else 0
            rows.append(Row(index, ids, start, ids[start:], list(draft) if near[index] else []))
        self.decoded += sum(not near[r.index] for r in rows)
        # near and far inputs batched apart, each sorted so that a batch shares as long a prefix
        # of the original as possible
        rows.sort(key=lambda r: (r.cached, len(r.prompt)))
        self._tied = set()
        kinds = [r for r in rows if near[r.index]], [r for r in rows if not near[r.index]]
        sizes = self._sizes(kinds, len(original_ids), budget, max_memory)
        groups = [
            group
            for kind, size in zip(kinds, sizes.prefill, strict=True)
            for group in even_split(kind, size)
        ]
        waiting: list[Batch] = []
        for group in groups:
            if sum(len(b.rows) for b in waiting) + len(group) > sizes.wave:  # a wave is full
                self._decode_rest(waiting, finished, budget, draft, sizes.decode)
                waiting = []
            batch = self._open(group, cache)
            for row, first in zip(group, self._step(batch, budget), strict=True):
                if first is not None:
                    finished[row.index] = first
            verified = [r.index for r in group if near[r.index]]
            same = sum(finished.get(i) == draft for i in verified)
            self.accepted += same
            self.diverged += len(verified) - same
            batch = keep_open(batch, finished, self.model.device)
            if batch.rows:
                waiting.append(batch)
        # rows still decoding, from all first batches, go on together in wide batches
        self._decode_rest(waiting, finished, budget, draft, sizes.decode)
        return self._results(inputs, finished, settings, [budget] * len(inputs))

    def _sizes(
        self, kinds: Sequence[list[Row]], original: int, budget: int, max_memory: int | None
    ) -> Sizes:
        """Rows per prefill batch, per wave and per decoding batch (``memory.engine_sizes``)."""
        return engine_sizes(
            self.model,
            kinds,
            original,
            budget,
            self.max_memory if max_memory is None else max_memory,
            self.batch_size,
            self.decode_batch_size,
            self.lookup,
        )

    def _decode_rest(
        self,
        waiting: list[Batch],
        finished: dict[int, list[int]],
        budget: int,
        draft: list[int],
        size: int | None = None,
    ) -> None:
        """Decode every row still open, in wide batches (``size`` rows, default
        ``decode_batch_size``) that drop finished rows and holes as they go; each step feeds a
        row's lookup draft from ``draft`` (none when it is empty)."""
        size = size or self.decode_batch_size
        merged = merge(waiting)
        waiting.clear()  # the merged batch holds the rows now: the parts can go
        for begin in range(0, len(merged.rows), size):
            end = min(begin + size, len(merged.rows))
            batch = select(merged, list(range(begin, end)), self.model.device)
            while batch.rows:
                for row in batch.rows:
                    row.draft = self._lookup(row.out, draft, len(batch.rows), budget)
                for row, done in zip(batch.rows, self._step(batch, budget), strict=True):
                    if done is not None:
                        finished[row.index] = done
                batch = self._compact(keep_open(batch, finished, self.model.device))

    def _compact(self, batch: Batch) -> Batch:
        compacted = compact(batch)
        if compacted is not batch:
            self.compactions += 1
        return compacted

    def _results(
        self,
        inputs: Sequence[str],
        finished: dict[int, list[int]],
        settings: GenerationSettings,
        budgets: Sequence[int],
    ) -> list[Generation]:
        """The generations; an input with a near tie is decoded plainly instead (module doc)."""
        for index in sorted(self._tied):
            finished[index] = list(self.model.raw_ids(inputs[index], settings, budgets[index]))
        self.tied += len(self._tied)
        self._tied = set()
        return finished_generations(self.model, inputs, finished, settings)

    def generate_many(
        self,
        inputs: Sequence[str],
        budgets: Sequence[int],
        settings: GenerationSettings,
        max_memory: int | None = None,
    ) -> list[Generation]:
        """Greedy completions of unrelated inputs, each with its own budget: the decoding loop
        above without a draft or a shared prefix — prefills in batches of ``batch_size``
        (compute-bound), then every row still decoding in wide batches that drop their finished
        rows and holes as they go (``generate`` of transformers keeps finished rows to the last
        step of the longest). The result equals one-at-a-time greedy decoding up to the
        floating-point differences the module docstring describes (``tests/test_protocol.py``
        compares them)."""
        if settings.do_sample:
            raise ValueError("generate_many is for greedy decoding only")
        encoded = [self.model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in inputs]
        rows = [
            Row(index, ids, 0, list(ids), [], budget=budget)
            for index, (ids, budget) in enumerate(zip(encoded, budgets, strict=True))
        ]
        finished: dict[int, list[int]] = {}
        rows.sort(key=lambda r: len(r.prompt))
        self._tied = set()
        sizes = self._sizes([rows], 0, max(budgets), max_memory)
        waiting: list[Batch] = []
        for group in even_split(rows, sizes.prefill[0]):
            if sum(len(b.rows) for b in waiting) + len(group) > sizes.wave:  # a wave is full
                self._decode_rest(waiting, finished, max(budgets), [], sizes.decode)
                waiting = []
            batch = self._open(group, None)
            for row, done in zip(group, self._step(batch, max(budgets)), strict=True):
                if done is not None:
                    finished[row.index] = done
            batch = keep_open(batch, finished, self.model.device)
            if batch.rows:
                waiting.append(batch)
        self._decode_rest(waiting, finished, max(budgets), [], sizes.decode)
        return self._results(inputs, finished, settings, budgets)

    def _stops(self, prefix: list[int], budget: int) -> bool:
        eos = self.model.tokenizer.eos_token_id
        if len(prefix) >= budget or (eos is not None and prefix and prefix[-1] == eos):
            return True
        return function_ended(self.model.decode(prefix))

    def _lookup(self, out: list[int], source: list[int], rows: int, budget: int) -> list[int]:
        """Prompt-lookup style draft: where the row's last tokens occur in the original
        completion, the tokens that follow them there (longest match first, latest occurrence)."""
        room = min(self.lookup, self.step_tokens // max(rows, 1) - 1, budget - len(out) - 1)
        if room <= 0:
            return []
        for n in (3, 2, 1):
            if len(out) < n:
                continue
            tail = out[-n:]
            for at in range(len(source) - n, -1, -1):
                if source[at : at + n] == tail and at + n < len(source):
                    return source[at + n : at + n + room]
        return []

    def _open(self, rows: list[Row], cache) -> Batch:
        """A batch whose cache holds the original prompt's first tokens, as many as the row
        that shares most of them reads; each row attends to its own share (the columns past it
        are holes for that row), so no row computes a token it could read."""
        import torch

        start = max(r.cached for r in rows) if cache is not None else 0
        past = repeated_prefix(cache, start, len(rows))
        mask = torch.ones((len(rows), start if past is not None else 0), dtype=torch.long)
        for i, row in enumerate(rows):
            if past is None:
                row.cached = 0
            mask[i, row.cached :] = 0
            row.pending = row.prompt[row.cached :]
        return Batch(rows, past, mask)

    def _step(self, batch: Batch, budget: int) -> list[list[int] | None]:
        """One forward over every row's pending tokens and draft. Settles, per row, the draft's
        longest prefix that greedy agrees with plus greedy's next token; returns a row's raw
        completion where decoding has stopped, else None. A row that would settle a token on a
        near tie stops there, noted for plain decoding (``_results``)."""
        import torch

        model = self.model
        fed = [r.pending + r.draft for r in batch.rows]
        width = max(len(f) for f in fed)
        pad = model.tokenizer.pad_token_id or 0
        ids = torch.full((len(fed), width), pad, dtype=torch.long)
        positions = torch.zeros((len(fed), width), dtype=torch.long)
        block = torch.zeros((len(fed), width), dtype=torch.long)
        for i, (row, tokens) in enumerate(zip(batch.rows, fed, strict=True)):
            ids[i, : len(tokens)] = torch.tensor(tokens)
            positions[i] = torch.arange(row.cached, row.cached + width)
            block[i, : len(tokens)] = 1
        mask = torch.cat([batch.mask, block], dim=1)
        with torch.no_grad():
            states, batch.cache = model.hidden_states(
                ids.to(model.device),
                batch.cache,
                attention_mask=mask.to(model.device),
                position_ids=positions.to(model.device),
            )
            # logits only where a token is predicted: after the last pending token and each
            # draft token
            where = [
                (i, j)
                for i, row in enumerate(batch.rows)
                for j in range(len(row.pending) - 1, len(row.pending) + len(row.draft))
            ]
            rows_at = torch.tensor([i for i, _ in where])
            columns_at = torch.tensor([j for _, j in where])
            hidden = states[rows_at.to(model.device), columns_at.to(model.device)]
            logits = model.logits(hidden)
            predicted = logits.argmax(-1).tolist()
            ties = near_ties(logits, self.tie_margin) if self.tie_margin > 0 else None
        self.steps += 1
        results: list[list[int] | None] = []
        offset = 0
        for i, row in enumerate(batch.rows):
            guesses = predicted[offset : offset + len(row.draft) + 1]
            offset += len(row.draft) + 1
            accepted = 0
            while accepted < len(row.draft) and guesses[accepted] == row.draft[accepted]:
                accepted += 1
            if row.out:  # a lookup draft (the first step's draft is the original itself)
                self.looked_up += accepted
            block[i, len(row.pending) + accepted :] = 0  # rejected draft tokens become holes
            row.cached += len(row.pending) + accepted
            done = None
            for settled, token in enumerate(row.draft[:accepted] + [guesses[accepted]]):
                if ties is not None and ties[offset - len(row.draft) - 1 + settled]:
                    self._tied.add(row.index)  # decoded plainly instead (``_results``)
                    done = row.out
                    break
                row.out.append(token)
                if self._stops(row.out, row.budget or budget):
                    done = row.out
                    break
            row.pending = row.out[-1:]  # (none for a row left to plain decoding)
            row.draft = []
            results.append(done)
        batch.mask = torch.cat([batch.mask, block], dim=1)
        return results
