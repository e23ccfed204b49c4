"""The endpoint backend against a real llama.cpp server (llama-cpp-python's OpenAI-compatible
server) serving the packaged GGUF on 127.0.0.1. llama-cpp-python builds from source; where the
build is not possible scripts/test.sh says so and this module is skipped for that reason."""

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from codefocus.api import attribute
from codefocus.generation.records import GenerationSettings
from codefocus.models.endpoint import EndpointModel
from codefocus.models.packaged import assemble_gguf

pytest.importorskip(
    "llama_cpp.server", reason="llama-cpp-python[server] did not build on this machine"
)
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    gguf = assemble_gguf(tmp_path_factory.mktemp("gguf") / "model.gguf")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--seed",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                pytest.fail("the llama.cpp server exited while starting")
            time.sleep(1)
    else:
        process.kill()
        pytest.fail("the llama.cpp server did not start within 180 s")
    yield url
    process.terminate()
    process.wait(timeout=30)


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
