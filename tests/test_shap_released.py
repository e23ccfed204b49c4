"""KernelShap's ``shap_background``: ``absent`` (unchanged) and ``single-mask`` (the study's
released code: single-word variants as background, coalitions looked up among them)."""

import numpy as np
import pytest
from reference import exact_shapley

from codefocus.errors import InvalidArgumentError
from codefocus.generation.records import GenerationSettings
from codefocus.methods import OPTION_NAMES, MethodInputs, resolve_methods
from codefocus.methods.perturbation import (
    KernelShap,
    _seeded,
    shap_l1_reg,
    single_mask_background,
)
from codefocus.methods.setup import PerturbationSetup, rebuild
from codefocus.metrics.similarity import dissimilarity

PROMPT = "Write a function to find the largest even number in a list."
LONG = (
    "Write a function that takes a list of integers and returns the sum of the squares of the "
    "even numbers that appear before the first negative number in that list"
)


class KeywordCoder:
    """Code that depends only on the words "even" and "largest"."""

    def __call__(self, inputs, budget, settings=None, original=None):
        out = []
        for text in inputs:
            lines = ["def f(xs):", "    ys = [x for x in xs]"]
            if "even" in text:
                lines.append("    ys = [x for x in ys if x % 2 == 0]")
            lines.append("    return max(ys)" if "largest" in text else "    return ys")
            out.append("\n".join(lines) + "\n")
        return out


class EchoCoder:
    """One line per word of the task: every word changes the code."""

    def __call__(self, inputs, budget, settings=None, original=None):
        return ["\n".join(f"v_{w} = {i}" for i, w in enumerate(t.split())) + "\n" for t in inputs]


class Recording:
    def __init__(self, inner):
        self.inner, self.asked = inner, []

    def __call__(self, inputs, budget, settings=None, original=None):
        self.asked.extend(inputs)
        return self.inner(inputs, budget, settings, original)


def _setup(prompt, generator, **kwargs):
    return PerturbationSetup(
        prompt=prompt,
        suffix="",
        completion=generator([prompt], 10)[0],
        generator=generator,
        budget=10,
        settings=GenerationSettings(),
        **kwargs,
    )


def _scores(setup, **options):
    (method,) = resolve_methods("shap", **options)
    return method.compute(MethodInputs(perturbation=setup)).scores


def _variants(setup):
    """Word i replaced by its substitute, one variant per word (built here, independently)."""
    substitutes = setup.substitutes()
    return [rebuild(setup.prompt, setup.words, {i: s}) for i, s in enumerate(substitutes)]


