"""The endpoint backend against a real llama.cpp server (llama-cpp-python's OpenAI-compatible
server) serving the packaged GGUF on 127.0.0.1. llama-cpp-python builds from source; where the
build is not possible scripts/test.sh says so and this module is skipped for that reason."""

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from codefocus.api import attribute
from codefocus.generation.records import GenerationSettings
from codefocus.methods.likelihood import CompletionScorer
from codefocus.methods.setup import WordTemplate
from codefocus.models.endpoint import EndpointModel
from codefocus.models.llama_server import BOS_LED, PROMPT_LOGPROBS, llama_server
from codefocus.models.packaged import assemble_gguf

pytest.importorskip(
    "llama_cpp.server", reason="llama-cpp-python[server] did not build on this machine"
)
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gguf(tmp_path_factory) -> Path:
    return assemble_gguf(tmp_path_factory.mktemp("gguf") / "model.gguf")


@pytest.fixture(scope="module")
def server(gguf):
    with llama_server(gguf, *PROMPT_LOGPROBS, start_timeout=180) as url:
        yield url


@pytest.fixture(scope="module")
def server_with_bos(gguf):
    """Every prompt led by BOS (``<|endoftext|>``): llama-cpp-python then aligns its echo."""
    with llama_server(gguf, *PROMPT_LOGPROBS, *BOS_LED, start_timeout=180) as url:
        yield url


def test_llama_server_writes_the_reference_solution(server):
    prompt = 'from typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n    """ Check if in given list of numbers, are any two numbers closer to each other than\n    given threshold.\n    """\n'
    (generation,) = EndpointModel(server, "qwen").generate([prompt], max_new_tokens=64)
    assert "threshold" in generation.completion and "return" in generation.completion


def test_perturbation_through_llama_server(server):
    endpoint = EndpointModel(server, "qwen", concurrency=2)
    result = attribute(
        endpoint,
        "Write a function to add two numbers.",
        "occlusion",
        settings=GenerationSettings(max_new_tokens=24),
        similarity="sacrebleu",
    )
    assert not result.failures
    assert len(result.word_scores["occlusion"]) == len(result.words) == 7


PROMPT = 'def count_vowels(text):\n    """Return how many vowels the text has."""\n'
DELETE = {"loo_mode": "delete"}  # perturbed prompts rebuilt here from the words alone


@pytest.fixture(scope="module")
def default_model():
    from codefocus.models.loading import load_model

    return load_model("default", device="cpu", dtype="float32")


def test_a_late_echo_is_refused_in_one_line(server):
    """llama-cpp-python 0.3.36 reports echoed log-probabilities a token late for this model (no
    BOS); the method fails, saying so and what to do, and nothing else breaks."""
    endpoint = EndpointModel(server, "qwen")
    result = attribute(
        endpoint,
        PROMPT,
        "loo_logprob",
        completion="    return 0\n",
        method_options=DELETE,
        cache=None,
    )
    message = result.failures["loo_logprob"]
    assert "one token late" in message and "add_bos_token" in message and "\n" not in message


def test_loo_logprob_through_llama_server_is_close_to_the_white_box_one(
    server_with_bos, default_model
):
    """The same prompt and code (the white-box model's greedy code), leave-one-out by deletion:
    through the server (Q4_K_M, llama.cpp's kernels, every prompt led by BOS) and white-box (the
    float32 copy of the same weights) on the same inputs, BOS included. Measured once on 2
    cores (llama-cpp-python 0.3.36, 10 words, about 6 minutes): log p(code | prompt) -11.230
    served, -10.988 white-box; leave-one-out scores at most 0.324 apart, Spearman 1.000. Without
    BOS on the white-box side (what the BOS itself changes), Spearman 0.758."""
    settings = GenerationSettings(max_new_tokens=24)
    local = attribute(
        default_model, PROMPT, "loo_logprob", settings=settings, method_options=DELETE, cache=None
    )
    code = local.generated
    endpoint = EndpointModel(server_with_bos, "qwen", concurrency=1)
    remote = attribute(
        endpoint, PROMPT, "loo_logprob", completion=code, method_options=DELETE, cache=None
    )
    assert not remote.failures and endpoint._late is False
    assert [w.text for w in remote.words] == [w.text for w in local.words]
    template = WordTemplate(PROMPT, remote.words)
    texts = [PROMPT] + [template.without(i) for i in range(len(remote.words))]
    led = CompletionScorer(default_model, code)(["<|endoftext|>" + text for text in texts])
    (served,) = CompletionScorer(endpoint, code)([PROMPT])
    remote_loo = np.asarray(remote.word_scores["loo_logprob"])
    local_loo = led[0] - led[1:]
    plain_loo = np.asarray(local.word_scores["loo_logprob"])
    figures = (
        f"log p(code | prompt) {served:.3f} served, {led[0]:.3f} white-box; loo max |diff| "
        f"{np.max(np.abs(remote_loo - local_loo)):.3f}, spearman "
        f"{spearmanr(remote_loo, local_loo).statistic:.3f} ({len(texts) - 1} words); without "
        f"BOS on the white-box side: spearman {spearmanr(remote_loo, plain_loo).statistic:.3f}"
    )
    print(figures)
    assert abs(served - led[0]) < 0.5, figures
    assert np.max(np.abs(remote_loo - local_loo)) < 0.75, figures
    assert spearmanr(remote_loo, local_loo).statistic > 0.9, figures


def test_contextcite_through_llama_server_is_close_to_the_white_box_one(
    server_with_bos, default_model
):
    """ContextCite as published (16 ablations here, to keep the test to minutes) through the
    server, against the same fit on the white-box model's log-probabilities of the same ablated
    prompts, BOS-led like the server's: the token count the target divides by is the
    tokenizer's, and the weights follow the white-box ones up to the quantization. Measured once
    on 2 cores (llama-cpp-python 0.3.36, 10 words, 16 ablations, about 5 minutes): weights at
    most 4.898 apart, the largest white-box weight 25.849; Spearman 0.952."""
    from codefocus.methods import resolve_methods
    from codefocus.methods.contextcite import fit_published, logit_probability

    options = {"contextcite_samples": 16}
    settings = GenerationSettings(max_new_tokens=24)
    local = attribute(
        default_model, PROMPT, "contextcite", settings=settings, method_options=options, cache=None
    )
    code = local.generated
    endpoint = EndpointModel(server_with_bos, "qwen", concurrency=1)
    tokens = len(default_model.tokenizer(code, add_special_tokens=False)["input_ids"])
    assert endpoint.completion_token_count(code) == tokens
    remote = attribute(
        endpoint, PROMPT, "contextcite", completion=code, method_options=options, cache=None
    )
    assert not remote.failures and endpoint._late is False
    assert [w.text for w in remote.words] == [w.text for w in local.words]
    (method,) = resolve_methods("contextcite", **options)
    masks = method.masks(len(remote.words))
    texts = WordTemplate(PROMPT, remote.words).render_all(masks)
    led = CompletionScorer(default_model, code)(["<|endoftext|>" + text for text in texts])
    expected = fit_published(masks, logit_probability(led), tokens, method.contextcite_alpha)
    served = np.asarray(remote.word_scores["contextcite"])
    rho = spearmanr(served, expected).statistic
    figures = (
        f"contextcite max |diff| {np.max(np.abs(served - expected)):.3f} of "
        f"{np.max(np.abs(expected)):.3f}, spearman {rho:.3f} ({len(remote.words)} words, "
        f"{len(texts)} ablations)"
    )
    print(figures)
    assert np.any(served), figures
    assert rho > 0.8, figures
