"""Prompt units (``data/groups.py``), leave-one-out by unit and ``hierarchical_loo``: the groups
partition the words, group LOO against a naive loop on a tiny model, hierarchical LOO against full
LOO, its cost, and one-line errors for bad options."""

import numpy as np
import pytest
from reference import exact_shapley, naive_logprob

from codefocus.data.groups import UNIT_KINDS, sentence_starts, word_groups
from codefocus.data.units import Span, scoped_word_spans, word_spans
from codefocus.errors import InvalidArgumentError
from codefocus.generation.records import GenerationSettings
from codefocus.methods import REGISTRY, MethodInputs, resolve_methods
from codefocus.methods.hierarchical import HierarchicalLoo, select, unrefined_scores
from codefocus.methods.setup import PerturbationSetup, WordTemplate
from codefocus.options import AttributionOptions

CODE_PROMPT = (
    "from typing import List\n\n\n"
    "def largest_even(numbers: List[int]) -> int:\n"
    '    """ Return the largest even number in the list of numbers.\n'
    "    Return -1 when there is none! Ignore odd numbers\n"
    "    and negative numbers.\n"
    "    >>> largest_even([1, 2, 4])\n"
    "    4\n"
    '    """\n'
)
TEXT_PROMPT = "Write a function to find the largest even number. Return -1 if there is none."
NESTED_PROMPT = (
    "def f(xs):\n"
    "    # keep the even ones\n"
    "    if xs:\n"
    "        total = 0; count = 1\n"
    "    else:\n"
    "        return None\n"
)
COMPLETION = "    return max((x for x in numbers if x % 2 == 0), default=-1)\n"
PROMPTS = [CODE_PROMPT, TEXT_PROMPT, NESTED_PROMPT, "Sort the list.", "é ü\nnaïve café."]


def texts(prompt, words, groups):
    return [" ".join(prompt[words[i].start : words[i].end] for i in g) for g in groups]


# ---------------------------------------------------------------- units as groups of words


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("unit", [u for u in UNIT_KINDS if u != "token"])
def test_groups_partition_the_words_in_order(prompt, unit):
    words = word_spans(prompt)
    groups = word_groups(prompt, words, unit)
    assert sorted(i for g in groups for i in g) == list(range(len(words)))
    assert all(g == sorted(g) and g for g in groups)
    assert [g[0] for g in groups] == sorted(g[0] for g in groups)
    assert word_groups(prompt, words, unit) == groups  # stable


def test_token_groups_join_words_that_share_a_token(tiny_qwen2):
    prompt = CODE_PROMPT
    words = word_spans(prompt)
    tokens = [Span(s, e) for s, e in tiny_qwen2.encode(prompt).offsets]
    groups = word_groups(prompt, words, "token", tokens)
    assert sorted(i for g in groups for i in g) == list(range(len(words)))
    joined = {i for g in groups for i in g[1:]}  # words joined to the word before them
    for index in range(1, len(words)):
        shared = any(words[index - 1].overlap(t) and words[index].overlap(t) for t in tokens)
        assert shared == (index in joined)
    # planted: one token over two words joins them; the rest stay alone
    words = [Span(0, 2), Span(3, 5), Span(6, 8)]
    assert word_groups("ab cd ef", words, "token", [Span(1, 4), Span(6, 8)]) == [[0, 1], [2]]
    with pytest.raises(InvalidArgumentError, match="white-box"):
        word_groups("ab cd ef", words, "token")


def test_lines_sentences_and_statements_of_a_code_prompt():
    words = word_spans(CODE_PROMPT)
    lines = texts(CODE_PROMPT, words, word_groups(CODE_PROMPT, words, "line"))
    assert lines[:3] == [
        "from typing import List",
        "def largest_even numbers List int int",
        "Return the largest even number in the list of numbers",
    ]
    sentences = texts(CODE_PROMPT, words, word_groups(CODE_PROMPT, words, "sentence"))
    assert sentences == [
        "from typing import List",
        "def largest_even numbers List int int",
        "Return the largest even number in the list of numbers",
        "Return -1 when there is none",
        "Ignore odd numbers and negative numbers",
        "largest_even 1 2 4",
        "4",
    ]
    statements = texts(CODE_PROMPT, words, word_groups(CODE_PROMPT, words, "statement"))
    assert statements[:2] == sentences[:2] and len(statements) == 3  # the docstring is one
    nested = word_spans(NESTED_PROMPT)
    statements = texts(NESTED_PROMPT, nested, word_groups(NESTED_PROMPT, nested, "statement"))
    assert statements == [
        "def f xs",
        "keep the even ones",  # a comment outside every statement: its line
        "if xs else",  # a compound statement keeps its header and its clauses
        "total 0",
        "count 1",
        "return None",
    ]


