"""Noise for the memorization study: wrong labels, or damaged programs with their labels kept."""

from __future__ import annotations

import math

import numpy as np

from codefocus.errors import InvalidArgumentError
from codefocus.lab.datasets import Sample
from codefocus.lab.parsing import delete, parse


def label_noise(labels: list[int], share: float, classes: int, seed: int) -> list[int]:
    """Labels with exactly round(share * n) of them replaced by a different, random label.

    Seeded; the noised samples of a smaller share are a subset of a larger share's, and a sample
    gets the same wrong label at every level, so levels differ only in how much is noised.
    """
    if not 0.0 <= share <= 1.0:
        raise InvalidArgumentError(f"noise share must be in [0, 1], got {share}")
    if classes < 2 and share > 0:
        raise InvalidArgumentError("label noise needs at least two classes")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    offsets = rng.integers(1, max(classes, 2), size=len(labels))  # 1..classes-1: never the same
    noised = list(labels)
    for index in order[: round(share * len(labels))]:
        noised[index] = int((labels[index] + offsets[index]) % classes)
    return noised


def input_noise(
    samples: list[Sample], share: float, language: str, seed: int, deleted: float = 0.5
) -> list[Sample]:
    """Samples with round(share * n) programs corrupted by deleting half of their statements.

    The label stays; the evidence for it is damaged (a second kind of noise, beside labels).
    """
    if not 0.0 <= share <= 1.0:
        raise InvalidArgumentError(f"noise share must be in [0, 1], got {share}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples))
    out = list(samples)
    for index in order[: round(share * len(samples))]:
        parsed = parse(samples[index].code, language)
        count = len(parsed.statements)
        if count == 0:
            continue
        chosen = rng.choice(count, size=max(1, math.ceil(deleted * count)), replace=False)
        out[index] = Sample(
            delete(parsed, {int(i) for i in chosen}), samples[index].label, samples[index].source
        )
    return out
