"""``CachedGenerator``: the one front through which inputs are generated — read from memory or
the cache where they were generated before, the rest handed to the model or an engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from codefocus.generation.cache import GenerationCache, cache_key
from codefocus.generation.memory import generation_rows
from codefocus.generation.records import Generation, GenerationSettings
from codefocus.generation.registry import get_engine
from codefocus.models.base import is_white_box

if TYPE_CHECKING:
    from codefocus.generation.protocol import Regenerator
    from codefocus.models.base import TextGenerator


class CachedGenerator:
    """Generate completions for many inputs: cached ones are read, the rest batched.

    Given the ``original`` input that the others perturb, greedy inputs on a white-box model go
    through the named engine (``registry.py``): ``draft`` verifies the original completion as a
    draft (identical output, most of it without decoding); ``plain`` decodes every input (the
    baseline the benchmark compares with). Other inputs are decoded by the model's ``generate``.
    A ``CompletionGenerator``, and ``MemoryBounded``: ``max_memory`` (bytes; None: no budget)
    bounds the batches of the model's ``generate`` and of the engine; a method with a budget of
    its own sets it while it runs (``memory.memory_budget``).
    """

    remembers = True  # what it generated is answered again from memory (see ``prefetch``)

    def __init__(
        self,
        model: TextGenerator,
        cache: GenerationCache | None = None,
        batch_size: int = 8,
        engine: str = "draft",
        max_memory: int | None = None,
    ) -> None:
        self.model = model
        self.cache = cache
        self.batch_size = batch_size
        self.max_memory = max_memory
        self.engine = engine
        self._kind = get_engine(engine)
        self.generated = 0
        # this generator's own generations, cache or not: what ``prefetch`` generated for
        # several methods at once is read back here when each method asks
        self._memory: dict[str, tuple[str, tuple[int, ...] | None]] = {}
        self._drafts: dict[str, list[int]] = {}  # original input -> its completion's tokens
        self._regenerator: Regenerator | None = None  # built on the first regeneration

    def suggest_draft(
        self, original: str, budget: int, settings: GenerationSettings, ids: Sequence[int]
    ) -> None:
        """The tokens of ``original``'s completion, as the caller generated them: the exact
        engine verifies them as its draft instead of generating the original again."""
        self._drafts[cache_key("", original, settings.to_dict(), budget)] = list(ids)

    def engine_used(self) -> str:
        """How perturbed inputs were regenerated, for the record kept with the scores."""
        if self._regenerator is not None:
            return self._regenerator.engine_used()
        return self.engine

    def __call__(
        self,
        inputs: list[str],
        budget: int,
        settings: GenerationSettings | None = None,
        original: str | None = None,
    ) -> list[str]:
        return [g.completion for g in self.generations(inputs, budget, settings, original)]

    def _generate(
        self, missing: list[str], budget: int, settings: GenerationSettings, original: str | None
    ) -> list[Generation]:
        model = self.model
        if original is None or settings.do_sample or not is_white_box(model):
            rows = self.batch_size
            if is_white_box(model):
                rows = generation_rows(model, missing, budget, self.max_memory, rows)
            return model.generate(missing, settings, max_new_tokens=budget, batch_size=rows)
        if self._regenerator is None:
            self._regenerator = self._kind.build(model, self.batch_size)
        draft = self._drafts.get(cache_key("", original, settings.to_dict(), budget))
        return self._regenerator.regenerate(
            missing, original, budget, settings, draft, max_memory=self.max_memory
        )

    def generations(
        self,
        inputs: list[str],
        budget: int,
        settings: GenerationSettings | None = None,
        original: str | None = None,
    ) -> list[Generation]:
        """One ``Generation`` per input (with its token ids where the model gives them)."""
        settings = settings or GenerationSettings()
        settings_key = settings.to_dict()
        unique = list(dict.fromkeys(inputs))
        memory = {
            text: self._memory[key]
            for text in unique
            if (key := cache_key("", text, settings_key, budget)) in self._memory
        }
        unique = [text for text in unique if text not in memory]
        fingerprint = self.model.fingerprint if self.cache else ""
        if fingerprint:  # an engine whose completions are its own keeps them apart
            fingerprint += self._kind.cache_tag
        known = self.cache.get_many(fingerprint, unique, settings_key, budget) if self.cache else {}
        missing = [text for text in unique if text not in known]
        if missing:
            outputs = self._generate(missing, budget, settings, original)
            fresh = {
                text: (out.completion, out.token_ids)
                for text, out in zip(missing, outputs, strict=True)
            }
            self.generated += len(fresh)
            if self.cache:
                self.cache.put_many(fingerprint, fresh, settings_key, budget)
            known = {**known, **fresh}
        for text, answer in known.items():
            self._memory[cache_key("", text, settings_key, budget)] = answer
        known = {**known, **memory}
        return [
            Generation(self.model.name, text, known[text][0], settings, known[text][1])
            for text in inputs
        ]