def test_a_text_prompt_has_sentences_as_statements():
    words = word_spans(TEXT_PROMPT)
    sentences = word_groups(TEXT_PROMPT, words, "sentence")
    assert len(sentences) == 2 and word_groups(TEXT_PROMPT, words, "statement") == sentences
    assert word_groups(TEXT_PROMPT, words, "line") == [list(range(len(words)))]
    assert sentence_starts("One. Two!\n\nThree") == [0, 5, 11]


# ---------------------------------------------------------------- leave-one-out by unit


def setup_for(model, prompt=CODE_PROMPT, generator=None) -> PerturbationSetup:
    return PerturbationSetup(
        prompt=prompt,
        suffix="",
        completion=COMPLETION,
        generator=generator or (lambda inputs, budget, settings=None, original=None: inputs),
        budget=8,
        settings=GenerationSettings(),
        model=model,
        scope="prompt",
    )


def scores(name, setup, **options) -> np.ndarray:
    (method,) = resolve_methods(name, **options)
    return np.asarray(method.compute(MethodInputs(perturbation=setup)).scores)


@pytest.fixture(scope="module")
def model(tiny_model_factory):
    return tiny_model_factory("qwen2", seed=3)


@pytest.mark.parametrize("unit", ["line", "sentence", "statement"])
def test_group_loo_equals_a_naive_loop(model, unit):
    setup = setup_for(model)
    got = scores("loo_logprob", setup, loo_mode="delete", perturb_units=unit)
    ids = model.tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
    template = WordTemplate(CODE_PROMPT, setup.words)
    base = naive_logprob(model, CODE_PROMPT, ids)
    want = np.zeros(len(setup.words))
    groups = setup.groups(unit)
    assert len(groups) > 2
    for group in groups:
        left_out = template.render(np.isin(np.arange(len(setup.words)), group, invert=True))
        want[group] = base - naive_logprob(model, left_out, ids)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_default_unit_is_the_word_and_changes_nothing(model):
    """``perturb_units="word"`` (the default) gives bit for bit what leave-one-out and occlusion
    computed before units existed, and records the same options."""
    setup = setup_for(model)
    template = setup.template(with_substitutes=False)
    (loo,) = resolve_methods("loo_logprob", loo_mode="delete")
    ids = model.tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]

    def scorer(prompts):
        return np.asarray([naive_logprob(model, p, ids) for p in prompts])

    count = len(template.words)
    values = scorer([setup.prompt, *(template.without(i) for i in range(count))])
    assert np.array_equal(loo.word_scores(setup, scorer), values[0] - values[1:])
    assert np.array_equal(
        scores("loo_logprob", setup, loo_mode="delete"),
        scores("loo_logprob", setup, loo_mode="delete", perturb_units="word"),
    )
    occluded = scores("occlusion", setup)
    assert np.array_equal(occluded, setup.scores_for([template.without(i) for i in range(count)]))
    assert REGISTRY["loo_logprob"].options() == {"loo_mode": "substitute"}
    assert REGISTRY["occlusion"].options() == {}
    (by_line,) = resolve_methods("occlusion", perturb_units="line")
    assert by_line.options() == {"perturb_units": "line"}


def test_occlusion_by_line_leaves_out_whole_lines(model):
    setup = setup_for(model, generator=lambda inputs, budget, settings=None, original=None: inputs)
    got = scores("occlusion", setup, perturb_units="line")
    template = setup.template(with_substitutes=False)
    for group in setup.groups("line"):
        (expected,) = setup.scores_for([template.without_group(group)])
        assert np.all(got[group] == expected)


