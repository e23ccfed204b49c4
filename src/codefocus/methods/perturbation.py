"""Perturbation methods: change words of the task, regenerate, measure how much the code changed.

importance(word) = 1 - similarity(original code, code generated from the perturbed task), with the
study's similarity (NLTK sentence BLEU on whitespace tokens) by default.

* ``occlusion``: delete the word (cheap baseline).
* ``bert_masking``: replace the word by a substitute provider's proposal (the study's BERT masking).
* ``shap``: shap's KernelExplainer over word-presence coalitions, 50 samples as in the study;
  absent words take their substitutes; the score is |SHAP value| (the study's open models).
  Regularisation: ``shap_l1_reg="none"`` by default, so every word gets a value (shap's own
  default, ``num_features(10)``, gives at most 10 words a non-zero value, which makes a top-20
  meaningless); ``aic`` (the study-era default, adaptive), ``bic`` and ``num_features(N)`` are
  options. The choice is recorded in the result's settings.
* ``shap_partition``: shap's Partition explainer over a hierarchy of words (absent = deleted):
  exact Owen values of that hierarchy for a fixed budget — faster and steadier than Kernel.

They work for any model that can generate, white-box or behind an endpoint. All perturbed inputs
go through one batched, cached generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from codefocus.data.units import Span, scoped_word_spans
from codefocus.methods.base import Method, TokenScores, register
from codefocus.metrics.similarity import dissimilarity


@dataclass
class PerturbationSetup:
    """What the perturbation methods need besides the model's internals."""

    prompt: str
    suffix: str  # what follows the prompt in the model input (MBPP's function header)
    completion: str
    generator: object  # CachedGenerator-like: (inputs, budget, settings) -> completions
    budget: int
    settings: object
    similarity: str = "bleu"
    provider: str = "embedding"
    model: object = None
    shap_samples: int = 50
    shap_l1_reg: str = "none"  # none | aic | bic | num_features(N)
    scope: str = "study"  # which words are perturbed (data/units.py: scored_range)
    partition_evals: int = 0  # 0: 8 x words (enough to resolve every leaf of the tree)
    _substitutes: list[str] | None = field(default=None, repr=False)

    @property
    def words(self) -> list[Span]:
        if getattr(self, "_words", None) is None:
            self._words = scoped_word_spans(self.prompt, self.scope)
        return self._words

    def substitutes(self) -> list[str]:
        if self._substitutes is None:
            from codefocus.methods.substitutes import get_provider, substitute_word

            provider = get_provider(self.provider, self.model)
            self._substitutes = [substitute_word(provider, self.prompt, w) for w in self.words]
        return self._substitutes

    def scores_for(self, prompts: list[str]) -> np.ndarray:
        """1 - similarity(original, regenerated) for each perturbed prompt (batched, cached)."""
        outputs = self.generator(
            [p + self.suffix for p in prompts],
            self.budget,
            self.settings,
            original=self.prompt + self.suffix,
        )
        return np.array([dissimilarity(self.completion, out, self.similarity) for out in outputs])


def rebuild(prompt: str, words: list[Span], replacements: dict[int, str]) -> str:
    """``prompt`` with word i replaced by ``replacements[i]`` ("" deletes it with one space)."""
    pieces, cursor = [], 0
    for index, span in enumerate(words):
        if index not in replacements:
            continue
        start, end = span.start, span.end
        new = replacements[index]
        if new == "" and end < len(prompt) and prompt[end] == " ":
            end += 1
        pieces.append(prompt[cursor:start])
        pieces.append(new)
        cursor = end
    pieces.append(prompt[cursor:])
    return "".join(pieces)


def shap_l1_reg(name: str):
    """shap's ``l1_reg`` argument for a regularisation name (``none`` keeps every word)."""
    import re

    from codefocus.errors import InvalidArgumentError

    if name == "none":
        return False
    if name in ("aic", "bic") or re.fullmatch(r"num_features\([1-9][0-9]*\)", name):
        return name
    raise InvalidArgumentError(
        f"unknown SHAP regularisation {name!r}: use none, aic, bic or num_features(N)"
    )


