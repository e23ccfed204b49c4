"""Perturbation methods: exact values with a transparent generator, determinism and caching on a
tiny random model, and the substitute providers."""

import numpy as np
import pytest

from codefocus.api import attribute
from codefocus.data.units import word_spans
from codefocus.errors import InvalidArgumentError, UnknownNameError
from codefocus.generation.cache import GenerationCache
from codefocus.generation.generator import CachedGenerator
from codefocus.generation.records import GenerationSettings
from codefocus.methods import MethodInputs, resolve_methods
from codefocus.methods.setup import PerturbationSetup, rebuild
from codefocus.methods.substitutes import EmbeddingNeighbours, WordNetSynonyms, get_provider

PROMPT = "Write a function to find the largest even number in a list."


class KeywordCoder:
    """A transparent stand-in for a code model: its 'code' depends only on a few keywords, so the
    importance of every word is known in advance."""

    def __init__(self):
        self.calls = 0

    def __call__(self, inputs, budget, settings=None, original=None):
        self.calls += len(inputs)
        out = []
        for text in inputs:
            lines = ["def f(xs):", "    ys = [x for x in xs]"]
            if "even" in text:
                lines.append("    ys = [x for x in ys if x % 2 == 0]")
            if "largest" in text:
                lines.append("    return max(ys)")
            else:
                lines.append("    return ys")
            out.append("\n".join(lines) + "\n")
        return out


def _setup(generator, **kwargs):
    original = generator([PROMPT], 10)[0]
    return PerturbationSetup(
        prompt=PROMPT,
        suffix="",
        completion=original,
        generator=generator,
        budget=10,
        settings=GenerationSettings(),
        **kwargs,
    )


def _scores(method_name, setup, **options):
    (method,) = resolve_methods(method_name, **options)
    return method.compute(MethodInputs(perturbation=setup)).scores


def test_rebuild_deletes_and_replaces_words():
    words = word_spans(PROMPT)
    assert (
        rebuild(PROMPT, words, {1: ""})
        == "Write function to find the largest even number in a list."
    )
    assert rebuild(PROMPT, words, {6: "biggest"}).startswith("Write a function to find the biggest")


def test_occlusion_and_masking_find_the_keywords():
    setup = _setup(KeywordCoder(), similarity="sacrebleu")
    words = [PROMPT[w.start : w.end] for w in setup.words]
    for name in ("occlusion", "bert_masking"):
        scores = dict(zip(words, _scores(name, setup), strict=True))
        assert scores["largest"] > 0 and scores["even"] > 0, name
        assert all(v == 0 for w, v in scores.items() if w not in ("largest", "even")), name


@pytest.mark.slow
def test_shap_methods_rank_the_keywords_first():
    setup = _setup(KeywordCoder(), similarity="sacrebleu")
    words = [PROMPT[w.start : w.end] for w in setup.words]
    for name in ("shap", "shap_partition"):
        scores = _scores(name, setup, shap_samples=200)
        top_two = {words[i] for i in np.argsort(-scores)[:2]}
        assert top_two == {"largest", "even"}, (name, scores)


class EchoCoder:
    """Writes one line per word of the task: every word changes the code."""

    def __call__(self, inputs, budget, settings=None, original=None):
        return ["\n".join(f"v_{w} = {i}" for i, w in enumerate(t.split())) + "\n" for t in inputs]


LONG = (
    "Write a function that takes a list of integers and returns the sum of the squares of the "
    "even numbers that appear before the first negative number in that list"
)


def test_shap_scores_every_word_when_every_word_matters():
    setup = _setup_for(LONG, EchoCoder(), similarity="bleu-smooth")
    assert len(setup.words) >= 27
    scores = _scores("shap", setup)
    assert np.count_nonzero(scores) == len(setup.words)  # shap's default would score 10


def test_shap_regularisation_is_a_choice():
    setup = _setup_for(LONG, EchoCoder(), similarity="bleu-smooth")
    assert np.count_nonzero(_scores("shap", setup, shap_l1_reg="num_features(10)")) <= 10
    with pytest.raises(InvalidArgumentError):
        _scores("shap", _setup_for(LONG, EchoCoder()), shap_l1_reg="lasso")


def _setup_for(prompt, generator, **kwargs):
    return PerturbationSetup(
        prompt=prompt,
        suffix="",
        completion=generator([prompt], 10)[0],
        generator=generator,
        budget=10,
        settings=GenerationSettings(),
        **kwargs,
    )


def test_cached_generator_batches_and_reuses(tmp_path, tiny_qwen2):
    model = tiny_qwen2
    cache = GenerationCache(tmp_path / "cache.sqlite")
    generator = CachedGenerator(model, cache, batch_size=4)
    inputs = ["def a():", "def b():", "def a():", "def c(x):"]
    first = generator(inputs, 6)
    assert generator.generated == 3 and first[0] == first[2]
    again = CachedGenerator(model, GenerationCache(tmp_path / "cache.sqlite"))(inputs, 6)
    assert again == first
    # batched generation (left padding) gives the same greedy text as one prompt at a time
    single = [model.generate([text], max_new_tokens=6)[0].completion for text in inputs]
    assert single == first