def unit_value(setup, groups, substitutes: bool):
    """The method's value of a coalition of units, computed plainly: the prompt with the absent
    units' words left out (or substituted), regenerated, scored."""
    template = setup.template(with_substitutes=substitutes)
    count = len(template.words)

    def game(units_present) -> float:
        present = np.zeros(count)
        for unit in units_present:
            present[list(groups[unit])] = 1
        (score,) = setup.scores_for([template.render(present)])
        return float(score)

    return game


def test_bert_masking_by_line_substitutes_whole_lines(model):
    setup = setup_for(model)
    template = setup.template(with_substitutes=True)
    got = scores("bert_masking", setup, perturb_units="line")
    groups = setup.groups("line")
    assert len(groups) > 2
    for group in groups:
        expected = 0.0
        if any(template.changes(i) for i in group):
            (expected,) = setup.scores_for([template.render(~np.isin(np.arange(len(got)), group))])
        assert np.all(got[group] == expected)
    # words: each word its own unit, as before the option existed
    words = scores("bert_masking", setup)
    changed = [i for i in range(len(words)) if template.changes(i)]
    assert np.array_equal(words[changed], setup.scores_for([template.without(i) for i in changed]))
    assert not words[[i for i in range(len(words)) if i not in changed]].any()


def test_shap_by_line_plays_whole_lines(model):
    # with at least 2^units samples KernelExplainer enumerates every coalition: exact Shapley
    setup = setup_for(model, prompt=NESTED_PROMPT)
    groups = setup.groups("line")
    assert 3 <= len(groups) <= 8
    got = scores("shap", setup, perturb_units="line", shap_samples=2 ** len(groups) + 2)
    phi = exact_shapley(unit_value(setup, groups, substitutes=True), len(groups))
    for group, value in zip(groups, phi, strict=True):
        np.testing.assert_allclose(got[group], abs(value), atol=1e-6)


def test_the_released_shap_background_takes_words_only():
    with pytest.raises(InvalidArgumentError, match="single-mask.*perturb_units 'word'"):
        resolve_methods("shap", shap_background="single-mask", perturb_units="line")
    (words,) = resolve_methods("shap", shap_background="single-mask")
    assert words.options()["shap_background"] == "single-mask"


def test_shap_partition_by_sentence_is_shapley_for_two_sentences(model):
    # two players: the Owen values of the partition explainer are the Shapley values
    setup = setup_for(model, prompt=TEXT_PROMPT)
    groups = setup.groups("sentence")
    assert len(groups) == 2
    got = scores("shap_partition", setup, perturb_units="sentence")
    phi = exact_shapley(unit_value(setup, groups, substitutes=False), 2)
    for group, value in zip(groups, phi, strict=True):
        np.testing.assert_allclose(got[group], abs(value), atol=1e-6)
    (by_sentence,) = resolve_methods("shap_partition", perturb_units="sentence")
    assert by_sentence.options()["perturb_units"] == "sentence"
    assert "perturb_units" not in REGISTRY["shap_partition"].options()  # words: as before


@pytest.mark.parametrize(("prompt", "unit"), [("Sort.", "word"), ("Sort the list xs.", "line")])
def test_shap_partition_with_one_player_scores_leaving_it_out(model, prompt, unit):
    # one word, or one unit of several words: the only player's value is the prompt without it,
    # rendered as every other coalition is (not an empty prompt)
    def writes_unless_empty(inputs, *rest, **kw):  # the original code for any non-empty prompt
        return [COMPLETION if text.strip() else "" for text in inputs]

    setup = setup_for(model, prompt=prompt, generator=writes_unless_empty)
    groups = setup.groups(unit)
    assert len(groups) == 1
    got = scores("shap_partition", setup, perturb_units=unit)
    alone = unit_value(setup, groups, substitutes=False)(())
    assert np.all(got == abs(alone))
    assert setup.scores_for([""])[0] != alone  # an empty prompt would score otherwise


# ---------------------------------------------------------------- hierarchical leave-one-out


class Counted:
    """A scorer that counts the prompts it scores."""

    def __init__(self, scorer):
        self.scorer, self.rows = scorer, 0

    def __call__(self, prompts):
        self.rows += len(prompts)
        return self.scorer(prompts)


def length_scorer(prompts):
    """Every left-out character costs one: each unit's score is the characters it removes."""
    return np.array([float(len(p)) for p in prompts])


