"""``codefocus serve``: an OpenAI-compatible HTTP server for any white-box codefocus model.

It lets black-box tooling (and codefocus' own endpoint backend) talk to a local model over
``/v1/completions`` and ``/v1/chat/completions``. Loopback by default; one generation at a time.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from codefocus.errors import CodefocusError
from codefocus.generation.records import GenerationSettings


def _request(body, chat: bool) -> tuple[str, GenerationSettings, int]:
    """Prompt, settings and token budget of a completions request (``ValueError`` if bad)."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ValueError("'messages' must be a list of objects")
        prompt = "\n".join(str(m.get("content", "")) for m in messages)
    else:
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            raise ValueError("'prompt' must be a string")
    limit = int(body.get("max_tokens", 16))
    if limit < 1:
        raise ValueError(f"'max_tokens' must be positive, got {limit}")
    temperature = float(body.get("temperature") or 0.0)
    if temperature < 0:
        raise ValueError(f"'temperature' must be >= 0, got {temperature}")
    settings = GenerationSettings(
        do_sample=temperature > 0,
        temperature=temperature or 1.0,
        seed=int(body.get("seed") or 0),
        stop_at_function_end=False,
    )
    return prompt, settings, limit


def make_server(model, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None):
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            return

        def _send(self, code: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            if self.path.rstrip("/") == "/v1/models":
                entry = {"id": model.name, "object": "model"}
                fingerprint = getattr(model, "fingerprint", None)
                if fingerprint:  # lets clients' caches tell other weights under the same id
                    entry["meta"] = {"fingerprint": fingerprint}
                self._send(200, {"object": "list", "data": [entry]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self):  # noqa: N802
            if api_key and self.headers.get("Authorization") != f"Bearer {api_key}":
                self._send(401, {"error": {"message": "invalid API key"}})
                return
            try:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._send(400, {"error": {"message": "body is not JSON"}})
                return
            chat = self.path.rstrip("/") == "/v1/chat/completions"
            if not chat and self.path.rstrip("/") != "/v1/completions":
                self._send(404, {"error": {"message": "not found"}})
                return
            try:
                prompt, settings, limit = _request(body, chat)
                with lock:
                    model.check_fits(model.count_tokens(prompt), limit)
                    text = model.generate([prompt], settings, max_new_tokens=limit)[0].completion
            except (CodefocusError, ValueError, TypeError) as error:
                # like OpenAI's API: a bad request gets a 400 and a JSON message, not a dropped
                # connection
                self._send(400, {"error": {"message": str(error), "type": "invalid_request_error"}})
                return
            except Exception as error:  # noqa: BLE001 - the server answers; it does not die
                self._send(500, {"error": {"message": f"{type(error).__name__}: {error}"}})
                return
            choice = {"index": 0, "finish_reason": "length"}
            choice |= (
                {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            )
            self._send(
                200,
                {
                    "id": "cmpl-codefocus",
                    "object": "text_completion",
                    "created": int(time.time()),
                    "model": model.name,
                    "choices": [choice],
                },
            )

    return ThreadingHTTPServer((host, port), Handler)
