"""``contextcite``: ContextCite (Cohen-Wang et al., 2024, "ContextCite: Attributing Model
Generation to Context") over the words of the task, as the authors' code computes it (github
MadryLab/context-cite at 0e646f5, the same code as the ``context-cite`` package 0.0.4 on PyPI,
MIT): ``ContextCiter`` with its defaults.

The published method (``contextcite_target="logit_prob"``, the default):

* **ablations**: ``contextcite_samples`` (64, their ``num_ablations``) masks over the sources;
  mask ``k`` is ``np.random.RandomState(k).choice([False, True], size=n, p=[0.5, 0.5])`` (their
  ``_create_mask``: one generator per mask, seeded with its index, each source kept with
  probability ``ablation_keep_prob`` = 1/2). An ablated source is removed from the context.
* **target**: the logit of the probability of the whole response given the ablated context,
  ``log p - log(1 - p)`` with ``log p`` the sum over the response's tokens of their
  log-probabilities (their ``aggregate_logit_probs(..., "logit_prob")`` sums
  ``logsigmoid`` of per-token logit-probabilities, which is ``log p(token)``, and then takes the
  logit of the sum; so the summed log-probability and the number of tokens are all it needs).
* **regression**: ``LassoRegression().fit``: ``y`` = target / number of response tokens, the
  masks standardised (sklearn ``StandardScaler``), ``Lasso(alpha=0.01, random_state=0,
  fit_intercept=True)`` with sklearn's other defaults; the weights are mapped back to 0/1 mask
  units (``coef_ / scale_``) and multiplied by the number of tokens. A word's score is its
  weight (the intercept is dropped): how much keeping the word raises the logit-probability of
  the code. ``contextcite_alpha`` is their ``lasso_alpha`` (0 fits ordinary least squares).

``tests/test_contextcite.py`` checks the whole computation against a plain re-implementation
of the authors' code and, where ``context-cite`` is installed, against the package's own
``ContextCiter`` given codefocus's sources, model input and code tokens (they agree within
2e-5 on the tiny models: float32). Where codefocus differs from ``ContextCiter``:

* **sources are the task's words** (``setup.words``: the scope's words), not sentences (their
  default, NLTK) nor spaCy tokens (their ``source_type="word"``: punctuation separate). With
  ``perturb_units`` (``sentence``, ``line``, ``statement``, ``token``: ``data/groups.py``) the
  sources are those units, each ablated with all its words and each word given its unit's
  weight; ``sentence`` is the closest to their default.
* **deleting a word** removes it and one space after it (``WordTemplate``: ``"a b c"`` less
  ``c`` is ``"a b "``); ``SimpleContextPartitioner`` joins the kept parts with the separator
  before each (``"a b"``), and drops the text before the first kept part.
* **the model input** is what every likelihood method scores, the task and its suffix as
  codefocus builds them; theirs is ``"Context: {context}\\n\\nQuery: {query}"`` in the chat
  template, the query never ablated. Text outside the scope's words plays the query's part.
* **the response** is the generated code's kept tokens (``completion_ids``; end-of-sequence
  not included); theirs is the re-tokenised generation, an end-of-sequence token included.
* **precision**: log-probabilities are float64 from the logits (theirs: float32, under CUDA
  autocast on a GPU), and the Lasso is fit in float64 (theirs: float32 masks).
* **a certain completion**: a sequence probability within float64 rounding of 1 (``log p``
  above ``-2**-52``) is taken as ``1 - 2**-52`` (logit 36.04); the package's logit is infinite
  there and its Lasso fails.
* **endpoints**: the target needs the number of the completion's tokens: the white-box
  ``completion_ids``, else the model's tokenizer, else a ``completion_token_count(text)``
  method of the model (an endpoint that returns prompt log-probabilities knows it). A model
  with none of them cannot run the published target (one-line error).
* **a contrast** (``attribute(..., contrast=...)``) makes every target a difference of
  log-probabilities, which has no logit: the published target refuses it (``takes_contrast`` is
  false) and the earlier surrogate below regresses the difference.

The earlier codefocus surrogate stays available as ``contextcite_target="logprob"``: masks from
``np.random.default_rng(0).integers(0, 2)``, the summed log-probability as target, standardised
(``(y - mean) / std``), ``Lasso(alpha, max_iter=10_000)`` on the raw masks, weights scaled back
to log-probability units. Its earlier results are reproduced with ``contextcite_samples=32``
(its earlier default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np

from codefocus.data.groups import check_unit, options_without_word_units, spread, unit_owners
from codefocus.errors import InvalidArgumentError
from codefocus.methods.base import Method
from codefocus.methods.likelihood import Likelihood

TARGETS = ("logit_prob", "logprob")
# log p above this is p = 1 within float64 rounding: the logit is taken there (36.04)
CERTAIN = -float(np.finfo(float).eps)


@dataclass(frozen=True)
class ContextCite(Likelihood):
    contextcite_samples: int = 64
    contextcite_alpha: float = 0.01
    contextcite_target: str = "logit_prob"  # logit_prob (published) | logprob (earlier codefocus)
    perturb_units: str = "word"  # the sources: word | token | line | sentence | statement
    description: ClassVar[str] = "ContextCite: Lasso surrogate of 64 random word ablations (new)"

    def __post_init__(self) -> None:
        super().__post_init__()
        samples = self.contextcite_samples
        if isinstance(samples, bool) or not isinstance(samples, Integral) or samples < 2:
            raise InvalidArgumentError(
                f"contextcite_samples must be an integer of at least 2, got {samples!r}"
            )
        alpha = self.contextcite_alpha
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, Real)
            or not math.isfinite(alpha)
            or alpha < 0
        ):
            raise InvalidArgumentError(f"contextcite_alpha must be a number >= 0, got {alpha!r}")
        if self.contextcite_target not in TARGETS:
            raise InvalidArgumentError(
                f"unknown contextcite_target {self.contextcite_target!r}: "
                f"use {' or '.join(TARGETS)}"
            )
        check_unit(self.perturb_units)

    def options(self) -> dict:
        return options_without_word_units(super().options())

    @property
    def takes_contrast(self) -> bool:  # type: ignore[override]
        """A contrast makes the target a difference of log-probabilities: the earlier surrogate
        regresses it; the published logit of a probability has no contrastive form."""
        return self.contextcite_target == "logprob"

    def masks(self, count: int) -> np.ndarray:
        """The ablations, one row each, 1 where the word is kept."""
        if self.contextcite_target == "logprob":
            rng = np.random.default_rng(0)
            return rng.integers(0, 2, size=(self.contextcite_samples, count))
        return published_masks(self.contextcite_samples, count)

    def word_scores(self, setup, logprobs) -> np.ndarray:
        """The weights of the sources (``perturb_units``: words by default), each word given its
        unit's weight; a unit is ablated with all its words."""
        template = setup.template(with_substitutes=False)
        groups = setup.groups(self.perturb_units)
        count = len(template.words)
        masks = self.masks(len(groups))
        texts = template.render_all(masks[:, unit_owners(groups, count)])
        return spread(groups, self.fit(masks, texts, setup, logprobs).tolist(), count)

    def fit(self, masks: np.ndarray, texts: list[str], setup, logprobs) -> np.ndarray:
        """One weight per mask column from the log-probabilities of the ablated ``texts``."""
        if self.contextcite_target == "logprob":
            return fit_surrogate(masks, logprobs(texts), self.contextcite_alpha)
        if getattr(logprobs, "contrast", None) is not None:
            raise InvalidArgumentError(
                "contextcite's published target, the logit of the code's probability, has no "
                "contrastive form: use contextcite_target='logprob' with a contrast"
            )
        tokens = completion_token_count(logprobs, setup)
        if tokens == 0:
            return np.zeros(masks.shape[1])
        targets = logit_probability(logprobs(texts))
        return fit_published(masks, targets, tokens, self.contextcite_alpha)


