"""``contextcite`` (methods/contextcite.py): the published ContextCite against a plain
re-implementation of the authors' code (one unbatched forward per ablation, full logits), and
against the ``context-cite`` package itself where it is installed (not a dependency: the test
skips without it); the earlier surrogate (``contextcite_target="logprob"``) against its naive
fit; the option checks."""

import copy
import math

import numpy as np
import pytest
import torch
from reference import naive_logprob

from codefocus import attribute
from codefocus.errors import InvalidArgumentError
from codefocus.methods import GROUPS, resolve_methods
from codefocus.methods.contextcite import fit_surrogate, logit_probability
from codefocus.methods.setup import WordTemplate

PROMPT = "Write a function that returns the largest even number in a list of numbers."


@pytest.fixture(scope="module", params=["qwen2", "gpt2"])
def model(request, tiny_model_factory):
    return tiny_model_factory(request.param, seed=3)


def generated_ids(model, prompt: str = PROMPT) -> list[int]:
    (generation,) = model.generate([prompt], max_new_tokens=model.default_max_new_tokens(None))
    return list(generation.token_ids)


def naive_deleted(prompt: str, words, keep) -> str:
    """The prompt less the words where ``keep`` is false, each with one space after it."""
    out, cursor = "", 0
    for word, kept in zip(words, keep, strict=True):
        if kept:
            continue
        end = word.end + (1 if prompt[word.end : word.end + 1] == " " else 0)
        out += prompt[cursor : word.start]
        cursor = end
    return out + prompt[cursor:]


def naive_published(model, prompt, words, completion_ids, samples=64, alpha=0.01, sources=None):
    """ContextCite as the authors' code computes it (context_cite/utils.py and solver.py at
    0e646f5), written out in loops: their masks, their per-token logit-probabilities from one
    forward each, their logit_prob aggregate, their standardised Lasso. ``sources``: groups of
    word indices, each ablated whole (default: one source per word)."""
    from sklearn.linear_model import Lasso

    sources = sources or [[i] for i in range(len(words))]
    masks = []
    for seed in range(samples):  # _create_mask(num_sources, alpha=0.5, seed)
        random = np.random.RandomState(seed)
        masks.append(random.choice([False, True], size=len(sources), p=[0.5, 0.5]))
    outputs = []
    for mask in masks:
        keep = [bool(mask[j]) for i in range(len(words)) for j, s in enumerate(sources) if i in s]
        ids = model.tokenizer(naive_deleted(prompt, words, keep), add_special_tokens=False)
        ids = ids["input_ids"]
        with torch.no_grad():
            logits = model.model(torch.tensor([ids + completion_ids])).logits[0].double()
        logit_probs = []
        for j, token in enumerate(completion_ids):  # _compute_logit_probs
            row = logits[len(ids) - 1 + j].clone()
            correct = row[token].clone()
            row[token] = -math.inf
            logit_probs.append(float(correct - torch.logsumexp(row, -1)))
        log_prob = float(torch.nn.functional.logsigmoid(torch.tensor(logit_probs)).sum())
        log_prob = min(log_prob, -np.finfo(float).eps)  # codefocus's one departure: certainty
        outputs.append(log_prob - math.log1p(-math.exp(log_prob)))  # "logit_prob"
    x = np.array(masks, dtype=float)
    n = len(completion_ids)
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1.0
    lasso = Lasso(alpha=alpha, random_state=0, fit_intercept=True)
    lasso.fit((x - mean) / scale, np.array(outputs) / n)
    return lasso.coef_ / scale * n


# On the tiny random models the default alpha (0.01 on the logit per code token) keeps no word,
# so the comparisons use a smaller one
ALPHA = 1e-4


def test_published_default_equals_the_authors_method_written_out(model):
    options = {"contextcite_alpha": ALPHA}
    result = attribute(model, PROMPT, "contextcite", scope="prompt", method_options=options)
    ids = generated_ids(model)
    want = naive_published(model, PROMPT, result.words, ids, alpha=ALPHA)
    got = result.word_scores["contextcite"]
    assert np.abs(want).max() > 0.05  # the Lasso kept some words: the comparison means something
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert result.settings["methods"]["contextcite"] == {
        "contextcite_samples": 64,
        "contextcite_alpha": ALPHA,
        "contextcite_target": "logit_prob",
    }


# six lines: none of the 64 published masks ablates them all (an empty context the written-out
# reference cannot score; with three lines, 9 of the 64 masks would)
LINES = "\n".join(  # no final newline: after one, the tiny Qwen2 writes nothing
    (
        "Write a function that takes a list of numbers.",
        "It returns the largest even number.",
        "Return None when the list has no even number.",
        "Negative numbers count as well.",
        "Do not sort the list.",
        "Zero is even.",
    )
)