class _Perturbation(Method):
    family: ClassVar[str] = "perturbation"
    needs_white_box: ClassVar[bool] = False

    def compute(self, context) -> TokenScores:
        setup: PerturbationSetup = context.perturbation
        words = setup.words
        if not words:
            return TokenScores(np.zeros(0), word_level=True)
        # shap draws from numpy's global generator: seed it for repeatable scores (and cache
        # hits), and give the caller's state back afterwards
        state = np.random.get_state()
        np.random.seed(0)
        try:
            return TokenScores(self.word_scores(setup, words), word_level=True)
        finally:
            np.random.set_state(state)

    def word_scores(self, setup: PerturbationSetup, words: list[Span]) -> np.ndarray:
        raise NotImplementedError


@register
class Occlusion(_Perturbation):
    name: ClassVar[str] = "occlusion"
    description: ClassVar[str] = "delete each word, regenerate, 1 - BLEU"

    def word_scores(self, setup, words):
        prompts = [rebuild(setup.prompt, words, {i: ""}) for i in range(len(words))]
        return setup.scores_for(prompts)


@register
class BertMasking(_Perturbation):
    name: ClassVar[str] = "bert_masking"
    description: ClassVar[str] = "replace each word by a substitute, regenerate, 1 - BLEU"

    def word_scores(self, setup, words):
        substitutes = setup.substitutes()
        prompts, changed = [], []
        for i, span in enumerate(words):
            if substitutes[i] != setup.prompt[span.start : span.end]:
                prompts.append(rebuild(setup.prompt, words, {i: substitutes[i]}))
                changed.append(i)
        scores = np.zeros(len(words))
        if prompts:
            scores[changed] = setup.scores_for(prompts)
        return scores


@register
class KernelShap(_Perturbation):
    name: ClassVar[str] = "shap"
    description: ClassVar[str] = "shap KernelExplainer over word coalitions (50 samples), |value|"

    def word_scores(self, setup, words):
        import logging
        import warnings

        import shap

        logging.getLogger("shap").setLevel(logging.ERROR)
        substitutes = setup.substitutes()

        def value(coalitions: np.ndarray) -> np.ndarray:
            prompts = [
                rebuild(setup.prompt, words, {i: substitutes[i] for i in np.flatnonzero(row == 0)})
                for row in coalitions
            ]
            return setup.scores_for(prompts)

        explainer = shap.KernelExplainer(value, np.zeros((1, len(words))))
        with warnings.catch_warnings():  # fewer samples than words: shap says it uses lstsq
            warnings.simplefilter("ignore")
            values = explainer.shap_values(
                np.ones((1, len(words))),
                nsamples=setup.shap_samples,
                l1_reg=shap_l1_reg(setup.shap_l1_reg),
                silent=True,
            )
        return np.abs(np.asarray(values, dtype=float).reshape(-1)[: len(words)])


@register
class PartitionShap(_Perturbation):
    name: ClassVar[str] = "shap_partition"
    description: ClassVar[str] = "shap Partition explainer over a word hierarchy, |value|"

    def word_scores(self, setup, words):
        import shap
        from scipy.cluster.hierarchy import linkage

        count = len(words)
        if count == 1:
            return np.abs(setup.scores_for([""]))

        def value(coalitions: np.ndarray) -> np.ndarray:
            prompts = [
                rebuild(setup.prompt, words, {i: "" for i in np.flatnonzero(row == 0)})
                for row in coalitions
            ]
            return setup.scores_for(prompts)

        # a hierarchy that merges neighbouring words first (as shap's own text masker does)
        positions = np.array([[span.start] for span in words], dtype=float)
        masker = shap.maskers.Partition(
            np.zeros((1, count)), clustering=linkage(positions, "single")
        )
        explainer = shap.explainers.Partition(value, masker)
        budget = max(setup.partition_evals or 8 * count, 2 * count + 1)
        explanation = explainer(np.ones((1, count)), max_evals=budget, silent=True)
        return np.abs(np.asarray(explanation.values[0], dtype=float).reshape(-1)[:count])
