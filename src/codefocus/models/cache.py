"""An on-disk cache of generations keyed by (model fingerprint, input, settings, token budget).

The model is named by what determines its output, never by the name the user typed: a hash of
its weights, config and tokenizer (white-box) or of the endpoint, served model id and the server's
description of it (black-box). A directory overwritten with other weights therefore misses.

Perturbation methods regenerate code for many prompt variants; the same variant recurs across
methods and runs (the unperturbed prompt, single-word masks shared by BERT masking and SHAP), so
each generation is computed once. WAL mode: safe for one writer and concurrent readers.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from codefocus.errors import InvalidArgumentError
from codefocus.models.base import is_white_box

if TYPE_CHECKING:
    from codefocus.models.engine import DraftVerifier
    from codefocus.models.llamacpp import LlamaCppEngine

# how perturbed inputs are regenerated: by verifying the original completion as a draft, or plainly
# draft: the exact transformers engine; plain: decode every input (the baseline); llama.cpp:
# llama.cpp in-process for a model that has a GGUF file (checked against transformers per task)
ENGINES = ("draft", "plain", "llama.cpp")


def _key(model: str, model_input: str, settings: dict, budget: int) -> str:
    payload = json.dumps([model, model_input, settings, budget], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


GENERATION_CACHE_ENV = "CODEFOCUS_GENERATION_CACHE"


def default_cache() -> GenerationCache | None:
    """The cache the library and the command line use unless told otherwise:
    ``$CODEFOCUS_GENERATION_CACHE`` (a file, or ``off``), else
    ``<$CODEFOCUS_CACHE or ~/.cache/codefocus>/generations.sqlite``."""
    import os

    setting = os.environ.get(GENERATION_CACHE_ENV, "")
    if setting.lower() in ("off", "none", "0"):
        return None
    if setting:
        return GenerationCache(setting)
    from codefocus.models.packaged import cache_dir

    return GenerationCache(cache_dir() / "generations.sqlite")


class GenerationCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # v2: keyed by fingerprint, with the generated token ids (an older cache's table, keyed
        # by the typed name, is left unread)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS generations_v2 (key TEXT PRIMARY KEY, model TEXT, "
            "model_input TEXT, completion TEXT, token_ids TEXT)"
        )
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get_many(
        self, model: str, inputs: list[str], settings: dict, budget: int
    ) -> dict[str, tuple[str, tuple[int, ...] | None]]:
        """``model`` is the model's fingerprint; returns input -> (completion, token ids)."""
        keys = {_key(model, text, settings, budget): text for text in inputs}
        found: dict[str, tuple[str, tuple[int, ...] | None]] = {}
        with self._lock:
            for key, text in keys.items():
                row = self._db.execute(
                    "SELECT completion, token_ids FROM generations_v2 WHERE key = ?", (key,)
                ).fetchone()
                if row is not None:
                    ids = tuple(json.loads(row[1])) if row[1] is not None else None
                    found[text] = (row[0], ids)
        self.hits += len(found)
        self.misses += len(set(inputs)) - len(found)
        return found

    def put_many(
        self,
        model: str,
        pairs: dict[str, tuple[str, tuple[int, ...] | None]],
        settings: dict,
        budget: int,
    ) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO generations_v2 VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        _key(model, text, settings, budget),
                        model,
                        text,
                        completion,
                        json.dumps(list(ids)) if ids is not None else None,
                    )
                    for text, (completion, ids) in pairs.items()
                ],
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedGenerator:
    """Generate completions for many inputs: cached ones are read, the rest batched.

    Given the ``original`` input that the others perturb, greedy inputs on a white-box model go
    through draft verification (``models/engine.py``): identical output, most of it without
    decoding. ``engine="plain"`` decodes every input (the baseline the benchmark compares with).
    """

    remembers = True  # what it generated is answered again from memory (see ``prefetch``)

    def __init__(
        self,
        model,
        cache: GenerationCache | None = None,
        batch_size: int = 8,
        engine: str = "draft",
    ) -> None:
        self.model = model
        self.cache = cache
        self.batch_size = batch_size
        self.engine = engine
        self.generated = 0
        # this generator's own generations, cache or not: what ``prefetch`` generated for
        # several methods at once is read back here when each method asks
        self._memory: dict[str, tuple[str, tuple[int, ...] | None]] = {}
        self._drafts: dict[str, list[int]] = {}  # original input -> its completion's tokens
        self._verifier: DraftVerifier | None = None
        self._llama: LlamaCppEngine | None = None

    def suggest_draft(self, original: str, budget: int, settings, ids) -> None:
        """The tokens of ``original``'s completion, as the caller generated them: the exact
        engine verifies them as its draft instead of generating the original again."""
        self._drafts[_key("", original, settings.to_dict(), budget)] = list(ids)

    def engine_used(self) -> str:
        """How perturbed inputs were regenerated, for the record kept with the scores."""
        if self._llama is not None and self._llama.fallbacks:
            return "llama.cpp, with transformers where llama.cpp did not reproduce the original"
        return self.engine

    def __call__(
        self, inputs: list[str], budget: int, settings=None, original: str | None = None
    ) -> list[str]:
        return [g.completion for g in self.generations(inputs, budget, settings, original)]

    def _generate(self, missing: list[str], budget: int, settings, original: str | None) -> list:
        exact = original is not None and not settings.do_sample and is_white_box(self.model)
        if exact and self.engine == "llama.cpp":
            if self._llama is None:
                from codefocus.models.llamacpp import LlamaCppEngine

                gguf = self.model.gguf() if hasattr(self.model, "gguf") else None
                if gguf is None:
                    raise InvalidArgumentError(
                        f"engine llama.cpp needs a GGUF model; {self.model.name} has none"
                    )
                self._llama = LlamaCppEngine(self.model, gguf)
            assert original is not None
            return self._llama.regenerate(missing, original, budget, settings)
        if exact and self.engine == "draft":
            assert original is not None
            if self._verifier is None:
                from codefocus.models.engine import DraftVerifier

                self._verifier = DraftVerifier(self.model, self.batch_size)
            draft = self._drafts.get(_key("", original, settings.to_dict(), budget))
            return self._verifier.regenerate(missing, original, budget, settings, draft)
        return self.model.generate(
            missing, settings, max_new_tokens=budget, batch_size=self.batch_size
        )

    def generations(
        self, inputs: list[str], budget: int, settings=None, original: str | None = None
    ) -> list:
        """One ``Generation`` per input (with its token ids where the model gives them)."""
        from codefocus.models.base import Generation, GenerationSettings

        settings = settings or GenerationSettings()
        settings_key = settings.to_dict()
        unique = list(dict.fromkeys(inputs))
        memory = {
            text: self._memory[key]
            for text in unique
            if (key := _key("", text, settings_key, budget)) in self._memory
        }
        unique = [text for text in unique if text not in memory]
        fingerprint = self.model.fingerprint if self.cache else ""
        if fingerprint and self.engine == "llama.cpp":  # its completions are its own
            fingerprint += "|llama.cpp"
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
            self._memory[_key("", text, settings_key, budget)] = answer
        known = {**known, **memory}
        return [
            Generation(self.model.name, text, known[text][0], settings, known[text][1])
            for text in inputs
        ]
