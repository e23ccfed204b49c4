"""Perturbation methods: change words of the task, regenerate, measure how much the code changed.

importance(word) = 1 - similarity(original code, code generated from the perturbed task), with the
study's similarity (NLTK sentence BLEU on whitespace tokens) by default.

* ``occlusion``: delete the word (cheap baseline).
* ``bert_masking``: replace the word by a substitute provider's proposal (the study's BERT masking).
* ``shap``: shap's KernelExplainer over word-presence coalitions, ``shap_samples=50`` as in the
  study; absent words take their substitutes; the score is |SHAP value| (the study's open models).
  Regularisation: ``shap_l1_reg="none"`` by default, so every word gets a value (shap's own
  default, ``num_features(10)``, gives at most 10 words a non-zero value, which makes a top-20
  meaningless); ``aic`` (the study-era default, adaptive), ``bic`` and ``num_features(N)`` are
  options. The choice is recorded in the result's settings. ``shap_background="absent"`` (the
  default) explains the prompt against one all-absent background row; ``"single-mask"`` follows
  the study's released code instead (one background row per single-word variant, coalitions
  looked up among those rows; see ``single_mask_background`` and ``KernelShap``).
* ``shap_partition``: shap's Partition explainer over a hierarchy of words (absent = deleted):
  exact Owen values of that hierarchy for a fixed budget — faster and steadier than Kernel.

``max_memory`` (bytes, an option of each): the generator's batches (the engine's prefill and
decoding batches, the model's ``generate``) keep within it while the method runs
(``generation/memory.py``); it never changes a score and is not recorded among the options.

They work for any model that can generate, white-box or behind an endpoint. All perturbed inputs
go through one batched, cached generator; ``WordTemplate`` (``methods/setup.py``) is the one place
a word mask becomes a prompt (captum's ``TextTemplateInput`` plays that part there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codefocus.data.groups import check_unit, options_without_word_units, spread, unit_owners
from codefocus.errors import InvalidArgumentError
from codefocus.generation.memory import check_max_memory, memory_budget, options_without_budget
from codefocus.methods.base import Method, MethodInputs, TokenScores
from codefocus.methods.setup import PerturbationSetup, WordTemplate

SHAP_L1_REG_CHOICES = "none, aic, bic or num_features(N)"


def shap_l1_reg(name: str):
    """shap's ``l1_reg`` argument for a regularisation name (``none`` keeps every word)."""
    import re

    if name == "none":
        return False
    if name in ("aic", "bic") or re.fullmatch(r"num_features\([1-9][0-9]*\)", name):
        return name
    raise InvalidArgumentError(f"unknown SHAP regularisation {name!r}: use {SHAP_L1_REG_CHOICES}")


SHAP_BACKGROUNDS = ("absent", "single-mask")


def single_mask_background(template: WordTemplate) -> tuple[np.ndarray, list[str]]:
    """The study's released SHAP background: one variant per word (word i replaced by its
    substitute) and, for each, its row in coalition space as the released code built it: 1 for a
    word of the prompt that no longer occurs among the variant's words, 0 for one that does. That
    is the one-hot row of word i (not "all ones but word i"), or a row of zeros where word i's text
    also occurs elsewhere in the prompt or in its substitute."""
    texts = [template.prompt[w.start : w.end] for w in template.words]
    rows = np.zeros((len(texts), len(texts)))
    for i, text in enumerate(texts):
        remaining = set(texts[:i] + texts[i + 1 :]) | set(template.absent(i).split())
        rows[i, i] = float(text not in remaining)
    return rows, [template.without(i) for i in range(len(texts))]


