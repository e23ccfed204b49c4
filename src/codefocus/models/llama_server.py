"""llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) on a local GGUF,
started for the length of a ``with`` block: how the benchmarks and the integration tests put the
packaged model behind a real endpoint (``EndpointModel``).

``BOS_LED`` are the options that make llama-cpp-python 0.3.36 report a BOS-less model's echoed
prompt log-probabilities on time (``EndpointModel.completion_logprobs`` refuses the server
otherwise): every prompt then starts with a BOS token, which changes what the model reads.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from codefocus.errors import EndpointError

# prompt log-probabilities (echo) need every position's logits
PROMPT_LOGPROBS = ("--logits_all", "true")
BOS_LED = ("--kv_overrides", "tokenizer.ggml.add_bos_token=bool:true")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def llama_server(
    gguf: str | Path,
    *options: str,
    threads: int | None = None,
    n_ctx: int = 2048,
    start_timeout: float = 300.0,
) -> Iterator[str]:
    """Run the server on ``gguf`` (seed 0, ``n_ctx`` tokens of context, ``threads`` threads or
    llama.cpp's default, any further server ``options``) and yield its URL once it answers
    ``/v1/models``; stop it when the block ends. A server that exits or stays silent for
    ``start_timeout`` seconds raises ``EndpointError`` in one line."""
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
        "--port", str(port), "--n_ctx", str(n_ctx), "--seed", "0",
    ]  # fmt: skip
    if threads is not None:
        command += ["--n_threads", str(threads)]
    # its log goes to a file, not a pipe (a full pipe would stall it): the last line says why
    # a server that exits while starting did
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        process = subprocess.Popen([*command, *options], stdout=subprocess.DEVNULL, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_answering(process, url, start_timeout, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _last_line(log) -> str:
    log.seek(0)
    lines = [line.strip() for line in log.read().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def _wait_until_answering(process: subprocess.Popen, url: str, timeout: float, log) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2):  # noqa: S310 - local
                return
        except OSError:
            if process.poll() is not None:
                raise EndpointError(
                    f"the llama.cpp server exited while starting (exit {process.returncode}): "
                    f"{_last_line(log)}"
                ) from None
            time.sleep(1)
    raise EndpointError(f"the llama.cpp server did not answer within {timeout:.0f} s")
