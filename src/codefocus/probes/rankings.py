"""How a probe orders a task's words, best first: ``Ranking`` and the orders it gives.

A ranking is one of

* a registered method's scores (``Ranking(kind="method", method="bert_masking")``, written
  ``bert_masking``);
* ``programmers``: the words the programmers labelled, in a seeded order;
* ``random:<seed>``: every word, in a seeded order (the control);
* ``lowest:<method>``: the method's lowest-ranked words first (the other control).

The written form is what the store keeps (``ranking:<ranking>`` units, ``ProbeRecord.ranking``)
and what seeds the shuffles, so ``str(Ranking.parse(text)) == text`` for every form written.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codefocus.errors import InvalidArgumentError
from codefocus.probes.words import word_categories

if TYPE_CHECKING:
    from codefocus.data.benchmarks import Task
    from codefocus.data.units import Span

KINDS = ("method", "programmers", "random", "lowest")
_METHOD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_SEED = re.compile(r"-?[0-9]+")
_FORMS = "a method name, programmers, random:<seed> or lowest:<method>"


@dataclass(frozen=True)
class Ranking:
    """One way to order a task's words (see the module's docstring); ``parse`` reads the
    written form and ``str`` writes it."""

    kind: str
    method: str | None = None  # method and lowest: whose scores
    seed: int | None = None  # random: the shuffle's seed

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgumentError(
                f"unknown ranking kind {self.kind!r}: use {', '.join(KINDS)}"
            )
        scored = self.kind in ("method", "lowest")
        if scored != (self.method is not None) or (scored and not _is_method(self.method)):
            raise InvalidArgumentError(
                f"a {self.kind} ranking takes "
                f"{'a method name' if scored else 'no method'}, got {self.method!r}"
            )
        seeded = self.kind == "random"
        if seeded != (self.seed is not None) or (
            seeded and (isinstance(self.seed, bool) or not isinstance(self.seed, int))
        ):
            raise InvalidArgumentError(
                f"a {self.kind} ranking takes {'an integer seed' if seeded else 'no seed'}, "
                f"got {self.seed!r}"
            )

    @classmethod
    def parse(cls, text: str) -> Ranking:
        """The ranking ``text`` writes: ``bert_masking``, ``programmers``, ``random:0``,
        ``lowest:bert_masking``.

        Raises:
            InvalidArgumentError: ``text`` is none of these forms.
        """
        if not isinstance(text, str):
            raise InvalidArgumentError(f"bad ranking {text!r}: use {_FORMS}")
        head, colon, rest = text.partition(":")
        if not colon:
            if text == "programmers":
                return cls("programmers")
            if _is_method(text):
                return cls("method", method=text)
        elif head == "random" and _SEED.fullmatch(rest):
            return cls("random", seed=int(rest))
        elif head == "lowest" and _is_method(rest):
            return cls("lowest", method=rest)
        raise InvalidArgumentError(f"bad ranking {text!r}: use {_FORMS}")

    def __str__(self) -> str:
        if self.kind == "method":
            return str(self.method)
        if self.kind == "programmers":
            return "programmers"
        if self.kind == "random":
            return f"random:{self.seed}"
        return f"lowest:{self.method}"


def _is_method(name: object) -> bool:
    """A method's name as a ranking writes it (not one of the ranking kinds)."""
    return isinstance(name, str) and name not in KINDS and bool(_METHOD.fullmatch(name))


def order_by(scores: list[float], lowest: bool = False) -> list[int]:
    """Word indices, best first (ties to the earlier word); ``lowest`` reverses the scores."""
    values = -np.asarray(scores, dtype=float) if lowest else np.asarray(scores, dtype=float)
    values = np.where(np.isnan(values), -np.inf, values)
    return [int(i) for i in np.argsort(-values, kind="stable")]


def order_words(
    task: Task,
    ranking: Ranking,
    words: list[Span],
    offset: int,
    scores: Callable[[str], tuple[list[Span], list[float]]],
) -> dict:
    """The probe-able words (indices into ``words``), best first: ``{"order": [...]}``, with the
    words' ``scores`` for a method's ranking.

    ``scores(method)`` gives the method's scored words (offsets in the model's input, where the
    task text starts at ``offset``) and their scores.

    Raises:
        InvalidArgumentError: the method scored every word the same (it ranks nothing).
    """
    if ranking.kind == "random":
        order = list(range(len(words)))
        random.Random(f"{task.task_id}:{ranking}").shuffle(order)
        return {"order": order}
    if ranking.kind == "programmers":
        chosen = [i for i, w in enumerate(words) if word_categories(task, w)]
        random.Random(f"{task.task_id}:programmers").shuffle(chosen)
        return {"order": chosen}
    method = str(ranking.method)
    scored_words, values = scores(method)
    position = {(w.start - offset, w.end - offset): i for i, w in enumerate(scored_words)}
    own = [values[position[(w.start, w.end)]] for w in words]
    if max(own) == min(own):
        raise InvalidArgumentError(f"{method} gave no attribution (all scores equal)")
    return {"order": order_by(own, ranking.kind == "lowest"), "scores": own}
