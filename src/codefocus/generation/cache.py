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


def cache_key(model: str, model_input: str, settings: dict, budget: int) -> str:
    """The key of one generation (``model`` is a fingerprint, or "" in a generator's memory)."""
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
        keys = {cache_key(model, text, settings, budget): text for text in inputs}
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
                        cache_key(model, text, settings, budget),
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
