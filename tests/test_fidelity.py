"""Live-attribution fidelity: the cache never serves another model's code, only generated tokens
are scored, and the study's scope is what gets compared with the labels."""

import numpy as np

from codefocus.api import attribute
from codefocus.data.tasks import get_task
from codefocus.data.units import scoped_word_spans, scored_range
from codefocus.generation.cache import GenerationCache
from codefocus.generation.records import GenerationSettings
from codefocus.generation.truncation import function_end, truncate_at_function_end
from codefocus.models.base import model_input_for
from codefocus.models.hf import HFModel
from codefocus.models.tiny import build_tiny_model

PROMPT = "def add(a, b):\n    "


def _save(directory, seed):
    net, tokenizer = build_tiny_model("gpt2", seed=seed)
    net.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def test_cache_misses_when_a_directory_is_overwritten_with_other_weights(tmp_path):
    directory = tmp_path / "model"
    cache = GenerationCache(tmp_path / "cache.sqlite")
    settings = GenerationSettings(max_new_tokens=12, stop_at_function_end=False)
    _save(directory, seed=0)
    first = attribute(str(directory), PROMPT, "coding_all", settings=settings, cache=cache)
    _save(directory, seed=1)  # same path, same size, other weights
    second = attribute(str(directory), PROMPT, "coding_all", settings=settings, cache=cache)
    own = HFModel.load(str(directory)).generate([PROMPT], settings)[0].completion
    assert second.generated == own  # the code this model writes, not the cached seed-0 code
    assert first.generated != second.generated
    # and the same weights hit the cache again
    misses = cache.misses
    attribute(str(directory), PROMPT, "coding_all", settings=settings, cache=cache)
    assert cache.misses == misses


def test_fingerprint_covers_weights_and_dtype(tmp_path):
    _save(tmp_path / "m", seed=0)
    a = HFModel.load(str(tmp_path / "m"))
    b = HFModel.load(str(tmp_path / "m"))
    half = HFModel.load(str(tmp_path / "m"), dtype="bfloat16")
    assert a.fingerprint == b.fingerprint != half.fingerprint
    net, tokenizer = build_tiny_model("gpt2", seed=1)
    assert HFModel(net, tokenizer, str(tmp_path / "m"), "cpu").fingerprint != a.fingerprint


def test_truncation_adds_nothing():
    cut_mid_line = "    x = 1\n    return x +"
    assert truncate_at_function_end(cut_mid_line) == cut_mid_line  # no "\n" invented
    two_newlines = "    return 1\n\n\ndef g():\n    pass\n"
    assert truncate_at_function_end(two_newlines) == "    return 1\n"
    assert two_newlines.startswith(truncate_at_function_end(two_newlines))
    assert function_end("\n\n") == 0


def test_generations_are_exactly_their_kept_tokens(tiny_qwen2):
    model = tiny_qwen2
    prompts = ["def add(a, b):\n", "def f(x):\n    return", "x = 1\n"]
    for budget in (3, 7, 16):
        for generation in model.generate(prompts, max_new_tokens=budget):
            raw = model.generate(
                [generation.model_input],
                GenerationSettings(stop_at_function_end=False),
                max_new_tokens=budget,
            )[0]
            ids = list(generation.token_ids)
            assert ids == list(raw.token_ids)[: len(ids)]  # a prefix of what was generated
            assert model.decode(ids) == generation.completion


def test_attribution_scores_the_generated_tokens_not_a_retokenisation(tiny_qwen2):
    model = tiny_qwen2
    result = attribute(model, PROMPT, "coding_all,saliency_coding", settings=GenerationSettings(8))
    assert result.settings["scored_tokens"] == "generated ids"
    assert not result.failures


def test_study_scope_on_humaneval(data_dir):
    task = get_task("humaneval/0", data_dir)
    start, end = scored_range(task.prompt)
    assert task.prompt[start:].startswith("def has_close_elements")
    assert task.prompt[end:].startswith(">>>")
    assert scored_range(task.prompt, "prompt") == (0, len(task.prompt))
    mbpp = get_task("mbpp/11", data_dir)
    assert scored_range(mbpp.prompt) == (0, len(mbpp.prompt))
    # the labels sit inside the study's scope (the paper: 3 of 1,090 lie after the first >>>)
    outside = 0
    from codefocus.data.tasks import load_tasks

    for t in load_tasks("humaneval", data_dir):
        a, b = scored_range(t.prompt)
        outside += sum(1 for s in t.human_spans if s.start < a or s.end > b)
    assert outside == 3


def test_attribution_in_the_study_scope_skips_imports_and_examples(data_dir, tiny_qwen2):
    task = get_task("humaneval/0", data_dir)
    model = tiny_qwen2
    settings = GenerationSettings(max_new_tokens=6)
    study = attribute(model, task, "reading_all,coding_all,saliency_coding", settings=settings)
    whole = attribute(
        model, task, "reading_all", settings=settings, completion=study.generated, scope="prompt"
    )
    words = [w.text for w in study.words]
    assert words[:2] == ["def", "has_close_elements"] and "from" not in words and ">" not in words
    assert len(study.words) == len(scoped_word_spans(task.prompt)) < len(whole.words)
    assert study.settings["scope"] == "study" and whole.settings["scope"] == "prompt"
    assert study.settings["attention_sink"] == "first position not scored"
    # each generated step's gradient vector is a distribution over the scored tokens only
    steps = len(model.generate([model_input_for(task)], settings)[0].token_ids)
    assert np.isclose(sum(study.token_scores["saliency_coding"]), steps)
