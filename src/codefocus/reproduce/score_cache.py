"""Scores of the study's stored files, kept once computed.

The study's 62 stored files never change, yet every ``reproduce`` and every study report scored
them again: about 0.9 s a file on this project's 2-core machine, most of a report's time. A
file's scores depend only on its bytes, the labels, the K values and the scoring code, so all
four go into the key: the BLAKE3 hash of the file, of the labels as used, of the Ks and of the
source of every module on the scoring path. Any change to one of them is a miss, and a miss is
scored by the same ``score_stored`` as before; a hit returns the very floats that were stored
(JSON keeps a float's shortest round-trip form, so the values are bit for bit the same; tested).

The cache lives in ``<$CODEFOCUS_CACHE or ~/.cache/codefocus>/kou2024-scores/``; a cache file
that cannot be read is scored again and replaced, never trusted.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

from codefocus.data.labels import StudyLabels
from codefocus.metrics.alignment import AlignmentScores
from codefocus.storage import write_text_atomic

# the modules whose code decides a stored file's scores
_SCORING_MODULES = (
    "codefocus.reproduce.kou2024",
    "codefocus.metrics.alignment",
    "codefocus.data.units",
    "codefocus.data.labels",
)


def cache_folder() -> Path:
    from codefocus.models.packaged import cache_dir

    return cache_dir() / "kou2024-scores"


@functools.cache
def scorer_fingerprint() -> str:
    """BLAKE3 of the source of every module on the scoring path."""
    import importlib

    import blake3

    digest = blake3.blake3()
    for name in _SCORING_MODULES:
        module = importlib.import_module(name)
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


def labels_fingerprint(labels: StudyLabels) -> str:
    """BLAKE3 of the labels as the scorer uses them (spans, categories, rows per prompt)."""
    import blake3

    text = json.dumps(
        [labels.spans, labels.categories, labels.rows_per_prompt], sort_keys=True
    ).encode()
    return blake3.blake3(text).hexdigest()


def cache_key(path: Path, labels_key: str, ks: Sequence[int]) -> str:
    import blake3

    digest = blake3.blake3(Path(path).read_bytes())
    digest.update(f"|{labels_key}|{scorer_fingerprint()}|{','.join(map(str, ks))}".encode())
    return digest.hexdigest()


def read_cached(key: str, folder: Path | None = None) -> list[AlignmentScores] | None:
    """The stored scores under ``key``; None when absent or unreadable (then scored again)."""
    path = (folder or cache_folder()) / f"{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [AlignmentScores.from_dict(entry) for entry in data]
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write_cached(key: str, scores: Sequence[AlignmentScores], folder: Path | None = None) -> None:
    """Keep ``scores`` under ``key``; a cache that cannot be written only costs the next run."""
    path = (folder or cache_folder()) / f"{key}.json"
    try:
        write_text_atomic(path, json.dumps([s.to_dict() for s in scores]))
    except OSError:
        pass
