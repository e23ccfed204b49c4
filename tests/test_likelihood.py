"""The likelihood methods (new): loo_logprob against naive implementations, one unbatched
forward per prompt with the full logits (contextcite: tests/test_contextcite.py)."""

import numpy as np
import pytest
from reference import naive_logprob

from codefocus import attribute
from codefocus.errors import InvalidArgumentError
from codefocus.methods import GROUPS, resolve_methods
from codefocus.methods.likelihood import completion_logprobs
from codefocus.methods.setup import WordTemplate

PROMPT = "Write a function that returns the largest even number in a list of numbers."


@pytest.fixture(scope="module", params=["qwen2", "gpt2"])
def model(request, tiny_model_factory):
    return tiny_model_factory(request.param, seed=3)


def test_completion_logprobs_equal_one_forward_each(model):
    (generation,) = model.generate([PROMPT], max_new_tokens=10)
    ids = list(generation.token_ids)
    texts = [PROMPT, PROMPT.replace("largest", "smallest"), "Return a list.", PROMPT[:30]]
    naive = [naive_logprob(model, t, ids) for t in texts]
    batched = completion_logprobs(model, texts, ids, batch_size=3)
    np.testing.assert_allclose(batched, naive, rtol=1e-5, atol=1e-5)
    reused = completion_logprobs(model, texts, ids, batch_size=3, original=PROMPT)
    np.testing.assert_allclose(reused, naive, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_loo_logprob_equals_the_naive_leave_one_out(model):
    result = attribute(model, PROMPT, "loo_logprob,bert_masking", scope="prompt", cache=None)
    (generation,) = model.generate([PROMPT], max_new_tokens=model.default_max_new_tokens(None))
    ids = list(generation.token_ids)
    words = [w for w in result.words]
    from codefocus.methods.substitutes import get_provider, substitute_word

    provider = get_provider("embedding", model)
    substitutes = [substitute_word(provider, PROMPT, w) for w in words]
    template = WordTemplate(PROMPT, words, substitutes)
    base = naive_logprob(model, PROMPT, ids)
    want = [base - naive_logprob(model, template.without(i), ids) for i in range(len(words))]
    np.testing.assert_allclose(result.word_scores["loo_logprob"], want, rtol=1e-4, atol=1e-4)
    assert result.settings["methods"]["loo_logprob"] == {"loo_mode": "substitute"}


def test_loo_can_delete_words(model):
    result = attribute(
        model, PROMPT, "loo_logprob", scope="prompt", method_options={"loo_mode": "delete"}
    )
    (generation,) = model.generate([PROMPT], max_new_tokens=model.default_max_new_tokens(None))
    ids = list(generation.token_ids)
    template = WordTemplate(PROMPT, result.words)
    base = naive_logprob(model, PROMPT, ids)
    want = [base - naive_logprob(model, template.without(i), ids) for i in range(len(result.words))]
    np.testing.assert_allclose(result.word_scores["loo_logprob"], want, rtol=1e-4, atol=1e-4)


def test_likelihood_methods_are_registered_with_their_options():
    assert GROUPS["likelihood"]() == ["loo_logprob", "contextcite", "hierarchical_loo"]
    with pytest.raises(InvalidArgumentError, match="loo_mode"):
        resolve_methods("loo_logprob", loo_mode="mask")
