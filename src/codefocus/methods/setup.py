"""What perturbation and likelihood methods compute from: the prompt as words that can be left
out (``WordTemplate``, the one place a word mask becomes a prompt) and the setup that regenerates
and scores perturbed prompts (``PerturbationSetup``).

Kept apart from the methods so that ``methods/base.py`` (``MethodInputs``) can name the setup
without importing the methods that use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from codefocus.data.groups import word_groups
from codefocus.data.units import Span, scoped_word_spans
from codefocus.generation.protocol import CompletionGenerator, as_completion_generator
from codefocus.generation.records import GenerationSettings
from codefocus.metrics.similarity import dissimilarity


@dataclass
class PerturbationSetup:
    """What the perturbation methods need besides the model's internals.

    ``generator`` regenerates perturbed inputs (a ``CompletionGenerator``: ``CachedGenerator``);
    a plain callable ``(inputs, budget, settings, original=...) -> completions``, such as a
    test's stand-in for a model, is wrapped as one that remembers nothing. ``contrast``: code
    read after the same model input as the completion (``api.contrast_for``); only the
    likelihood methods take it.
    """

    prompt: str
    suffix: str  # what follows the prompt in the model input (MBPP's function header)
    completion: str
    generator: CompletionGenerator
    budget: int
    settings: GenerationSettings
    similarity: str = "bleu"
    provider: str = "embedding"
    model: object = None
    scope: str = "study"  # which words are perturbed (data/units.py: scored_range)
    # code to contrast the completion with: the likelihood methods then explain
    # log p(completion | x) - log p(contrast | x) (``methods/likelihood.py``: CompletionScorer)
    contrast: str | None = None
    _words: list[Span] | None = field(default=None, repr=False)
    _substitutes: list[str] | None = field(default=None, repr=False)
    _groups: dict[str, list[list[int]]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.generator = as_completion_generator(self.generator)

    @property
    def words(self) -> list[Span]:
        if self._words is None:
            self._words = scoped_word_spans(self.prompt, self.scope)
        return self._words

    def groups(self, unit: str = "word") -> list[list[int]]:
        """The words as groups of their indices, one group per prompt unit (``data/groups.py``:
        ``word``, ``token``, ``line``, ``sentence``, ``statement``); ``token`` reads the model's
        tokens of the prompt as the model reads it (with the suffix), so it needs a white-box
        model."""
        if unit not in self._groups:
            tokens = None
            if unit == "token":
                from codefocus.errors import InvalidArgumentError
                from codefocus.models.base import is_white_box

                if not is_white_box(self.model):
                    name = getattr(self.model, "name", type(self.model).__name__)
                    raise InvalidArgumentError(
                        f"perturb_units 'token' needs a white-box model's tokens; {name} has none"
                    )
                end = len(self.prompt)
                offsets = self.model.encode(self.prompt + self.suffix).offsets
                tokens = [Span(s, min(e, end)) for s, e in offsets if s < end]
            self._groups[unit] = word_groups(self.prompt, self.words, unit, tokens)
        return self._groups[unit]

    def substitutes(self) -> list[str]:
        if self._substitutes is None:
            from codefocus.methods.substitutes import get_provider, substitute_word

            provider = get_provider(self.provider, self.model)
            self._substitutes = [substitute_word(provider, self.prompt, w) for w in self.words]
        return self._substitutes

    def template(self, with_substitutes: bool) -> WordTemplate:
        """The prompt as words that can be left out: deleted, or replaced by substitutes."""
        return WordTemplate(
            self.prompt, self.words, self.substitutes() if with_substitutes else None
        )

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


@dataclass(frozen=True)
class WordTemplate:
    """A prompt as a sequence of words, each present or absent; an absent word takes its
    substitute (``substitutes`` given) or is deleted."""

    prompt: str
    words: list[Span]
    substitutes: Sequence[str] | None = None

    def absent(self, index: int) -> str:
        return "" if self.substitutes is None else self.substitutes[index]

    def changes(self, index: int) -> bool:
        """Whether leaving word ``index`` out changes the prompt at all."""
        span = self.words[index]
        return self.absent(index) != self.prompt[span.start : span.end]

    def without(self, index: int) -> str:
        """The prompt with one word left out."""
        return rebuild(self.prompt, self.words, {index: self.absent(index)})

    def group_changes(self, group: Sequence[int]) -> bool:
        """Whether leaving the words of ``group`` out changes the prompt at all."""
        return any(self.changes(i) for i in group)

    def without_group(self, group: Sequence[int]) -> str:
        """The prompt with the words of ``group`` left out together (one word: ``without``)."""
        return rebuild(self.prompt, self.words, {int(i): self.absent(int(i)) for i in group})

    def render(self, present: np.ndarray) -> str:
        """The prompt with the words where ``present`` is 0 left out."""
        absent = np.flatnonzero(np.asarray(present) == 0)
        return rebuild(self.prompt, self.words, {int(i): self.absent(int(i)) for i in absent})

    def render_all(self, masks: np.ndarray) -> list[str]:
        return [self.render(row) for row in masks]
