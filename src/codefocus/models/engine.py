"""Exact greedy regeneration for perturbation methods: stop at the function's end while decoding,
and verify the original completion as a draft instead of decoding it again.

Greedy decoding is deterministic, and most perturbed prompts give the original code back. So for a
batch of perturbed inputs we run one teacher-forced forward over ``perturbed input + original
tokens`` and read the argmax at each completion position. Where every argmax equals the original
token, greedy decoding of the perturbed input would produce exactly those tokens, and stop where
the original stopped (the stop depends on the tokens alone: end of function, end of text, or the
budget) — so the original completion is the answer, with no decoding at all. Where the argmax
first differs, at position L, the greedy output begins with the first L original tokens and the
argmax; decoding continues from there only. Every perturbed input shares its first tokens with
the original (BERT masking changes one word; SHAP's coalitions are sorted so neighbours share
prefixes), so the verification reads those tokens' keys and values from the original prompt's
cache and computes only the rest. An input that changes much of the prompt (most SHAP
coalitions) would almost always diverge at once, so it is decoded plainly instead, in wide
early-stopped batches. The result equals plain greedy decoding up to floating-point differences
between a teacher-forced and an incremental forward, which could only matter where the two best
logits (nearly) tie; the tests compare both on every perturbation of several prompts, on tiny
models and the packaged one, and the benchmark compares the scores.
"""

from __future__ import annotations

from collections.abc import Sequence

from codefocus.models.base import Generation, GenerationSettings, function_ended