def test_select_keeps_ties_and_extends_to_the_coverage():
    assert select(np.array([1.0, 5.0, 3.0, 5.0]), 1) == [1, 3]  # ties at the cutoff kept
    assert select(np.array([4.0, 3.0, 2.0, 1.0, -5.0]), 1, 0.7) == [0, 1]
    assert select(np.array([4.0, 3.0, 2.0, 1.0, -5.0]), 1, 1.0) == [0, 1, 2, 3]
    assert select(np.array([-1.0, -2.0]), 1, 1.0) == [0]


def test_unrefined_words_rank_below_refined_ones_in_their_units_order():
    coarse = [[0, 1], [2], [3, 4], [5]]
    scores = np.array([0.5, -2.0, 0.0, 0.0, 0.0, 0.0])
    got = unrefined_scores(scores, coarse, np.array([3.0, 1.0, -1.0, 2.0]), [0])
    np.testing.assert_array_equal(got, [0.5, -2.0, -4.0, -6.0, -6.0, -3.0])


def test_hierarchical_with_every_unit_refined_is_full_loo_exactly(model):
    setup = setup_for(model)
    full = scores("loo_logprob", setup, loo_mode="delete")
    everything = scores("hierarchical_loo", setup, loo_mode="delete", hierarchical_top=100)
    assert np.array_equal(everything, full)
    # through the coarse pass: every line removes characters, so coverage 1 refines them all
    (loo,) = resolve_methods("loo_logprob", loo_mode="delete")
    (method,) = resolve_methods(
        "hierarchical_loo", loo_mode="delete", hierarchical_top=1, hierarchical_coverage=1.0
    )
    result = method.explain(setup, length_scorer)
    assert result.coarse_scores is not None and len(result.refined) == len(result.coarse_groups)
    assert np.array_equal(result.scores, loo.word_scores(setup, length_scorer))


def test_hierarchical_with_fewer_units_uses_fewer_forwards(model):
    setup = setup_for(model)
    full = scores("loo_logprob", setup, loo_mode="delete")
    (method,) = resolve_methods("hierarchical_loo", loo_mode="delete", hierarchical_top=1)
    (loo,) = resolve_methods("loo_logprob", loo_mode="delete")
    counted, counted_full = Counted(length_scorer), Counted(length_scorer)
    result = method.explain(setup, counted)
    loo.word_scores(setup, counted_full)
    lines = setup.groups("line")
    assert result.coarse_groups == lines and len(result.refined) == 1
    refined = lines[result.refined[0]]
    assert result.forwards == counted.rows == (1 + len(lines)) + (1 + len(refined))
    assert result.full_forwards == counted_full.rows == 1 + len(setup.words)
    assert result.forwards < result.full_forwards and result.speedup > 1
    # on the model: refined words keep their full LOO scores, the others rank below them
    ids = model.tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
    naive = Counted(lambda prompts: np.asarray([naive_logprob(model, p, ids) for p in prompts]))
    (two,) = resolve_methods("hierarchical_loo", loo_mode="delete", hierarchical_top=2)
    result = two.explain(setup, naive)
    inside = [w for g in result.refined for w in lines[g]]
    outside = [w for w in range(len(setup.words)) if w not in inside]
    assert len(result.refined) == 2 and naive.rows == result.forwards < result.full_forwards
    np.testing.assert_allclose(result.scores[inside], full[inside], rtol=1e-5, atol=1e-5)
    assert result.scores[outside].max() < result.scores[inside].min()
    np.testing.assert_allclose(
        scores("hierarchical_loo", setup, loo_mode="delete", hierarchical_top=2),
        result.scores,
        rtol=1e-5,
        atol=1e-5,
    )


