"""The OpenAI-compatible endpoint backend against real HTTP servers on 127.0.0.1: codefocus' own
server (serving a tiny model) and deliberately faulty servers for the error paths."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from codefocus.api import attribute
from codefocus.errors import InvalidArgumentError
from codefocus.generation.records import GenerationSettings
from codefocus.models.endpoint import EndpointError, EndpointModel
from codefocus.models.hf import HFModel
from codefocus.models.server import make_server
from codefocus.models.tiny import build_tiny_model


@pytest.fixture(scope="module")
def served(tiny_qwen2):
    model = tiny_qwen2
    server = make_server(model, api_key="secret")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield model, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_completions_match_the_local_model(served):
    model, url = served
    endpoint = EndpointModel(url, "tiny", api_key="secret")
    prompts = ["def add(a, b):", "Write a function to sort a list."]
    remote = endpoint.generate(prompts, max_new_tokens=6)
    local = model.generate(prompts, max_new_tokens=6)
    assert [g.completion for g in remote] == [g.completion for g in local]


def test_endpoint_fingerprint_follows_the_served_weights():
    """The cache key of an endpoint includes the server's description of the model: the same
    URL and model id serving other weights is another model."""
    fingerprints = []
    port = 0
    for seed in (0, 0, 1):
        net, tokenizer = build_tiny_model("qwen2", seed=seed)
        server = make_server(HFModel(net, tokenizer, "tiny", device="cpu"), port=port)
        port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            fingerprints.append(EndpointModel(f"http://127.0.0.1:{port}", "tiny").fingerprint)
        finally:
            server.shutdown()
            server.server_close()
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]


def test_chat_endpoint(served):
    _, url = served
    endpoint = EndpointModel(url, "tiny", api_key="secret", chat=True)
    (generation,) = endpoint.generate(
        ["def add(a, b):"], GenerationSettings(stop_at_function_end=False), 4
    )
    assert isinstance(generation.completion, str)


@pytest.mark.slow
def test_perturbation_methods_through_the_endpoint(served):
    _, url = served
    endpoint = EndpointModel(url, "tiny", api_key="secret")
    result = attribute(
        endpoint,
        "Write a function to find the largest number.",
        "occlusion,bert_masking",
        settings=GenerationSettings(max_new_tokens=6),
        similarity="sacrebleu",
    )
    assert not result.failures and set(result.word_scores) == {"occlusion", "bert_masking"}
    with pytest.raises(InvalidArgumentError, match="need a white-box model"):
        attribute(endpoint, "Write a function.", "saliency_coding", completion="pass")


def test_wrong_key_is_one_clear_error(served):
    _, url = served
    with pytest.raises(EndpointError, match="authentication failed"):
        EndpointModel(url, "tiny", api_key="wrong").generate(["x"], max_new_tokens=2)


def _faulty(script):
    """A real HTTP server answering POSTs from a script of (status, body) pairs."""
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            return

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, body = script[min(len(calls), len(script) - 1)]
            calls.append(status)
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, calls


def test_retries_then_succeeds_on_429_and_500():
    ok = json.dumps({"choices": [{"text": "    return 1\n"}]})
    server, calls = _faulty([(429, "slow down"), (500, "oops"), (200, ok)])
    try:
        endpoint = EndpointModel(f"http://127.0.0.1:{server.server_address[1]}", backoff=0.01)
        assert endpoint.generate(["def f():"], max_new_tokens=4)[0].completion == "    return 1\n"
        assert calls == [429, 500, 200]
    finally:
        server.shutdown()


def test_persistent_429_and_malformed_replies_and_unreachable():
    server, calls = _faulty([(429, "slow down")])
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(EndpointError, match="rate limited"):
            EndpointModel(url, retries=2, backoff=0.01).generate(["x"], max_new_tokens=2)
        assert len(calls) == 3  # bounded
    finally:
        server.shutdown()
    for body in ("not json", json.dumps({"choices": []})):
        server, _ = _faulty([(200, body)])
        try:
            with pytest.raises(EndpointError, match="malformed reply"):
                EndpointModel(f"http://127.0.0.1:{server.server_address[1]}").generate(
                    ["x"], max_new_tokens=2
                )
        finally:
            server.shutdown()
    with pytest.raises(EndpointError, match="cannot reach"):
        EndpointModel("http://127.0.0.1:9", retries=1, backoff=0.01, timeout=2).generate(
            ["x"], max_new_tokens=2
        )


def test_a_llama_server_that_cannot_start_fails_in_one_line(tmp_path):
    # the helper the benchmarks and the llama.cpp integration tests start their server with:
    # a server that exits while starting (no such GGUF; or no llama-cpp-python at all) is one
    # line that ends with the last line the server logged, which names the cause
    from codefocus.models.llama_server import llama_server

    with pytest.raises(EndpointError, match="exited while starting") as error:
        with llama_server(tmp_path / "missing.gguf", start_timeout=120):
            pytest.fail("the block must not run")
    message = str(error.value)
    assert "\n" not in message
    assert message.split("): ", 1)[1] not in ("", "no output")