def released_lookup(
    background: np.ndarray, variants: list[str], setup: PerturbationSetup
) -> Callable[[np.ndarray], np.ndarray]:
    """The released code's model function over ``background``: a coalition row takes the
    variant of the first background row identical to it, and the first variant when no row is
    (the instance explained, all ones, included). The variants it can reach are scored up front,
    in one batch."""
    first: dict[bytes, int] = {}
    for index, row in enumerate(np.asarray(background, dtype=float) + 0.0):
        first.setdefault(row.tobytes(), index)
    reachable = sorted(set(first.values()) | {0})
    texts = list(dict.fromkeys(variants[i] for i in reachable))
    scored = dict(zip(texts, setup.scores_for(texts), strict=True))

    def value(coalitions: np.ndarray) -> np.ndarray:
        rows = np.asarray(coalitions, dtype=float) + 0.0  # -0.0 and 0.0 alike
        return np.array([scored[variants[first.get(row.tobytes(), 0)]] for row in rows])

    return value


@contextmanager
def _seeded():
    """numpy's global generator seeded (shap draws from it: repeatable scores and cache hits),
    the caller's state given back afterwards."""
    state = np.random.get_state()
    np.random.seed(0)
    try:
        yield
    finally:
        np.random.set_state(state)


class _Recorder:
    """A generator that generates nothing and notes what it is asked for."""

    remembers = False

    def __init__(self) -> None:
        self.inputs: list[str] = []

    def __call__(self, inputs, budget, settings=None, original=None) -> list[str]:
        self.inputs.extend(inputs)
        return [""] * len(inputs)

    def engine_used(self) -> str:
        return "none"


@dataclass(frozen=True)
class Perturbation(Method):
    """Scores words by regenerating from perturbed prompts; any text generator will do."""

    max_memory: int | None = None  # bytes; the generator's batches keep within it
    # the prompt unit perturbed at once: word | token | line | sentence | statement
    # (``data/groups.py``); a unit's words all take the unit's score
    perturb_units: str = "word"
    family: ClassVar[str] = "perturbation"
    needs_white_box: ClassVar[bool] = False
    # whether the inputs a method asks for are known before any is generated (see ``planned``)
    plannable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_max_memory(self.max_memory)
        check_unit(self.perturb_units)

    def options(self) -> dict:
        return options_without_word_units(options_without_budget(super().options()))

    def compute(self, inputs: MethodInputs) -> TokenScores:
        setup = inputs.setup(self.name)
        words = setup.words
        if not words:
            return TokenScores(np.zeros(0), word_level=True)
        with _seeded(), memory_budget(setup.generator, self.max_memory):
            return TokenScores(self.word_scores(setup), word_level=True)

    def planned(self, setup: PerturbationSetup) -> list[str]:
        """The model inputs ``compute`` will ask the generator for, found by a dry run against a
        generator that generates nothing (same seed: shap samples the same coalitions, which do
        not depend on the model's outputs). Only a hint for ``prefetch``: whatever it misses is
        generated when the method runs."""
        if not self.plannable or not setup.words:
            return []
        recorder, real = _Recorder(), setup.generator
        setup.generator = recorder
        try:
            with _seeded():
                self.word_scores(setup)
        except Exception:  # noqa: BLE001 - the real run meets (and records) the same error
            return []
        finally:
            setup.generator = real
        return recorder.inputs

    def word_scores(self, setup: PerturbationSetup) -> np.ndarray:
        raise NotImplementedError


def prefetch(methods: Sequence[Method], setup: PerturbationSetup) -> dict[str, float]:
    """Generate, in one call, every input the perturbation ``methods`` will ask for (BERT
    masking's substitutions, SHAP's background, the original and its coalitions), so that the
    engine batches and decodes them together instead of method by method, call by call; the
    methods then read them from the generator's memory (a generator without one, such as a plain
    callable, is left to the methods). Returns the seconds spent, shared out
    among the methods in proportion to the inputs each asked for."""
    import time

    if not setup.generator.remembers:
        return {}  # a generator that forgets would generate everything twice
    planned = {
        m.name: m.planned(setup) for m in methods if isinstance(m, Perturbation) and m.plannable
    }
    unique = list(dict.fromkeys(text for inputs in planned.values() for text in inputs))
    if len(planned) == 0 or not unique:
        return {}
    budgets = [m.max_memory for m in methods if isinstance(m, Perturbation) and m.max_memory]
    started = time.perf_counter()
    with memory_budget(setup.generator, min(budgets) if budgets else None):
        original = setup.prompt + setup.suffix
        setup.generator(unique, setup.budget, setup.settings, original=original)
    seconds = time.perf_counter() - started
    total = sum(len(inputs) for inputs in planned.values())
    return {name: seconds * len(inputs) / total for name, inputs in planned.items()}


