"""Likelihood methods (new, not in Kou et al.): how much the model's belief in its own code
changes when words of the task change — no regeneration, one teacher-forced pass per prompt.
(``contextcite``, the surrogate fit to random ablations, is in ``methods/contextcite.py``.)

* ``loo_logprob``: leave one word out — ``log p(code | task) - log p(code | task with word i
  substituted)`` (or deleted: ``loo_mode="delete"``). The leave-one-out measure AttriBoT
  (Liu et al., 2024) accelerates; positive means the word supports the code the model wrote.

Contrastive (``attribute(..., contrast=...)``): every log-probability above becomes the
difference ``log p(code | x) - log p(contrast | x)`` (``CompletionScorer``), so a positive score
means the word pushes the model toward its own code rather than the contrast.

``log p(code | input)`` is the sum over the generated tokens of their log-softmax at the
positions that produce them (``completion_logprobs``), computed for a batch of inputs in one
right-padded forward each. Both are checked against one unbatched forward per prompt with the
full logits (``tests/test_likelihood.py``). The log-softmax and its sum are taken in float64
whatever the model's dtype. ``max_memory`` (bytes, a method option) bounds the rows of each
forward by the estimates of ``generation/memory.py`` (at most ``batch_size``); a batch's
composition changes a log-probability only by float rounding (the padding differs), never the
ranking the methods compare.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from codefocus.data.groups import check_unit, options_without_word_units, spread
from codefocus.errors import InvalidArgumentError
from codefocus.generation.memory import (
    ModelShape,
    check_max_memory,
    options_without_budget,
    rows_within,
)
from codefocus.methods.base import Method, MethodInputs, TokenScores

if TYPE_CHECKING:
    from codefocus.models.base import WhiteBoxModel


def completion_logprobs(
    model: WhiteBoxModel,
    inputs: Sequence[str],
    completion_ids: Sequence[int],
    batch_size: int = 8,
    original: str | None = None,
    max_memory: int | None = None,
) -> np.ndarray:
    """``log p(completion_ids | input)`` for each input, teacher-forced, batched. With
    ``original`` (the unperturbed input), each input's common prefix with it is read from the
    original's keys and values instead of being recomputed (``generation/prefix.py``). With
    ``max_memory``, at most as many rows per forward as fit in it (and ``batch_size``)."""
    import torch

    from codefocus.generation.prefix import forward_from_prefix, prefix_cache, shared_prefix

    completion = list(completion_ids)
    if not completion:
        return np.zeros(len(inputs))
    encoded = [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in inputs]
    if any(not ids for ids in encoded):
        raise InvalidArgumentError("an empty input has no likelihood to compare")
    cache, shared = None, [0] * len(inputs)
    if original is not None:
        original_ids = model.tokenizer(original, add_special_tokens=False)["input_ids"]
        cache = prefix_cache(model, original_ids)
        shared = [shared_prefix(ids, original_ids) for ids in encoded]
    if max_memory is not None:
        shape = ModelShape.of_model(model)
        longest = max(len(ids) for ids in encoded) + len(completion)
        least = min(shared) if original is not None else 0
        # per row: its forward past the shared prefix; fixed: the original's keys and values,
        # and one row's completion logits in the model's dtype and two float64 copies
        per_row = shape.forward_row(longest - least, least, predicted=0)
        fixed = shape.cache(longest) + len(completion) * shape.vocab * (shape.element + 16)
        batch_size = rows_within(max_memory, per_row, fixed, batch_size)
    totals = np.zeros(len(inputs))
    # neighbours in this order share the longest prefixes with the original
    order = sorted(range(len(inputs)), key=lambda i: (shared[i], len(encoded[i])))
    for begin in range(0, len(order), batch_size):
        rows = order[begin : begin + batch_size]
        start = min(shared[i] for i in rows)
        with torch.no_grad():
            hidden = forward_from_prefix(
                model, [encoded[i] + completion for i in rows], cache, start
            )
            target = torch.tensor(completion, device=hidden.device)
            for row, index in enumerate(rows):
                first = len(encoded[index]) - 1 - start  # position P-1 produces token 0
                logits = model.logits(hidden[row, first : first + len(completion)]).double()
                values = torch.log_softmax(logits, -1).gather(1, target[:, None])
                totals[index] = float(values.sum())
    return totals


@dataclass(frozen=True)
class CompletionScorer:
    """``log p(completion | prompt + suffix)`` for each of many variants of one prompt: the one
    quantity the likelihood methods, the contrastive targets and the faithfulness metrics compare.

    A white-box model computes it teacher-forced (``completion_logprobs``, the generated ids when
    known, the original prompt's keys and values reused); any other model must offer
    ``completion_logprobs(texts, completion)`` (an ``EndpointModel`` asks its server), or the
    call fails with one line naming what is missing.

    With a ``contrast`` (code read after the same input), the target is contrastive:
    ``log p(completion | x) - log p(contrast | x)`` for each variant ``x``, the contrast scored as
    its tokenised text (or ``contrast_ids``), in the same way as the completion.
    """

    model: Any
    completion: str
    completion_ids: tuple[int, ...] | None = None
    suffix: str = ""  # what follows the prompt in the model input (MBPP's function header)
    original: str | None = None  # the unperturbed prompt: its prefix is computed once
    max_memory: int | None = None
    contrast: str | None = None  # code to contrast with: the target becomes a difference
    contrast_ids: tuple[int, ...] | None = None

    def __call__(self, prompts: Sequence[str]) -> np.ndarray:
        texts = [p + self.suffix for p in prompts]
        own = self._logprobs(texts, self.completion, self.completion_ids)
        if self.contrast is None:
            return own
        return own - self._logprobs(texts, self.contrast, self.contrast_ids)

    def _logprobs(self, texts: list[str], code: str, ids: tuple[int, ...] | None) -> np.ndarray:
        """``log p(code | text)`` for each text."""
        from codefocus.models.base import is_white_box

        if is_white_box(self.model):
            if ids is None:
                ids = tuple(self.model.tokenizer(code, add_special_tokens=False)["input_ids"])
            original = None if self.original is None else self.original + self.suffix
            return completion_logprobs(
                self.model, texts, ids, original=original, max_memory=self.max_memory
            )
        score = getattr(self.model, "completion_logprobs", None)
        if score is None:
            name = getattr(self.model, "name", type(self.model).__name__)
            raise InvalidArgumentError(
                f"{name} cannot score the log-probability of given code: the likelihood "
                "methods need a white-box model or an endpoint that returns prompt "
                "log-probabilities"
            )
        return np.asarray(score(texts, code), dtype=float)


def scorer_for(inputs: MethodInputs, max_memory: int | None = None) -> CompletionScorer:
    """The scorer of the run's own completion under variants of its prompt (contrasted with the
    setup's ``contrast`` when it has one)."""
    setup = inputs.perturbation
    if setup is None:
        raise InvalidArgumentError("the likelihood methods need a perturbation setup")
    context = inputs.white_box
    ids = None
    if context is not None and context.completion_ids:
        ids = tuple(context.completion_ids)
    model = context.model if context is not None else setup.model
    contrast = setup.contrast
    if contrast is not None and not contrast:
        raise InvalidArgumentError("the contrast is empty: give code to contrast with")
    # the completion itself as the contrast is scored as the very same tokens (a zero target)
    contrast_ids = ids if contrast == setup.completion else None
    return CompletionScorer(
        model,
        setup.completion,
        ids,
        setup.suffix,
        setup.prompt,
        max_memory=max_memory,
        contrast=contrast,
        contrast_ids=contrast_ids,
    )


@dataclass(frozen=True)
class Likelihood(Method):
    """Needs the model's weights (a teacher-forced pass) and the words of the task."""

    max_memory: int | None = None  # bytes; bounds the rows of each teacher-forced forward
    family: ClassVar[str] = "likelihood"
    # a model behind an endpoint that returns prompt log-probabilities can run these too
    needs_white_box: ClassVar[bool] = False
    # a contrast (``attribute(contrast=...)``) makes the target log p(code) - log p(contrast)
    takes_contrast: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_max_memory(self.max_memory)

    def options(self) -> dict:
        return options_without_budget(super().options())

    def compute(self, inputs: MethodInputs) -> TokenScores:
        setup = inputs.setup(self.name)
        if not setup.words:
            return TokenScores(np.zeros(0), word_level=True)
        return TokenScores(
            self.word_scores(setup, scorer_for(inputs, self.max_memory)), word_level=True
        )

    def word_scores(self, setup, logprobs) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class LeaveOneOut(Likelihood):
    """Leaves one prompt unit out at a time: a word by default; with ``perturb_units`` (``line``,
    ``sentence``, ``statement``, ``token``: ``data/groups.py``) the words of one unit together,
    each word scored with its unit's change. One scored prompt per unit, and the original."""

    loo_mode: str = "substitute"  # substitute | delete
    perturb_units: str = "word"  # word | token | line | sentence | statement
    description: ClassVar[str] = "leave-one-out change of the code's log-likelihood (new)"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loo_mode not in ("substitute", "delete"):
            raise InvalidArgumentError(
                f"unknown loo_mode {self.loo_mode!r}: use substitute or delete"
            )
        check_unit(self.perturb_units)

    def options(self) -> dict:
        return options_without_word_units(super().options())

    def word_scores(self, setup, logprobs) -> np.ndarray:
        template = setup.template(with_substitutes=self.loo_mode == "substitute")
        groups = setup.groups(self.perturb_units)
        values = logprobs([setup.prompt, *(template.without_group(g) for g in groups)])
        return spread(groups, values[0] - values[1:], len(template.words))


loo_logprob = LeaveOneOut("loo_logprob")

METHODS: tuple[Method, ...] = (loo_logprob,)
