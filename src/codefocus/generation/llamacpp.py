"""Greedy regeneration on llama.cpp in-process, for a model that comes as a GGUF file.

The same contract as the transformers engine (``Regenerator``, ``draft.py``): given the original
input and its greedy completion, regenerate the greedy completions of perturbed inputs. llama.cpp's
quantized kernels decode several times faster than a float32 transformers model on a CPU, and
the engine uses the same two exact shortcuts:

* **Prefix reuse.** llama.cpp keeps the keys and values of the last sequence it evaluated;
  inputs are taken in the order that lets each reuse the longest prefix of the previous one
  (latest first change first), and only the rest is evaluated.
* **Draft verification.** The original completion is fed after the perturbed input in one
  evaluation; where llama.cpp's argmax agrees at every position, greedy decoding would write the
  original completion; otherwise decoding continues from the first disagreement only.

llama.cpp computes with quantized weights (and activations), transformers with the dequantized
weights in float32, so the two can differ where the two best logits nearly tie. Every run first
decodes the original input on llama.cpp and compares it with the transformers completion the
scores start from; where they differ, that task is regenerated on transformers instead
(``fallbacks`` counts them). The benchmark reports how many regenerations differ between the two
engines and the resulting score difference.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from codefocus.errors import InvalidArgumentError
from codefocus.generation.draft import DraftVerifier
from codefocus.generation.prefix import common_prefix
from codefocus.generation.records import Generation, GenerationSettings, finished_generations
from codefocus.generation.truncation import function_ended

if TYPE_CHECKING:
    from codefocus.models.base import WhiteBoxModel


def llama_cpp_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


class LlamaCppEngine:
    """Regenerate greedy completions with llama.cpp (see the module doc)."""

    def __init__(
        self,
        model: WhiteBoxModel,
        gguf: str | Path,
        n_ctx: int = 2048,
        n_threads: int | None = None,
    ) -> None:
        if not llama_cpp_available():
            raise InvalidArgumentError(
                "engine llama.cpp needs llama-cpp-python: pip install 'llama-cpp-python==0.3.36'"
            )
        from llama_cpp import Llama

        self.model = model  # the transformers model: tokenizer, stop rule, the fallback
        threads = n_threads or _threads()
        self.llm = Llama(
            model_path=str(gguf),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=False,  # _eval asks for the rows it needs
            verbose=False,
        )
        self.eos = model.end_token_ids()
        self.n_vocab = self.llm.n_vocab()
        self.checked: dict[tuple, bool] = {}  # (original, settings, budget) -> llama.cpp agrees
        self.fallbacks = 0  # originals llama.cpp did not reproduce: regenerated on transformers
        self.accepted = 0
        self.diverged = 0
        self._fallback: DraftVerifier | None = None

    # ---- the contract ---------------------------------------------------------------------
    def engine_used(self) -> str:
        if self.fallbacks:
            return "llama.cpp, with transformers where llama.cpp did not reproduce the original"
        return "llama.cpp"

    def regenerate(
        self,
        inputs: Sequence[str],
        original: str,
        budget: int,
        settings: GenerationSettings,
        draft: Sequence[int] | None = None,
        max_memory: int | None = None,
    ) -> list[Generation]:
        """``draft`` is not used: llama.cpp verifies the model's own greedy tokens, which it
        must compare with its own decoding of ``original`` anyway. ``max_memory`` bounds the
        transformers fallback (llama.cpp decodes one input at a time in its own context)."""
        if settings.do_sample:
            raise ValueError("the llama.cpp engine regenerates greedy completions only")
        own = self.model.stopped_ids(self.model.raw_ids(original, settings, budget))
        if not self.agrees(original, own, budget, settings):
            return self._transformers(inputs, original, budget, settings, max_memory)
        encoded = [self._encode(text) for text in inputs]
        original_ids = self._encode(original)
        # latest first change first: each input then shares the longest prefix with the last
        order = sorted(
            range(len(inputs)),
            key=lambda i: -common_prefix(encoded[i], original_ids),
        )
        raw: dict[int, list[int]] = {}
        for index in order:
            raw[index] = self._complete(encoded[index], own, budget)
        return finished_generations(self.model, inputs, raw, settings)

    def agrees(
        self, original: str, draft: list[int], budget: int, settings: GenerationSettings
    ) -> bool:
        """Whether llama.cpp's own greedy decoding of ``original`` is the transformers one."""
        key = (original, settings, budget)
        if key not in self.checked:
            own = self._complete(self._encode(original), [], budget)
            self.checked[key] = own == draft
            if not self.checked[key]:
                self.fallbacks += 1
        return self.checked[key]

    def greedy(self, text: str, budget: int) -> list[int]:
        """Plain greedy decoding of ``text`` (raw tokens up to the stop)."""
        return self._complete(self._encode(text), [], budget)

    # ---- decoding -------------------------------------------------------------------------
    def _encode(self, text: str) -> list[int]:
        return list(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _stops(self, ids: list[int], budget: int) -> bool:
        if len(ids) >= budget or (ids and ids[-1] in self.eos):
            return True
        return bool(ids) and function_ended(self.model.decode(ids))

    def _eval(self, tokens: list[int], n_past: int, logits_from: int) -> list[int]:
        """Evaluate ``tokens`` after the first ``n_past`` cached ones; the argmax at each
        position from ``logits_from`` on (only those rows go through the output layer, which
        for a 150k vocabulary is a good part of the work)."""
        llm = self.llm
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        argmax: list[int] = []
        n_batch = llm.n_batch
        for begin in range(0, len(tokens), n_batch):
            chunk = tokens[begin : begin + n_batch]
            llm._batch.set_batch(batch=chunk, n_past=n_past + begin, logits_all=False)
            wanted = [begin + i >= logits_from for i in range(len(chunk))]
            for i, flag in enumerate(wanted):
                llm._batch.batch.logits[i] = flag
            llm._ctx.decode(llm._batch)
            for i, flag in enumerate(wanted):
                if flag:
                    row = np.ctypeslib.as_array(llm._ctx.get_logits_ith(i), shape=(self.n_vocab,))
                    argmax.append(int(row.argmax()))
        llm.input_ids[n_past : n_past + len(tokens)] = tokens
        llm.n_tokens = n_past + len(tokens)
        return argmax

    def _complete(self, prompt: list[int], draft: list[int], budget: int) -> list[int]:
        """Greedy completion of ``prompt``: ``draft`` verified in one evaluation, then decoded
        from the first disagreement; the KV cache serves the prefix shared with the last call."""
        llm = self.llm
        if len(prompt) + max(len(draft), budget) + 1 > llm.n_ctx():
            raise InvalidArgumentError(
                f"llama.cpp context of {llm.n_ctx()} tokens is too small for "
                f"{len(prompt)} + {budget} tokens"
            )
        cached = llm.input_ids[: llm.n_tokens].tolist()
        # reuse the shared prefix, but evaluate at least the prompt's last token (its logits)
        reuse = min(common_prefix(cached, prompt), len(prompt) - 1)
        fed = prompt[reuse:] + draft
        predicted = self._eval(fed, reuse, logits_from=len(prompt) - 1 - reuse)
        accepted = 0
        while accepted < len(draft) and predicted[accepted] == draft[accepted]:
            accepted += 1
        if draft and accepted == len(draft):
            self.accepted += 1
            return list(draft)
        if draft:
            self.diverged += 1
        out = draft[:accepted] + [predicted[accepted]]
        n_past = len(prompt) + accepted  # the cache is valid up to the last agreement
        while not self._stops(out, budget):
            (token,) = self._eval([out[-1]], n_past, logits_from=0)
            n_past += 1
            out.append(token)
        return out

    def _transformers(
        self,
        inputs: Sequence[str],
        original: str,
        budget: int,
        settings: GenerationSettings,
        max_memory: int | None = None,
    ) -> list[Generation]:
        if self._fallback is None:
            self._fallback = DraftVerifier(self.model)
        return self._fallback.regenerate(inputs, original, budget, settings, max_memory=max_memory)


def _threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
