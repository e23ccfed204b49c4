"""Likelihood methods (new, not in Kou et al.): how much the model's belief in its own code
changes when words of the task change — no regeneration, one teacher-forced pass per prompt.

* ``loo_logprob``: leave one word out — ``log p(code | task) - log p(code | task with word i
  substituted)`` (or deleted: ``loo_mode="delete"``). The leave-one-out measure AttriBoT
  (Liu et al., 2024) accelerates; positive means the word supports the code the model wrote.
* ``contextcite``: a surrogate model in the style of ContextCite (Cohen-Wang et al., 2024):
  ``contextcite_samples`` random word ablations (each word kept with probability 1/2, absent
  words deleted), the log-probability of the original code under each, and a sparse linear
  model (scikit-learn's Lasso, ``contextcite_alpha`` on the standardised target) fit to them;
  a word's score is its weight.

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
from typing import TYPE_CHECKING, ClassVar

import numpy as np

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
class Likelihood(Method):
    """Needs the model's weights (a teacher-forced pass) and the words of the task."""

    max_memory: int | None = None  # bytes; bounds the rows of each teacher-forced forward
    family: ClassVar[str] = "likelihood"

    def __post_init__(self) -> None:
        check_max_memory(self.max_memory)

    def options(self) -> dict:
        return options_without_budget(super().options())

    def compute(self, inputs: MethodInputs) -> TokenScores:
        context = inputs.context(self.name)
        setup = inputs.setup(self.name)
        if not setup.words:
            return TokenScores(np.zeros(0), word_level=True)
        ids = list(context.completion_ids or [])

        def logprobs(prompts: list[str]) -> np.ndarray:
            texts = [p + setup.suffix for p in prompts]
            original = setup.prompt + setup.suffix
            return completion_logprobs(
                context.model, texts, ids, original=original, max_memory=self.max_memory
            )

        return TokenScores(self.word_scores(setup, logprobs), word_level=True)

    def word_scores(self, setup, logprobs) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class LeaveOneOut(Likelihood):
    loo_mode: str = "substitute"  # substitute | delete
    description: ClassVar[str] = "leave-one-out change of the code's log-likelihood (new)"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loo_mode not in ("substitute", "delete"):
            raise InvalidArgumentError(
                f"unknown loo_mode {self.loo_mode!r}: use substitute or delete"
            )

    def word_scores(self, setup, logprobs) -> np.ndarray:
        template = setup.template(with_substitutes=self.loo_mode == "substitute")
        count = len(template.words)
        values = logprobs([setup.prompt, *(template.without(i) for i in range(count))])
        return values[0] - values[1:]


@dataclass(frozen=True)
class ContextCite(Likelihood):
    contextcite_samples: int = 32
    contextcite_alpha: float = 0.01
    description: ClassVar[str] = "sparse linear surrogate of random word ablations (new)"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.contextcite_samples < 2:
            raise InvalidArgumentError(
                f"contextcite_samples must be at least 2, got {self.contextcite_samples}"
            )
        if self.contextcite_alpha < 0:
            raise InvalidArgumentError(
                f"contextcite_alpha must be 0 or more, got {self.contextcite_alpha}"
            )

    def masks(self, count: int) -> np.ndarray:
        """The ablations: seeded, each word kept with probability 1/2."""
        rng = np.random.default_rng(0)
        return rng.integers(0, 2, size=(self.contextcite_samples, count))

    def word_scores(self, setup, logprobs) -> np.ndarray:
        template = setup.template(with_substitutes=False)
        masks = self.masks(len(template.words))
        targets = logprobs(template.render_all(masks))
        return fit_surrogate(masks, targets, self.contextcite_alpha)


def fit_surrogate(masks: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """Weights of a Lasso fit of ``targets`` on the ablation ``masks`` (target standardised,
    weights scaled back to log-probability units)."""
    from sklearn.linear_model import Lasso, LinearRegression

    scale = float(np.std(targets)) or 1.0
    centred = (targets - targets.mean()) / scale
    model = Lasso(alpha=alpha, max_iter=10_000) if alpha > 0 else LinearRegression()
    model.fit(masks.astype(float), centred)
    return np.asarray(model.coef_, dtype=float) * scale


loo_logprob = LeaveOneOut("loo_logprob")
contextcite = ContextCite("contextcite")

METHODS: tuple[Method, ...] = (loo_logprob, contextcite)