@dataclass(frozen=True)
class Occlusion(Perturbation):
    """Deletes one prompt unit at a time: a word by default; with ``perturb_units`` (``line``,
    ``sentence``, ``statement``, ``token``: ``data/groups.py``) the words of one unit together,
    each word scored with its unit's regeneration."""

    description: ClassVar[str] = "delete each word, regenerate, 1 - BLEU"

    def word_scores(self, setup):
        template = setup.template(with_substitutes=False)
        groups = setup.groups(self.perturb_units)
        scores = setup.scores_for([template.without_group(g) for g in groups])
        return spread(groups, scores, len(template.words))


@dataclass(frozen=True)
class BertMasking(Perturbation):
    """Replaces one prompt unit at a time by its substitutes (a word by default; with
    ``perturb_units`` every word of the unit at once); a unit no substitute changes scores 0
    without a regeneration."""

    description: ClassVar[str] = "replace each word by a substitute, regenerate, 1 - BLEU"

    def word_scores(self, setup):
        template = setup.template(with_substitutes=True)
        groups = setup.groups(self.perturb_units)
        changed = [g for g in groups if template.group_changes(g)]
        scores = np.zeros(len(template.words))
        if changed:
            values = setup.scores_for([template.without_group(g) for g in changed])
            for group, value in zip(changed, values, strict=True):
                scores[list(group)] = value
        return scores


@dataclass(frozen=True)
class KernelShap(Perturbation):
    """shap's KernelExplainer over word coalitions; the score is |SHAP value|.

    ``shap_background`` chooses what the explainer compares the prompt with:

    * ``"absent"`` (default): one background row of zeros; a coalition renders the prompt with its
      absent words replaced by their substitutes (any number of words at once).
    * ``"single-mask"``: the study's released code (Kou et al., FSE 2024; notes: "the model
      function maps a coalition vector to the background text with an identical row (falling
      back to the first row)"). The background is the N single-word variants, in coalition space
      as that code built them (``single_mask_background``: row i is one-hot at word i), and the
      instance explained is all ones. Every coalition row shap evaluates, the background's own
      rows and the instance included, takes the variant of the first identical background row,
      or variant 0 when none is identical (``released_lookup``). So the model only ever sees
      single-word variants, never a multi-word change, and never the original prompt: the
      all-ones row matches no background row (for N > 1) and is variant 0, as in the released
      code. It is not special-cased to the original prompt, because the note (and the code it
      describes) does not, and because with one-hot rows all ones does not stand for "every
      word present" anyway. The values this gives are not an attribution of the prompt's words
      in the usual sense (solved exactly, with every row one-hot, word i's value is
      ``((N-1) f(variant 0) - sum over j != i of f(variant j)) / (N (N-1))``); the option exists
      to reproduce the study's numbers. Departure kept: a variant replaces word i by the setup's
      substitute (as ``bert_masking`` does, sharing its generations), where the released code
      generated from its word tokens joined by spaces with a literal "[MASK]" in place of word i.
    """

    shap_samples: int = 50
    shap_l1_reg: str = "none"  # none | aic | bic | num_features(N)
    shap_background: str = "absent"  # absent | single-mask
    description: ClassVar[str] = "shap KernelExplainer over word coalitions (50 samples), |value|"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.shap_samples < 1:
            raise InvalidArgumentError(f"shap_samples must be positive, got {self.shap_samples}")
        shap_l1_reg(self.shap_l1_reg)
        if self.shap_background not in SHAP_BACKGROUNDS:
            raise InvalidArgumentError(
                f"unknown shap_background {self.shap_background!r}: "
                f"use {' or '.join(SHAP_BACKGROUNDS)}"
            )
        if self.shap_background == "single-mask" and self.perturb_units != "word":
            raise InvalidArgumentError(
                "shap_background 'single-mask' reproduces the study's word-level SHAP: it takes "
                f"perturb_units 'word', not {self.perturb_units!r}"
            )

    def word_scores(self, setup):
        import logging
        import warnings

        import shap

        logging.getLogger("shap").setLevel(logging.ERROR)
        template = setup.template(with_substitutes=True)
        groups = setup.groups(self.perturb_units)
        owners = unit_owners(groups, len(template.words))
        count = len(groups)  # the players: prompt units (words by default)

        if self.shap_background == "single-mask":  # words only (checked when made)
            background, variants = single_mask_background(template)
            value = released_lookup(background, variants, setup)
        else:
            background = np.zeros((1, count))

            def value(coalitions: np.ndarray) -> np.ndarray:
                return setup.scores_for(template.render_all(np.asarray(coalitions)[:, owners]))

        explainer = shap.KernelExplainer(value, background)
        with warnings.catch_warnings():  # fewer samples than words: shap says it uses lstsq
            warnings.simplefilter("ignore")
            values = explainer.shap_values(
                np.ones((1, count)),
                nsamples=self.shap_samples,
                l1_reg=shap_l1_reg(self.shap_l1_reg),
                silent=True,
            )
        sizes = np.abs(np.asarray(values, dtype=float).reshape(-1)[:count])
        return spread(groups, sizes, len(template.words))