def test_sources_can_be_lines_each_ablated_whole(model):
    """perturb_units=line: ContextCite's sources are the prompt's lines (the authors' method
    over six sources), every word scored with its line's weight."""
    options = {"contextcite_alpha": ALPHA, "perturb_units": "line"}
    result = attribute(model, LINES, "contextcite", scope="prompt", method_options=options)
    starts = [i for i, c in enumerate(LINES) if i == 0 or LINES[i - 1] == "\n"]
    ends = [*starts[1:], len(LINES)]
    lines = [
        [i for i, w in enumerate(result.words) if a <= w.start < b]
        for a, b in zip(starts, ends, strict=True)
    ]
    assert sum(map(len, lines)) == len(result.words)
    weights = naive_published(
        model, LINES, result.words, generated_ids(model, LINES), alpha=ALPHA, sources=lines
    )
    want = np.zeros(len(result.words))
    for line, weight in zip(lines, weights, strict=True):
        want[line] = weight
    assert len(lines) == 6 and np.abs(want).max() > 0.05
    np.testing.assert_allclose(result.word_scores["contextcite"], want, rtol=1e-3, atol=1e-4)
    assert result.settings["methods"]["contextcite"]["perturb_units"] == "line"
    words = attribute(
        model, LINES, "contextcite", scope="prompt", method_options={"contextcite_alpha": ALPHA}
    )
    assert "perturb_units" not in words.settings["methods"]["contextcite"]  # words: as before
    assert len(set(words.word_scores["contextcite"])) > 6


def test_published_default_equals_the_context_cite_package(model, monkeypatch):
    """The package's own ContextCiter (masks, forwards, aggregate, solver), given codefocus's
    sources, model input and completion tokens; runs where ``context-cite`` is installed."""
    import nltk

    monkeypatch.setattr(nltk, "download", lambda *args, **kwargs: False)  # at import, offline
    context_cite = pytest.importorskip("context_cite")
    from context_cite.context_partitioner import BaseContextPartitioner
    from context_cite.solver import LassoRegression

    options = {"contextcite_alpha": ALPHA}
    result = attribute(model, PROMPT, "contextcite", scope="prompt", method_options=options)
    ids = generated_ids(model)
    words = result.words

    class Words(BaseContextPartitioner):
        num_sources = len(words)

        def split_context(self):
            pass

        def get_source(self, index):
            return PROMPT[words[index].start : words[index].end]

        def get_context(self, mask=None):
            return naive_deleted(PROMPT, words, np.ones(len(words), bool) if mask is None else mask)

    class Citer(context_cite.ContextCiter):
        def _get_prompt_ids(self, mask=None, return_prompt=False):
            prompt = self.partitioner.get_context(mask)
            prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
            return (prompt_ids, prompt) if return_prompt else prompt_ids

        @property
        def _response_ids(self):
            return ids

    tokenizer = copy.deepcopy(model.tokenizer)  # ContextCiter may set its pad token
    solver = LassoRegression(ALPHA)
    citer = Citer(model.model, tokenizer, PROMPT, "", partitioner=Words(PROMPT), solver=solver)
    theirs, _bias = citer._get_attributions_for_ids_range(0, len(ids))
    assert citer.num_ablations == 64
    got = result.word_scores["contextcite"]
    assert np.abs(theirs).max() > 0.05
    # theirs is float32 throughout
    np.testing.assert_allclose(got, theirs, rtol=1e-3, atol=1e-3 * np.abs(theirs).max())


class StandIn:
    """A stand-in setup: the prompt "w0 w1 ... w11"."""

    prompt = " ".join(f"w{i}" for i in range(12))
    completion = "return 1"
    model = None

    def template(self, with_substitutes):
        from codefocus.data.units import word_spans

        return WordTemplate(self.prompt, word_spans(self.prompt))

    def groups(self, unit):
        assert unit == "word"
        return [[i] for i in range(12)]


class PlantedScorer:
    """log p(code) whose logit is linear in the words kept: 1 + 3 [w2 kept] - 2 [w7 kept]."""

    def __init__(self, completion_ids=(5, 6, 7, 8)):
        self.completion_ids = completion_ids

    def __call__(self, prompts):
        logits = np.array([1 + 3 * ("w2" in p.split()) - 2 * ("w7" in p.split()) for p in prompts])
        return -np.log1p(np.exp(-logits))  # log sigmoid: log p


def test_the_published_target_is_the_logit_of_the_sequence_probability():
    (method,) = resolve_methods("contextcite", contextcite_alpha=1e-4)
    scores = method.word_scores(StandIn(), PlantedScorer())
    np.testing.assert_allclose(scores[[2, 7]], [3.0, -2.0], atol=0.02)
    np.testing.assert_allclose(np.delete(scores, [2, 7]), 0.0, atol=0.02)
    # the same ablations regressed on log p instead: not the planted weights
    options = {"contextcite_alpha": 1e-4, "contextcite_target": "logprob"}
    (earlier,) = resolve_methods("contextcite", **options)
    assert np.abs(earlier.word_scores(StandIn(), PlantedScorer())[[2, 7]] - [3, -2]).max() > 0.5