@pytest.mark.slow
def test_attribute_with_perturbation_on_tiny_model_is_deterministic_and_cached(
    tmp_path, tiny_qwen2
):
    model = tiny_qwen2
    cache = GenerationCache(tmp_path / "cache.sqlite")
    settings = GenerationSettings(max_new_tokens=8)
    methods = "occlusion,bert_masking,shap_partition"
    first = attribute(
        model, PROMPT, methods, settings=settings, similarity="sacrebleu", cache=cache
    )
    misses = cache.misses
    second = attribute(
        model, PROMPT, methods, settings=settings, similarity="sacrebleu", cache=cache
    )
    assert not first.failures
    assert first.word_scores == second.word_scores
    assert cache.misses == misses  # the second run generated nothing
    for scores in first.word_scores.values():
        assert len(scores) == len(first.words)
        assert all(0.0 <= s <= 1.0 + 1e-9 for s in scores)


def test_embedding_neighbours_are_sensible_and_avoid_antonyms():
    provider = EmbeddingNeighbours()
    assert provider.neighbours("closer", 3)[0] == "nearer"
    assert "smallest" not in provider.neighbours("largest", 5)
    assert provider.substitute("Find the Largest", word_spans("Find the Largest")[2]) == "Biggest"
    assert provider.substitute("x = 1.5", word_spans("x = 1.5")[-1]) == "1.5"  # not a word


def test_wordnet_provider_and_unknown_provider():
    synonyms = WordNetSynonyms()
    text = "Write a function"
    assert synonyms.substitute(text, word_spans(text)[0]) != "Write"
    with pytest.raises(UnknownNameError):
        get_provider("thesaurus")


@pytest.mark.slow
def test_every_word_gets_a_substitute(data_dir):
    """Numbers and identifiers too: 21% of HumanEval words were left unchanged (score 0)."""
    from codefocus.data.tasks import load_tasks
    from codefocus.data.units import scoped_word_spans
    from codefocus.methods.substitutes import other_number, substitution_report

    prompts = [
        (t.prompt, scoped_word_spans(t.prompt))
        for t in load_tasks("humaneval", data_dir)[:40] + load_tasks("mbpp", data_dir)[:40]
    ]
    for name in ("embedding", "wordnet"):
        report = substitution_report(get_provider(name), prompts)
        assert report.total > 1500 and not report.unchanged, (name, report.unchanged)
        assert report.counts["number"] > 0 and report.counts["parts"] > 0
    assert [other_number(n) for n in ("0", "-1", "0.5", "0.9", "12")] == [
        "1",
        "-2",
        "0.6",
        "1.0",
        "13",
    ]


def test_identifiers_are_renamed_part_by_part():
    from codefocus.methods.substitutes import substitute_word

    text = "def has_close_elements(numbers, x2):"
    spans = {text[s.start : s.end]: s for s in word_spans(text)}
    new = substitute_word(get_provider("embedding"), text, spans["has_close_elements"])
    assert new.count("_") == 2 and new != "has_close_elements"
    assert substitute_word(get_provider("embedding"), text, spans["x2"]) == "y3"


class Recording:
    """A generator that notes every input it is asked for."""

    def __init__(self, inner):
        self.inner, self.asked = inner, []

    def __call__(self, inputs, budget, settings=None, original=None):
        self.asked.extend(inputs)
        return self.inner(inputs, budget, settings, original)


@pytest.mark.parametrize("name", ["occlusion", "bert_masking", "shap"])
def test_planned_inputs_are_the_ones_the_method_asks_for(name):
    """``prefetch`` regenerates what a dry run plans: the same inputs, in the same order, as the
    method asks for when it runs (shap samples the same coalitions)."""
    recording = Recording(KeywordCoder())
    setup = _setup(recording)
    recording.asked.clear()  # the original's generation
    (method,) = resolve_methods(name)
    planned = method.planned(setup)
    assert recording.asked == [] and planned
    method.compute(MethodInputs(perturbation=setup))
    assert planned == recording.asked


def test_planning_is_skipped_where_the_inputs_depend_on_the_outputs():
    setup = _setup(KeywordCoder())
    (partition,) = resolve_methods("shap_partition")
    assert partition.planned(setup) == []


def test_no_prefetch_into_a_generator_that_forgets():
    """A plain callable keeps nothing: generating ahead for it would double the work."""
    from codefocus.methods.perturbation import prefetch

    recording = Recording(KeywordCoder())
    setup = _setup(recording)
    recording.asked.clear()
    assert prefetch(resolve_methods(["bert_masking", "shap"]), setup) == {}
    assert recording.asked == []