def stop_at_function_end(tokenizer, starts: Sequence[int], eos: int | None):
    """A transformers stopping criterion that ends each row once its function has ended.

    ``starts[i]`` is the column of ``input_ids`` where row i's completion begins (inputs are left
    padded, so a row with a longer forced prefix starts earlier). Finished rows are padded by
    transformers and the loop ends when every row is done.
    """
    import torch
    from transformers import StoppingCriteria

    class FunctionEnd(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = []
            for row, start in zip(input_ids.tolist(), starts, strict=True):
                ids = row[start:]
                if eos is not None and eos in ids:
                    ids = ids[: ids.index(eos)]
                done.append(function_ended(tokenizer.decode(ids, skip_special_tokens=True)))
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return FunctionEnd()


class DraftVerifier:
    """Regenerate greedy completions of inputs that differ from ``original`` (see module doc)."""

    def __init__(
        self,
        model,
        batch_size: int = 8,
        reuse_prefix: bool = True,
        max_changed: float = 0.25,
        decode_batch_size: int = 64,
    ) -> None:
        self.model = model  # a WhiteBoxModel
        self.batch_size = batch_size  # rows per verification forward (compute-bound)
        # rows decoded together: a decoding step reads every weight once whatever the batch, so
        # on a CPU wide batches are nearly free (memory-bound) while prefill is compute-bound
        self.decode_batch_size = decode_batch_size
        self.reuse_prefix = reuse_prefix
        self.max_changed = max_changed  # verify inputs that change at most this share of tokens
        self.decoded = 0  # inputs decoded plainly (too different from the original to verify)
        self.accepted = 0  # inputs whose greedy completion is the original one: no decoding
        self.diverged = 0  # inputs decoded from their first divergence on

    def regenerate(
        self,
        inputs: Sequence[str],
        original: str,
        budget: int,
        settings: GenerationSettings,
    ) -> list[Generation]:
        if settings.do_sample:
            raise ValueError("draft verification is for greedy decoding only")
        draft = self.model.raw_ids(original, settings, budget)
        encoded = [self.model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in inputs]
        original_ids = self.model.tokenizer(original, add_special_tokens=False)["input_ids"]
        # an input that changes much of the prompt (a SHAP coalition without most of its words)
        # almost always writes other code: verifying the draft would only add a forward, so it is
        # decoded plainly (with the early stop) — the answer is the same either way
        near = [_changed(ids, original_ids) <= self.max_changed * len(ids) for ids in encoded]
        far = sorted(
            (i for i, close in enumerate(near) if not close), key=lambda i: len(encoded[i])
        )
        plain = {}
        if far:
            generated = self.model.generate(
                [inputs[i] for i in far],
                settings,
                max_new_tokens=budget,
                batch_size=self.decode_batch_size,
            )
            plain = dict(zip(far, generated, strict=True))
            self.decoded += len(far)
        inputs_all, encoded_all = list(inputs), encoded
        keep = [i for i, close in enumerate(near) if close]
        if not keep:
            return [plain[i] for i in range(len(inputs_all))]
        inputs = [inputs_all[i] for i in keep]
        encoded = [encoded_all[i] for i in keep]
        # prefix reuse: each input shares its first tokens with the original; the original's
        # keys and values serve them (at least the last prompt token is always recomputed)
        shared = [shared_prefix(ids, original_ids) for ids in encoded]
        cache = prefix_cache(self.model, original_ids) if self.reuse_prefix else None
        prefixes: list[list[int] | None] = [None] * len(inputs)
        order = sorted(range(len(inputs)), key=lambda i: (shared[i], len(encoded[i])))
        for begin in range(0, len(order), self.batch_size):
            rows = order[begin : begin + self.batch_size]
            start = min(shared[i] for i in rows) if cache is not None else 0
            answers = self._verify([encoded[i] for i in rows], draft, cache, start)
            for index, answer in zip(rows, answers, strict=True):
                prefixes[index] = answer
        finished: dict[int, list[int]] = {}
        pending = []
        for index, maybe in enumerate(prefixes):
            assert maybe is not None
            prefix = maybe
            if prefix == draft or self._stops(prefix, budget):
                finished[index] = prefix
                self.accepted += prefix == draft
            else:
                pending.append(index)
        self.diverged += len(pending)
        pending.sort(key=lambda i: len(encoded[i]) + len(prefixes[i] or []))
        for begin in range(0, len(pending), self.decode_batch_size):
            rows = pending[begin : begin + self.decode_batch_size]
            continued = self.model.continue_greedy(
                [encoded[i] for i in rows], [prefixes[i] or [] for i in rows], budget, settings
            )
            finished.update(zip(rows, continued, strict=True))
        verified = {}
        for index, text in enumerate(inputs):
            ids = self.model.finish_ids(finished[index], settings)
            verified[keep[index]] = Generation(
                self.model.name, text, self.model.decode(ids), settings, tuple(ids)
            )
        return [plain[i] if i in plain else verified[i] for i in range(len(inputs_all))]

    def _stops(self, prefix: list[int], budget: int) -> bool:
        eos = self.model.tokenizer.eos_token_id
        if len(prefix) >= budget or (eos is not None and prefix and prefix[-1] == eos):
            return True
        return function_ended(self.model.decode(prefix))

    def _verify(
        self, prompts: list[list[int]], draft: list[int], cache=None, start: int = 0
    ) -> list[list[int]]:
        """For each prompt: the longest prefix of ``draft`` that greedy decoding reproduces, plus
        greedy's own next token where it differs (the whole draft when all agree). With the
        original's ``cache``, the first ``start`` tokens (shared by every prompt of the batch
        with the original) are read from it instead of being recomputed."""
        import torch

        model = self.model
        with torch.no_grad():
            hidden = forward_from_prefix(model, [p + draft for p in prompts], cache, start)
            head = model.model.get_output_embeddings()
            answers = []
            for row, prompt in enumerate(prompts):
                # position P-1+j predicts completion token j; logits only where needed
                first = len(prompt) - 1 - start
                positions = torch.arange(first, first + len(draft) + 1, device=hidden.device)
                predicted = head(hidden[row, positions]).argmax(-1).tolist()
                accepted = 0
                while accepted < len(draft) and predicted[accepted] == draft[accepted]:
                    accepted += 1
                if accepted == len(draft):
                    answers.append(list(draft))
                else:
                    answers.append(draft[:accepted] + [predicted[accepted]])
        return answers


def prefix_cache(model, ids: list[int]):
    """Keys and values of ``ids`` (an original prompt), for inputs that share its first tokens."""
    import torch

    with torch.no_grad():
        output = model.model.base_model(
            input_ids=torch.tensor([ids], device=model.device), use_cache=True
        )
    return output.past_key_values


def forward_from_prefix(model, sequences: list[list[int]], cache=None, start: int = 0):
    """Last hidden states of ``sequences`` (right padded, one row each) from position ``start``
    on: with ``cache`` (a ``prefix_cache``), the first ``start`` tokens, which every sequence
    shares with the cached prompt, are read from it instead of being recomputed. Row r, column
    c is position ``start + c`` of sequence r."""
    import copy

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
    past = None
    if cache is not None and start > 0:
        past = copy.deepcopy(cache)
        if past.get_seq_length() > start:
            past.crop(start - past.get_seq_length())  # negative: tokens to remove
        past.batch_repeat_interleave(len(rows))
    return model.model.base_model(
        input_ids=ids.to(model.device),
        attention_mask=mask.to(model.device),
        past_key_values=past,
        use_cache=past is not None,
    ).last_hidden_state


def shared_prefix(ids: Sequence[int], original: Sequence[int]) -> int:
    """Tokens an input can read from the original's cache: the common prefix, less at least
    the input's last token (whose hidden state is needed)."""
    return min(_common_prefix(ids, original), len(ids) - 1)


def _changed(ids: Sequence[int], original: Sequence[int]) -> int:
    """Tokens of ``ids`` outside its common prefix and common suffix with ``original``."""
    prefix = _common_prefix(ids, original)
    suffix = _common_prefix(ids[prefix:][::-1], original[prefix:][::-1])
    return len(ids) - prefix - suffix


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count
