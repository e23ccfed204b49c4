"""``hierarchical_loo``: leave-one-out in two passes, AttriBoT's hierarchical attribution (Liu,
Kandpal and Raffel, 2024: score paragraphs by leave-one-out, then sentences only inside the
top-scoring paragraphs), on a task's lines and words.

1. Coarse pass: ``log p(code | task) - log p(code | task without unit g)`` for every coarse unit g
   (``hierarchical_units``: ``line`` by default, ``sentence`` or ``statement``; ``data/groups.py``)
   — the original and one scored prompt per unit.
2. Selection: the ``hierarchical_top`` best units (ties at the cutoff kept, as AttriBoT keeps every
   paragraph scoring at least the k-th), and further down the ranking until the selected units
   hold ``hierarchical_coverage`` of the total positive coarse score (0, the default: the top
   units only; 1: every unit with a positive score).
3. Fine pass: ``loo_logprob`` itself (the same ``loo_mode``; ``perturb_units``, words by default,
   cut along the coarse units) for the fine units inside the selected coarse units, the original
   scored again in the same call.

A refined word's score is its ``loo_logprob`` score: the same prompts, scored the same way; with
every coarse unit selected the fine pass *is* ``loo_logprob``'s call, so the scores are identical.
An unrefined word only gets a rank: with ``floor`` the lowest refined score and ``best`` the best
coarse score among the unrefined units, a word of unrefined unit g scores
``floor - 1 - (best - coarse[g])`` — below every refined word, the unrefined units in the order of
their coarse scores (the gaps between them are theirs), the words of one unit tied. So the top-k
words are ``loo_logprob``'s top-k among the refined ones, and the top-10 recall against full LOO is
the share of its top-10 words that lie in refined units.

Departure from AttriBoT: its second pass runs on the context pruned to the kept paragraphs (the
others deleted, the baseline recomputed on that shorter context). Here the unselected units stay
in the prompt: a code task without its signature or half its docstring is another task, and
keeping them makes refined scores exactly ``loo_logprob``'s, so the recall measures the selection
alone (and the original prompt's prefix is reused as in every pass, ``CompletionScorer``).

Cost, in scored prompts (rows of the batched teacher-forced forwards; a contrast doubles every
one alike): ``(1 + G) + (1 + R)`` against ``1 + N`` for ``loo_logprob`` (G coarse units, R of the
N fine units refined); ``HierarchicalResult`` (``HierarchicalLoo.explain``) reports both. With no
more coarse units than ``hierarchical_top`` every unit would be refined: the coarse pass is
skipped and the cost is ``loo_logprob``'s.

``line`` is the default coarse unit because every prompt has lines and a HumanEval line (the
signature, a docstring line) holds a handful to a dozen words; its sentences often run across
lines or lack a full stop, and its statements are two in the study's scope (the signature and the
whole docstring), which leaves nothing to select. An MBPP task text is one line and one sentence:
there the coarse pass is skipped and the method is ``loo_logprob``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codefocus.data.groups import check_unit
from codefocus.errors import InvalidArgumentError
from codefocus.methods.base import Method
from codefocus.methods.likelihood import LeaveOneOut

COARSE_UNITS = ("line", "sentence", "statement")


@dataclass(frozen=True)
class HierarchicalResult:
    """What ``hierarchical_loo`` computed for one prompt and what it cost."""

    scores: np.ndarray  # one per word
    coarse_groups: list[list[int]]  # word indices per coarse unit
    coarse_scores: np.ndarray | None  # per coarse unit; None where the coarse pass was skipped
    refined: list[int]  # indices of the coarse units refined
    forwards: int  # prompts scored (the originals included)
    full_forwards: int  # what loo_logprob scores with the same units: 1 + fine units

    @property
    def speedup(self) -> float:
        """``full_forwards / forwards``: above 1 where the hierarchy saved scored prompts."""
        return self.full_forwards / self.forwards


def select(scores: np.ndarray, top: int, coverage: float = 0.0) -> list[int]:
    """The coarse units to refine, ascending: the ``top`` best (every unit scoring at least the
    ``top``-th best), then the next best while the selected hold less than ``coverage`` of the
    total positive score."""
    scores = np.asarray(scores, dtype=float)
    if len(scores) == 0:
        return []
    order = np.argsort(-scores, kind="stable")
    cutoff = scores[order[min(top, len(scores)) - 1]]
    chosen = [int(i) for i in order if scores[i] >= cutoff]
    positive = np.clip(scores, 0.0, None)
    target = coverage * float(positive.sum())
    for index in order[len(chosen) :]:
        if float(positive[chosen].sum()) >= target:
            break
        chosen.append(int(index))
    return sorted(chosen)


def fine_units(fine: list[list[int]], coarse: list[list[int]]) -> list[tuple[int, list[int]]]:
    """The fine units cut along the coarse ones, in the order of their first word, each with the
    index of its coarse unit (words and tokens nest in lines, so nothing is cut there)."""
    owner = {word: g for g, group in enumerate(coarse) for word in group}
    pieces: dict[tuple[int, int], list[int]] = {}
    for index, group in enumerate(fine):
        for word in group:
            pieces.setdefault((index, owner[word]), []).append(word)
    units = [(g, sorted(words)) for (_, g), words in pieces.items()]
    return sorted(units, key=lambda unit: unit[1][0])


def unrefined_scores(
    scores: np.ndarray, coarse: list[list[int]], coarse_scores: np.ndarray, refined: list[int]
) -> np.ndarray:
    """``scores`` (refined words set) with the words of unrefined coarse units ranked below
    every refined word, in the order of their units' coarse scores (the module's rule)."""
    scores = np.array(scores, dtype=float)
    others = [g for g in range(len(coarse)) if g not in set(refined)]
    if not others:
        return scores
    refined_words = [w for g in refined for w in coarse[g]]
    floor = float(np.min(scores[refined_words])) if refined_words else 0.0
    best = max(float(coarse_scores[g]) for g in others)
    for g in others:
        scores[coarse[g]] = floor - 1.0 - (best - float(coarse_scores[g]))
    return scores


@dataclass(frozen=True)
class HierarchicalLoo(LeaveOneOut):
    """Leave-one-out on coarse units, then on the fine units of the best ones (the module's
    scheme); ``explain`` gives the scores with their cost, ``word_scores`` the scores."""

    hierarchical_units: str = "line"  # line | sentence | statement: the coarse units
    hierarchical_top: int = 2  # coarse units refined, at least
    hierarchical_coverage: float = 0.0  # share of the positive coarse score refined, at least
    description: ClassVar[str] = (
        "AttriBoT's hierarchical leave-one-out: lines first, words in the best lines (new)"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check_unit(self.hierarchical_units, "hierarchical_units", COARSE_UNITS)
        top = self.hierarchical_top
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise InvalidArgumentError(f"hierarchical_top must be a positive integer, got {top!r}")
        coverage = self.hierarchical_coverage
        if (
            isinstance(coverage, bool)
            or not isinstance(coverage, int | float)
            or not 0 <= coverage <= 1
        ):
            raise InvalidArgumentError(
                f"hierarchical_coverage must be a number from 0 to 1, got {coverage!r}"
            )

    def word_scores(self, setup, logprobs) -> np.ndarray:
        return self.explain(setup, logprobs).scores

    def explain(self, setup, logprobs) -> HierarchicalResult:
        """The scores and what they cost (``logprobs``: prompts -> log-probabilities of the
        code, a ``CompletionScorer``)."""
        template = setup.template(with_substitutes=self.loo_mode == "substitute")
        count = len(template.words)
        coarse = setup.groups(self.hierarchical_units)
        units = fine_units(setup.groups(self.perturb_units), coarse)
        full = 1 + len(units)
        coarse_scores = None
        forwards = 0
        if len(coarse) <= self.hierarchical_top:
            refined = list(range(len(coarse)))
        else:
            values = logprobs([setup.prompt, *(template.without_group(g) for g in coarse)])
            coarse_scores = values[0] - values[1:]
            forwards += len(values)
            refined = select(coarse_scores, self.hierarchical_top, self.hierarchical_coverage)
        chosen = set(refined)
        kept = [words for g, words in units if g in chosen]
        values = logprobs([setup.prompt, *(template.without_group(words) for words in kept)])
        forwards += len(values)
        scores = np.zeros(count)
        for words, value in zip(kept, values[0] - values[1:], strict=True):
            scores[words] = value
        if coarse_scores is not None:
            scores = unrefined_scores(scores, coarse, coarse_scores, refined)
        return HierarchicalResult(scores, coarse, coarse_scores, refined, forwards, full)


hierarchical_loo = HierarchicalLoo("hierarchical_loo")

METHODS: tuple[Method, ...] = (hierarchical_loo,)
