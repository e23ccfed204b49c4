"""The likelihood methods behind an endpoint: ``EndpointModel.completion_logprobs`` against real
HTTP servers on 127.0.0.1 (Starlette on uvicorn) — one that echoes the prompt's log-probabilities
as OpenAI's ``/v1/completions`` does, computed by a tiny model, so that the endpoint's figures can
be checked against the same model scored white-box; and servers that cannot (one clear line)."""

from __future__ import annotations

import itertools
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from codefocus.api import attribute
from codefocus.errors import EndpointError, InvalidArgumentError
from codefocus.methods.likelihood import CompletionScorer
from codefocus.models.endpoint import (
    PROBE,
    EndpointModel,
    completion_logprob,
    echoed_logprobs,
)

PROMPT = "Write a function to add two numbers."
COMPLETION = "\ndef add(a, b):\n    return a + b\n"


def echo_reply(model, prompt: str, top: int = 1) -> dict:
    """What OpenAI's ``/v1/completions`` answers to ``echo`` with ``logprobs`` and one generated
    token: every prompt token with its character offset, its log-probability (null for the first)
    and the ``top`` most likely tokens at its position, then the generated token; from one
    unbatched forward of ``model`` over the whole prompt."""
    encoded = model.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    ids = encoded["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model.model(torch.tensor([ids])).logits[0].double(), -1)
    following = int(logp[-1].argmax())
    tokens = [prompt[a:b] for a, b in encoded["offset_mapping"]]
    generated = model.tokenizer.decode([following])

    def top_at(row: int, token: str, value: float) -> dict:
        best = torch.topk(logp[row], top)
        found = {model.tokenizer.decode([int(i)]): float(v) for v, i in zip(*best, strict=True)}
        return {**found, token: value}

    values = [None] + [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
    tops = [None] + [top_at(i - 1, tokens[i], values[i]) for i in range(1, len(ids))]
    last = float(logp[-1, following])
    return {
        "id": "cmpl-test",
        "object": "text_completion",
        "choices": [
            {
                "index": 0,
                "text": prompt + generated,
                "logprobs": {
                    "tokens": [*tokens, generated],
                    "text_offset": [a for a, _ in encoded["offset_mapping"]] + [len(prompt)],
                    "token_logprobs": [*values, last],
                    "top_logprobs": [*tops, top_at(-1, generated, last)],
                },
                "finish_reason": "length",
            }
        ],
    }


@contextmanager
def serving(answer: Callable[[dict], tuple[int, dict]]) -> Iterator[tuple[str, list[dict]]]:
    """A Starlette app on uvicorn answering POST /v1/completions with ``answer(body)``; yields its
    URL and the request bodies it received."""
    received: list[dict] = []

    async def completions(request: Request) -> JSONResponse:
        body = await request.json()
        received.append(body)
        status, payload = answer(body)
        return JSONResponse(payload, status_code=status)

    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@pytest.fixture(scope="module")
def scoring(tiny_qwen2):
    """A server that scores prompts with the tiny model; its URL, its requests, the model."""

    def answer(body: dict) -> tuple[int, dict]:
        return 200, echo_reply(tiny_qwen2, body["prompt"], body["logprobs"])

    with serving(answer) as (url, received):
        yield url, received, tiny_qwen2


def test_endpoint_logprobs_equal_the_white_box_ones(scoring):
    url, received, model = scoring
    received.clear()
    texts = [PROMPT, PROMPT.replace("add", "multiply"), "Write a function.", PROMPT[:20]]
    endpoint = EndpointModel(url, "tiny", concurrency=1)
    remote = CompletionScorer(endpoint, COMPLETION)(texts)
    local = CompletionScorer(model, COMPLETION)(texts)
    np.testing.assert_allclose(remote, local, rtol=1e-6, atol=1e-6)
    # the probe of the echo's alignment once, then one request per text, sorted (prefix reuse),
    # and nothing generated that counts
    assert endpoint._late is False and received[0]["prompt"] == PROBE
    assert [body["prompt"] for body in received[1:]] == sorted(t + COMPLETION for t in texts)
    assert all(body["echo"] and body["max_tokens"] == 1 for body in received)
    assert all(body["logprobs"] == 1 and body["temperature"] == 0 for body in received[1:])


def test_loo_logprob_through_the_endpoint_equals_the_white_box_one(scoring):
    url, _, model = scoring
    endpoint = EndpointModel(url, "tiny")
    options = {"loo_mode": "delete"}  # the same perturbed prompts on both (no substitutes)
    remote = attribute(
        endpoint, PROMPT, "loo_logprob", completion=COMPLETION, method_options=options
    )
    local = attribute(model, PROMPT, "loo_logprob", completion=COMPLETION, method_options=options)
    assert not remote.failures and len(remote.words) == 7
    np.testing.assert_allclose(
        remote.word_scores["loo_logprob"], local.word_scores["loo_logprob"], atol=1e-6
    )


def test_contextcite_through_the_endpoint_equals_the_white_box_one(scoring):
    """The published target divides by the code's token count, which the endpoint gives too."""
    url, _, model = scoring
    endpoint = EndpointModel(url, "tiny")
    ids = model.tokenizer(COMPLETION, add_special_tokens=False)["input_ids"]
    assert endpoint.completion_token_count(COMPLETION) == len(ids)
    options = {"contextcite_alpha": 0.0}  # least squares: the tiny model's weights all count
    remote = attribute(
        endpoint, PROMPT, "contextcite", completion=COMPLETION, method_options=options
    )
    local = attribute(model, PROMPT, "contextcite", completion=COMPLETION, method_options=options)
    assert not remote.failures and np.any(remote.word_scores["contextcite"])
    np.testing.assert_allclose(
        remote.word_scores["contextcite"], local.word_scores["contextcite"], atol=1e-6
    )


def test_a_token_straddling_the_boundary_is_counted(scoring):
    """GPT-2's pre-tokenizer joins a text's final newline and the completion's indentation into
    one token; that token is counted (so every character of the completion is), and the rest are
    the completion's tokens."""
    url, _, model = scoring
    text, completion = "def add(a, b):\n", "    return a + b\n"
    reply = echo_reply(model, text + completion)
    logprobs = reply["choices"][0]["logprobs"]
    tokens, offsets = logprobs["tokens"], logprobs["text_offset"]
    straddling = max(i for i, offset in enumerate(offsets) if offset <= len(text))
    assert offsets[straddling] < len(text) < offsets[straddling + 1]  # it does straddle
    assert tokens[straddling].startswith("\n")
    want = sum(logprobs["token_logprobs"][straddling:-1])  # up to the generated token
    (got,) = EndpointModel(url, "tiny").completion_logprobs([text], completion)
    assert got == pytest.approx(want, abs=1e-9)


def test_offsets_pick_the_completion_tokens():
    offsets, values = [0, 3, 5, 9, 9, 12], [None, -1.0, -2.0, -4.0, -8.0, -16.0]
    assert completion_logprob(offsets, values, 5, 12, "m") == -14.0  # starts on a token
    assert completion_logprob(offsets, values, 6, 12, "m") == -14.0  # straddled: counted
    assert completion_logprob(offsets, values, 9, 12, "m") == -12.0  # both byte pieces
    with pytest.raises(EndpointError, match="none for the token at character 0"):
        completion_logprob(offsets, values, 2, 12, "m")
    with pytest.raises(EndpointError, match="do not start at 0"):
        completion_logprob([3, 5], [-1.0, -1.0], 4, 6, "m")


def test_vllm_prompt_logprobs_are_read():
    """vLLM's ``prompt_logprobs``: the prompt's own token first in each entry; offsets are
    counted back from the prompt's end, since the first entry is null."""
    choice = {
        "text": "!",
        "logprobs": None,
        "prompt_logprobs": [
            None,
            {"11": {"logprob": -1.5, "rank": 3, "decoded_token": " b"}, "7": {"logprob": -0.2}},
            {"12": {"logprob": -0.5, "rank": 1, "decoded_token": " c"}},
        ],
    }
    echo = echoed_logprobs(choice, "a b c")
    assert echo.offsets == [0, 1, 3] and echo.values == [None, -1.5, -0.5]
    assert completion_logprob(echo.offsets, echo.values, 3, 5, "m") == -0.5
    assert echoed_logprobs(choice, "a b d") is None  # decoded tokens that do not spell it


class WordBigram:
    """A hand-made language model over word tokens (a seeded random bigram table) that expects
    each letter's successor in the alphabet strongly, so that it continues the alignment probe
    with confidence, as any real model does; and its echo, on time or a token late."""

    SPLIT = re.compile(r"\s*\S+|\s+")

    def __init__(self, texts: list[str]) -> None:
        self.vocabulary = sorted({t for text in texts for t in self.SPLIT.findall(text)})
        index = {token: i for i, token in enumerate(self.vocabulary)}
        scores = np.random.default_rng(0).normal(size=(len(index), len(index)))
        for token, i in index.items():
            following = f" {chr(ord(token.strip()) + 1)}" if len(token.strip()) == 1 else None
            if following in index:
                scores[i, index[following]] += 12.0
        self.logp = scores - np.log(np.exp(scores).sum(1, keepdims=True))
        self.index = index

    def echo(self, prompt: str, top: int, late: bool) -> dict:
        """On time (OpenAI's convention), token i's value comes from the position before it;
        late (llama-cpp-python's for a model without BOS), from its own position, and the
        generated token is left out."""
        tokens = self.SPLIT.findall(prompt)
        ids = [self.index[t] for t in tokens]
        offsets = [0, *itertools.accumulate(len(t) for t in tokens[:-1])]
        values, tops = [None], [None]
        for i in range(1, len(ids)):
            row = self.logp[ids[i] if late else ids[i - 1]]
            best = {self.vocabulary[j]: float(row[j]) for j in np.argsort(-row)[:top]}
            values.append(float(row[ids[i]]))
            tops.append({**best, tokens[i]: float(row[ids[i]])})
        logprobs = {"tokens": tokens, "text_offset": offsets, "token_logprobs": values}
        logprobs["top_logprobs"] = tops
        if not late:  # the generated token (the most likely one) closes an on-time echo
            row = self.logp[ids[-1]]
            best_id = int(row.argmax())
            logprobs["tokens"] = [*tokens, self.vocabulary[best_id]]
            logprobs["text_offset"] = [*offsets, len(prompt)]
            logprobs["token_logprobs"] = [*values, float(row[best_id])]
            logprobs["top_logprobs"] = [*tops, {self.vocabulary[best_id]: float(row[best_id])}]
        return {"choices": [{"text": prompt + " x", "logprobs": logprobs}]}

    def completion_logprob(self, text: str, completion: str) -> float:
        """Directly: the completion's word tokens after the text's (no token straddles)."""
        ids = [self.index[t] for t in self.SPLIT.findall(text + completion)]
        first = len(self.SPLIT.findall(text))
        return float(sum(self.logp[ids[i - 1], ids[i]] for i in range(first, len(ids))))


def test_an_echo_a_token_late_is_refused_in_one_line():
    """llama-cpp-python reports token i's log-probability from position i, not i - 1, for a model
    without BOS: the alignment probe tells it from OpenAI's convention, on a model that continues
    the probe with confidence, and the call fails saying so (its values cannot be realigned)."""
    texts = ["Write a function to add numbers.", "Write a function.", "Write to add numbers."]
    completion = " def add ( a , b ) : return a + b"
    model = WordBigram([PROBE, *texts, completion])
    want = [model.completion_logprob(text, completion) for text in texts]
    for late in (False, True):

        def answer(body: dict, late: bool = late) -> tuple[int, dict]:
            return 200, model.echo(body["prompt"], body["logprobs"], late)

        with serving(answer) as (url, received):
            endpoint = EndpointModel(url, "m", concurrency=2)
            if late:
                with pytest.raises(EndpointError) as raised:
                    endpoint.completion_logprobs(texts, completion)
            else:
                np.testing.assert_allclose(
                    endpoint.completion_logprobs(texts, completion), want, rtol=1e-12
                )
        assert endpoint._late is late
        assert received[0] == {**received[0], "prompt": PROBE, "logprobs": 5}
    message = str(raised.value)
    assert "one token late" in message and "add_bos_token" in message and "\n" not in message


@pytest.mark.parametrize(
    "status,payload",
    [
        (200, {"choices": [{"text": PROMPT + " x", "logprobs": None}]}),
        (200, {"choices": [{"text": "x", "logprobs": None}]}),
        (200, {"choices": [{"text": PROMPT + COMPLETION, "logprobs": {"token_logprobs": None}}]}),
        # logprobs of the generated token only (echo ignored)
        (
            200,
            {
                "choices": [
                    {
                        "text": " x",
                        "logprobs": {"text_offset": [42], "token_logprobs": [-0.1]},
                    }
                ]
            },
        ),
        (400, {"error": {"message": "echo is not supported with logprobs"}}),
    ],
)
def test_a_server_without_prompt_logprobs_is_one_clear_line(status, payload):
    with serving(lambda body: (status, payload)) as (url, _):
        endpoint = EndpointModel(url, "m", retries=0)
        with pytest.raises(EndpointError) as raised:
            endpoint.completion_logprobs([PROMPT], COMPLETION)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"the server at {url}/v1 does not return prompt log-probabilities")
    assert "(echo with logprobs on /v1/completions)" in message


def test_a_chat_endpoint_cannot_score_code():
    endpoint = EndpointModel("http://127.0.0.1:9", "m", chat=True)
    with pytest.raises(InvalidArgumentError, match="chat endpoint"):
        endpoint.completion_logprobs([PROMPT], COMPLETION)


@pytest.mark.slow
def test_the_command_line_reports_the_missing_feature_in_one_line(tmp_path):
    """It generates the code (an ordinary completion), then the method fails on the echo."""

    def answer(body: dict) -> tuple[int, dict]:
        if body.get("echo"):
            return 200, {"choices": [{"text": body["prompt"] + "x", "logprobs": None}]}
        return 200, {"choices": [{"text": COMPLETION}]}

    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(PROMPT)
    with serving(answer) as (url, _):
        result = subprocess.run(
            [sys.executable, "-m", "codefocus.cli", "attribute", "--model", url, "--methods",
             "loo_logprob", "--prompt-file", str(prompt_file), "--no-cache"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert (
        f"loo_logprob: the server at {url}/v1 does not return prompt log-probabilities"
        in (lines[0])
    )