def test_logit_probability_is_exact_and_finite_at_certainty():
    p = np.array([1e-300, 1e-12, 0.3, 0.5, 0.9, 1 - 1e-9])
    np.testing.assert_allclose(logit_probability(np.log(p)), np.log(p / (1 - p)), rtol=1e-9)
    certain = logit_probability(np.array([0.0, -1e-20]))
    np.testing.assert_allclose(certain, -math.log(np.finfo(float).eps), rtol=1e-9)  # 36.04
    with pytest.raises(InvalidArgumentError, match="logit_prob") as error:
        logit_probability(np.array([-1.0, 0.5]))
    assert "\n" not in str(error.value)


def test_the_token_count_comes_from_the_model_or_fails_in_one_line():
    class Endpoint:
        name = "endpoint"

    class Counting(Endpoint):
        def completion_token_count(self, text):
            return 4

    class Scorer(PlantedScorer):
        def __init__(self, model):
            super().__init__(None)
            self.model = model
            self.completion = "return 1"

    (method,) = resolve_methods("contextcite")
    want = method.word_scores(StandIn(), PlantedScorer())
    np.testing.assert_allclose(method.word_scores(StandIn(), Scorer(Counting())), want)
    with pytest.raises(InvalidArgumentError, match="endpoint does not say how many tokens") as e:
        method.word_scores(StandIn(), Scorer(Endpoint()))
    assert "\n" not in str(e.value)
    (earlier,) = resolve_methods("contextcite", contextcite_target="logprob")
    assert earlier.word_scores(StandIn(), Scorer(Endpoint())).shape == (12,)


def test_only_the_earlier_surrogate_takes_a_contrast(model):
    with pytest.raises(InvalidArgumentError, match="cannot take a contrast") as error:
        attribute(model, PROMPT, "contextcite", scope="prompt", contrast="    return 0\n")
    assert "\n" not in str(error.value)

    class Contrasted(PlantedScorer):
        contrast = "    return 0\n"

    (method,) = resolve_methods("contextcite")
    with pytest.raises(InvalidArgumentError, match="no contrastive form") as error:
        method.word_scores(StandIn(), Contrasted())
    assert "\n" not in str(error.value)
    options = {"contextcite_target": "logprob", "contextcite_samples": 8}
    contrast = "    return 0\n"
    result = attribute(
        model, PROMPT, "contextcite", scope="prompt", contrast=contrast, method_options=options
    )
    assert np.all(np.isfinite(result.word_scores["contextcite"]))


def test_the_earlier_surrogate_equals_a_naive_surrogate_fit(model):
    options = {"contextcite_samples": 24, "contextcite_target": "logprob"}
    (method,) = resolve_methods("contextcite", **options)
    result = attribute(model, PROMPT, "contextcite", scope="prompt", method_options=options)
    ids = generated_ids(model)
    template = WordTemplate(PROMPT, result.words)
    masks = method.masks(len(result.words))
    np.testing.assert_array_equal(
        masks, np.random.default_rng(0).integers(0, 2, size=(24, len(result.words)))
    )
    targets = np.array([naive_logprob(model, template.render(m), ids) for m in masks])
    want = fit_surrogate(masks, targets, 0.01)
    np.testing.assert_allclose(result.word_scores["contextcite"], want, rtol=1e-3, atol=1e-4)


def test_the_surrogate_recovers_a_planted_linear_effect():
    rng = np.random.default_rng(1)
    masks = rng.integers(0, 2, size=(64, 12))
    weights = np.zeros(12)
    weights[[2, 7]] = [3.0, -2.0]
    targets = masks @ weights - 5.0
    fitted = fit_surrogate(masks, targets, 0.001)
    assert set(np.argsort(-np.abs(fitted))[:2]) == {2, 7}
    np.testing.assert_allclose(fitted[[2, 7]], [3.0, -2.0], atol=0.05)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("contextcite_target", "logit"),
        ("contextcite_target", 1),
        ("contextcite_samples", 1),
        ("contextcite_samples", "64"),
        ("contextcite_samples", True),
        ("contextcite_samples", 64.5),
        ("contextcite_alpha", -0.1),
        ("contextcite_alpha", float("nan")),
        ("contextcite_alpha", "0.01"),
    ],
)
def test_bad_options_fail_in_one_line(option, value):
    with pytest.raises(InvalidArgumentError, match=option) as error:
        resolve_methods("contextcite", **{option: value})
    assert "\n" not in str(error.value)
    from codefocus.options import AttributionOptions

    with pytest.raises(InvalidArgumentError, match=option) as error:
        AttributionOptions(method_options={option: value})
    assert "\n" not in str(error.value)


def test_contextcite_is_a_likelihood_method_with_the_published_defaults():
    assert "contextcite" in GROUPS["likelihood"]()
    (method,) = resolve_methods("contextcite")
    assert (method.contextcite_samples, method.contextcite_alpha) == (64, 0.01)
    assert method.contextcite_target == "logit_prob"