def published_masks(samples: int, count: int) -> np.ndarray:
    """The authors' ``_create_mask`` for seeds 0..samples-1, as 0/1 rows."""
    rows = [
        np.random.RandomState(seed).choice([False, True], size=count, p=[0.5, 0.5])
        for seed in range(samples)
    ]
    return np.array(rows, dtype=int).reshape(samples, count)


def logit_probability(logprobs: np.ndarray) -> np.ndarray:
    """``log(p / (1 - p))`` for each ``log p`` (float64; ``log p`` within rounding of 0 is
    taken as ``CERTAIN``)."""
    values = np.asarray(logprobs, dtype=float)
    bad = values[~np.isfinite(values) | (values > 1e-6)]
    if bad.size:
        raise InvalidArgumentError(
            "contextcite's logit_prob target needs finite log-probabilities (<= 0), got "
            f"{bad[0]:.4g}: use contextcite_target='logprob'"
        )
    values = np.minimum(values, CERTAIN)
    # log(1 - p) without cancellation: log(-expm1(l)) near 0, log1p(-exp(l)) below -log 2
    log_rest = np.where(values > -math.log(2), np.log(-np.expm1(values)), np.log1p(-np.exp(values)))
    return values - log_rest


def completion_token_count(logprobs, setup) -> int:
    """How many tokens the scored completion has (the published target is divided by it)."""
    ids = getattr(logprobs, "completion_ids", None)
    if ids is not None:
        return len(ids)
    model = getattr(logprobs, "model", None) or setup.model
    completion = getattr(logprobs, "completion", setup.completion)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is not None:
        return len(tokenizer(completion, add_special_tokens=False)["input_ids"])
    count = getattr(model, "completion_token_count", None)
    if count is not None:
        return int(count(completion))
    name = getattr(model, "name", type(model).__name__)
    raise InvalidArgumentError(
        f"{name} does not say how many tokens the code has, which contextcite's published "
        "target divides by: use contextcite_target='logprob'"
    )


def fit_published(masks: np.ndarray, targets: np.ndarray, tokens: int, alpha: float) -> np.ndarray:
    """The authors' ``LassoRegression.fit``: the weights of a Lasso of ``targets / tokens`` on
    the standardised masks, in 0/1 mask units, times ``tokens``."""
    from sklearn.linear_model import Lasso, LinearRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler()
    x = scaler.fit_transform(np.asarray(masks, dtype=float))
    y = np.asarray(targets, dtype=float) / tokens
    model = (
        Lasso(alpha=alpha, random_state=0, fit_intercept=True) if alpha > 0 else LinearRegression()
    )
    model.fit(x, y)
    return np.asarray(model.coef_, dtype=float) / scaler.scale_ * tokens


def fit_surrogate(masks: np.ndarray, targets: np.ndarray, alpha: float) -> np.ndarray:
    """The earlier surrogate (``contextcite_target="logprob"``): weights of a Lasso fit of
    ``targets`` on the ablation ``masks`` (target standardised, weights scaled back to
    log-probability units)."""
    from sklearn.linear_model import Lasso, LinearRegression

    scale = float(np.std(targets)) or 1.0
    centred = (targets - targets.mean()) / scale
    model = Lasso(alpha=alpha, max_iter=10_000) if alpha > 0 else LinearRegression()
    model.fit(masks.astype(float), centred)
    return np.asarray(model.coef_, dtype=float) * scale


contextcite = ContextCite("contextcite")

METHODS: tuple[Method, ...] = (contextcite,)