def _old_kernel_shap(setup, samples=50, l1="none"):
    """KernelShap.word_scores as it was before ``shap_background`` (all-absent background)."""
    import logging
    import warnings

    import shap

    logging.getLogger("shap").setLevel(logging.ERROR)
    template = setup.template(with_substitutes=True)
    count = len(template.words)

    def value(coalitions):
        return setup.scores_for(template.render_all(coalitions))

    with _seeded():
        explainer = shap.KernelExplainer(value, np.zeros((1, count)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = explainer.shap_values(
                np.ones((1, count)), nsamples=samples, l1_reg=shap_l1_reg(l1), silent=True
            )
    return np.abs(np.asarray(values, dtype=float).reshape(-1)[:count])


@pytest.mark.parametrize(
    ("prompt", "coder"), [(PROMPT, KeywordCoder), (LONG, EchoCoder)], ids=["keyword", "echo"]
)
def test_single_mask_asks_only_for_single_word_variants(prompt, coder):
    recording = Recording(coder())
    setup = _setup(prompt, recording, similarity="bleu-smooth")
    recording.asked.clear()  # the original's generation
    (method,) = resolve_methods("shap", shap_background="single-mask")
    planned = method.planned(setup)
    assert recording.asked == []
    scores = method.compute(MethodInputs(perturbation=setup)).scores
    variants = _variants(setup)
    assert recording.asked, "nothing generated"
    assert set(recording.asked) <= {prompt, *variants}
    assert len(recording.asked) == len(set(recording.asked))  # each asked once, one batch
    assert planned == recording.asked  # prefetch plans exactly what the run asks for
    assert scores.shape == (len(setup.words),) and np.all(np.isfinite(scores))
    if prompt not in variants:  # every substitute changes its word
        # the instance explained (all ones) falls back to variant 0, as in the released code
        assert prompt not in recording.asked and variants[0] in recording.asked


def test_background_rows_are_the_released_ones():
    """One-hot at the masked word; all zeros where the word also occurs elsewhere ("a")."""
    setup = _setup(PROMPT, KeywordCoder())
    template = setup.template(with_substitutes=True)
    rows, texts = single_mask_background(template)
    words = [PROMPT[w.start : w.end] for w in setup.words]
    assert texts == _variants(setup)
    for i, word in enumerate(words):
        expected = np.zeros(len(words))
        if words.count(word) == 1 and word not in template.absent(i).split():
            expected[i] = 1.0
        assert np.array_equal(rows[i], expected), word
    assert not rows[words.index("a")].any() and rows[words.index("largest")].any()


@pytest.mark.parametrize(
    "prompt", ["Sort the given list of numbers", "Sort the list of the numbers"]
)
def test_single_mask_solves_the_released_game_exactly(prompt):
    """With enough samples shap enumerates every coalition: the values are then the Shapley values
    of the released game, computed here by brute force (value of a coalition row = score of the
    variant whose background row is identical to it, else of variant 0). The second prompt
    repeats "the": two rows of zeros."""
    setup = _setup(prompt, EchoCoder(), similarity="bleu-smooth")
    count = len(setup.words)
    scores = _scores(setup, shap_background="single-mask", shap_samples=2**count)

    rows, _ = single_mask_background(setup.template(with_substitutes=True))
    variants = _variants(setup)
    outputs = EchoCoder()(variants, 10)
    f = np.array([dissimilarity(setup.completion, out, "bleu-smooth") for out in outputs])
    assert len(set(f.round(12))) > 2  # the variants score differently: a real test

    def render(row):
        same = [i for i in range(count) if np.array_equal(rows[i], row)]
        return f[same[0]] if same else f[0]

    def game(coalition):
        present = np.zeros(count, dtype=bool)
        present[list(coalition)] = True
        return np.mean([render(np.where(present, 1.0, background)) for background in rows])

    expected = exact_shapley(game, count)
    assert np.allclose(scores, np.abs(expected), atol=1e-9), (scores, expected)


@pytest.mark.parametrize(
    ("prompt", "coder", "options"),
    [
        (PROMPT, KeywordCoder, {}),
        (PROMPT, KeywordCoder, {"shap_samples": 200}),
        (LONG, EchoCoder, {}),
        (LONG, EchoCoder, {"shap_l1_reg": "num_features(10)"}),
    ],
)
def test_absent_is_unchanged(prompt, coder, options):
    similarity = "bleu-smooth" if coder is EchoCoder else "sacrebleu"
    recording = Recording(coder())
    setup = _setup(prompt, recording, similarity=similarity)
    recording.asked.clear()
    old = _old_kernel_shap(
        setup, options.get("shap_samples", 50), options.get("shap_l1_reg", "none")
    )
    old_asked, recording.asked = recording.asked, []
    default = _scores(setup, **options)
    default_asked, recording.asked = recording.asked, []
    explicit = _scores(setup, shap_background="absent", **options)
    assert np.array_equal(default, old) and np.array_equal(explicit, old)
    assert default_asked == old_asked and recording.asked == old_asked


def test_bad_background_is_refused():
    with pytest.raises(InvalidArgumentError, match=r"shap_background.*'released'"):
        resolve_methods("shap", shap_background="released")
    with pytest.raises(InvalidArgumentError, match=r"shap_background.*'single_mask'"):
        KernelShap("shap", shap_background="single_mask")


def test_option_is_registered_and_recorded():
    assert "shap_background" in OPTION_NAMES
    (default,) = resolve_methods("shap")
    (released,) = resolve_methods("shap", shap_background="single-mask")
    assert default.options()["shap_background"] == "absent"
    assert released.options()["shap_background"] == "single-mask"
    (partition,) = resolve_methods("shap_partition", shap_background="single-mask")
    assert "shap_background" not in partition.options()  # only KernelShap takes it


@pytest.mark.parametrize("background", ["absent", "single-mask"])
def test_two_runs_give_equal_scores(background):
    first = _scores(_setup(LONG, EchoCoder(), similarity="bleu-smooth"), shap_background=background)
    second = _scores(
        _setup(LONG, EchoCoder(), similarity="bleu-smooth"), shap_background=background
    )
    assert np.array_equal(first, second)
    assert np.count_nonzero(first) > 0
