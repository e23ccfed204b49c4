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
full logits (``tests/test_likelihood.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from codefocus.errors import InvalidArgumentError
from codefocus.methods.base import Method, MethodInputs, TokenScores


def completion_logprobs(
    model, inputs: Sequence[str], completion_ids: Sequence[int], batch_size: int = 8
) -> np.ndarray:
    """``log p(completion_ids | input)`` for each input, teacher-forced, batched."""
    import torch

    completion = list(completion_ids)
    if not completion:
        return np.zeros(len(inputs))
    encoded = [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in inputs]
    pad = model.tokenizer.pad_token_id or 0
    head = model.model.get_output_embeddings()
    totals = np.zeros(len(inputs))
    order = sorted(range(len(inputs)), key=lambda i: len(encoded[i]))  # little padding
    for begin in range(0, len(order), batch_size):
        rows = order[begin : begin + batch_size]
        sequences = [encoded[i] + completion for i in rows]
        width = max(len(s) for s in sequences)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, sequence in enumerate(sequences):  # right padding: causal rows are unaffected
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        with torch.no_grad():
            hidden = model.model.base_model(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device)
            ).last_hidden_state
            target = torch.tensor(completion, device=hidden.device)
            for row, index in enumerate(rows):
                first = len(encoded[index]) - 1  # position P-1 produces completion token 0
                if first < 0:
                    raise InvalidArgumentError("an empty input has no likelihood to compare")
                logits = head(hidden[row, first : first + len(completion)]).double()
                values = torch.log_softmax(logits, -1).gather(1, target[:, None])
                totals[index] = float(values.sum())
    return totals


class Likelihood(Method):
    """Needs the model's weights (a teacher-forced pass) and the words of the task."""

    family: ClassVar[str] = "likelihood"

    def compute(self, inputs: MethodInputs) -> TokenScores:
        context = inputs.context(self.name)
        setup = inputs.setup(self.name)
        if not setup.words:
            return TokenScores(np.zeros(0), word_level=True)
        ids = list(context.completion_ids or [])

        def logprobs(prompts: list[str]) -> np.ndarray:
            return completion_logprobs(context.model, [p + setup.suffix for p in prompts], ids)

        return TokenScores(self.word_scores(setup, logprobs), word_level=True)

    def word_scores(self, setup, logprobs) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class LeaveOneOut(Likelihood):
    loo_mode: str = "substitute"  # substitute | delete
    description: ClassVar[str] = "leave-one-out change of the code's log-likelihood (new)"

    def __post_init__(self) -> None:
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