@dataclass(frozen=True)
class PartitionShap(Perturbation):
    partition_evals: int = 0  # 0: 8 x words (enough to resolve every leaf of the tree)
    description: ClassVar[str] = "shap Partition explainer over a word hierarchy, |value|"
    plannable: ClassVar[bool] = False  # which coalitions it evaluates depends on the outputs

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.partition_evals < 0:
            raise InvalidArgumentError(
                f"partition_evals must be 0 (automatic) or positive, got {self.partition_evals}"
            )

    def word_scores(self, setup):
        import shap
        from scipy.cluster.hierarchy import linkage

        template = setup.template(with_substitutes=False)
        groups = setup.groups(self.perturb_units)
        owners = unit_owners(groups, len(template.words))
        count = len(groups)  # the players: prompt units (words by default)
        if count == 1:  # one player (a word, or a unit of words): its value is leaving it out
            alone = setup.scores_for([template.render(np.zeros(len(template.words)))])
            return spread(groups, np.abs(alone), len(template.words))

        def value(coalitions: np.ndarray) -> np.ndarray:
            return setup.scores_for(template.render_all(np.asarray(coalitions)[:, owners]))

        # a hierarchy that merges neighbouring units first (as shap's own text masker does)
        words = template.words
        positions = np.array([[words[group[0]].start] for group in groups], dtype=float)
        masker = shap.maskers.Partition(
            np.zeros((1, count)), clustering=linkage(positions, "single")
        )
        explainer = shap.explainers.Partition(value, masker)
        budget = max(self.partition_evals or 8 * count, 2 * count + 1)
        explanation = explainer(np.ones((1, count)), max_evals=budget, silent=True)
        sizes = np.abs(np.asarray(explanation.values[0], dtype=float).reshape(-1)[:count])
        return spread(groups, sizes, len(template.words))


occlusion = Occlusion("occlusion")
bert_masking = BertMasking("bert_masking")
shap = KernelShap("shap")  # named as registered; the shap library is imported locally
shap_partition = PartitionShap("shap_partition")

METHODS: tuple[Method, ...] = (occlusion, bert_masking, shap, shap_partition)