def test_hierarchical_units_and_text_prompts(model):
    setup = setup_for(model, prompt=TEXT_PROMPT)  # one line: the coarse pass is skipped
    (method,) = resolve_methods("hierarchical_loo", loo_mode="delete")
    result = method.explain(setup, length_scorer)
    assert result.coarse_scores is None and result.forwards == result.full_forwards
    (by_sentence,) = resolve_methods(
        "hierarchical_loo", loo_mode="delete", hierarchical_units="sentence", hierarchical_top=1
    )
    result = by_sentence.explain(setup, length_scorer)
    assert len(result.coarse_groups) == 2 and result.refined == [0]  # the longer sentence
    assert by_sentence.options()["hierarchical_units"] == "sentence"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("hierarchical_top", 0),
        ("hierarchical_top", 1.5),
        ("hierarchical_top", True),
        ("hierarchical_coverage", 1.5),
        ("hierarchical_coverage", "all"),
        ("hierarchical_units", "word"),
        ("hierarchical_units", "paragraph"),
        ("perturb_units", "paragraph"),
    ],
)
def test_bad_options_are_one_line_naming_option_and_value(option, value):
    for names in ("hierarchical_loo", "all"):
        with pytest.raises(InvalidArgumentError) as error:
            resolve_methods(names, **{option: value})
        message = str(error.value)
        assert option in message and repr(value) in message and "\n" not in message
    with pytest.raises(InvalidArgumentError) as error:
        AttributionOptions(method_options={option: value})
    assert str(error.value).startswith(f"{option}:") and "\n" not in str(error.value)


def test_token_units_need_a_white_box_model(model):
    class Endpoint:
        name = "remote"

    setup = setup_for(model)
    assert sorted(i for g in setup.groups("token") for i in g) == list(range(len(setup.words)))
    remote = setup_for(Endpoint())
    with pytest.raises(InvalidArgumentError, match="perturb_units 'token'.*remote"):
        remote.groups("token")


def test_hierarchical_loo_runs_through_attribute(model):
    from codefocus import attribute

    result = attribute(
        model,
        CODE_PROMPT,
        "loo_logprob,hierarchical_loo",
        scope="prompt",
        completion=COMPLETION,
        cache=None,
        method_options={"loo_mode": "delete", "hierarchical_top": 100},
    )
    assert not result.failures
    assert result.word_scores["hierarchical_loo"] == result.word_scores["loo_logprob"]
    assert len(result.word_scores["hierarchical_loo"]) == len(
        scoped_word_spans(CODE_PROMPT, "prompt")
    )
    assert isinstance(REGISTRY["hierarchical_loo"], HierarchicalLoo)


@pytest.fixture()
def hierarchical_benchmark():
    """benchmarks/hierarchical_loo.py as a module."""
    from benchmark_modules import load_benchmark

    return load_benchmark("hierarchical_loo")


def test_the_benchmark_compares_with_full_loo_on_a_tiny_model(
    hierarchical_benchmark, model, monkeypatch, tmp_path, capsys
):
    import json

    from codefocus.options import AttributionOptions

    benchmark = hierarchical_benchmark
    options = AttributionOptions(scope="prompt")
    report = benchmark.hierarchical_vs_full(
        model,
        [CODE_PROMPT],
        loo_mode="delete",
        options=options,
        method_options={"hierarchical_top": 1},
        completions=[COMPLETION],
    )
    (row,) = report["tasks"]
    assert row["refined_units"] == 1 and row["coarse_units"] == 7
    assert row["full"]["forwards"] == 1 + row["words"] > row["hierarchical"]["forwards"]
    assert row["forward_ratio"] > 1 and 0 <= row["top_recall"] <= 1
    everything = benchmark.hierarchical_vs_full(
        model,
        [CODE_PROMPT],
        loo_mode="delete",
        options=options,
        method_options={"hierarchical_top": 100},
        completions=[COMPLETION],
    )
    assert everything["summary"]["top_recall"] == 1.0
    # main(): the record written and the last line
    monkeypatch.setattr(AttributionOptions, "load_model", lambda self, spec: model)
    out = tmp_path / "result.json"
    argv = [
        "--model",
        "tiny",
        "--task-ids",
        "humaneval/0",
        "--loo-mode",
        "delete",
        "--out",
        str(out),
    ]
    monkeypatch.setattr(benchmark, "pick_tasks", lambda *a, **k: pytest.fail("tasks were given"))
    from codefocus.data import tasks as task_module

    monkeypatch.setattr(task_module, "get_task", lambda ref: CODE_PROMPT)
    assert benchmark.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["benchmark"] == "hierarchical_loo" and len(record["commit"]) == 40
    assert record["method_options"]["hierarchical_top"] == 2
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("hierarchical loo: speed-up ") and "× top-10 recall " in last
