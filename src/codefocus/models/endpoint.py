"""Black-box models behind an OpenAI-compatible HTTP API (OpenAI, vLLM, llama.cpp, Ollama...).

Only generation is needed (the perturbation methods). Requests go out concurrently up to a limit,
each with a timeout; connection errors, 429 and 5xx are retried with exponential backoff a
bounded number of times; every failure ends as one clear ``EndpointError``.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from codefocus.errors import EndpointError, InvalidArgumentError
from codefocus.generation.records import Generation, GenerationSettings
from codefocus.generation.truncation import truncate_at_function_end
from codefocus.models.base import token_limits


class EndpointModel:
    """``/v1/completions`` (default) or ``/v1/chat/completions`` (``chat=True``)."""

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        api_key: str | None = None,
        chat: bool = False,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        concurrency: int = 4,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.chat = chat
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.concurrency = concurrency
        self.name = f"{model}@{self.base_url}"
        self.requests_sent = 0

    @classmethod
    def from_spec(cls, spec: str) -> EndpointModel:
        """``http://host:port[/v1][#model]`` or ``openai:<model>`` ($OPENAI_BASE_URL, $OPENAI_API_KEY)."""
        if spec.startswith("openai:"):
            base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
            return cls(base, spec.split(":", 1)[1], chat=True)
        url, _, model = spec.partition("#")
        parsed = urllib.parse.urlsplit(url)
        try:
            port = parsed.port
        except ValueError:
            port = None
            parsed = parsed._replace(netloc="")
        if (
            parsed.scheme not in ("http", "https")
            or not parsed.hostname
            or (":" in parsed.netloc.rsplit("@", 1)[-1] and port is None)
        ):
            raise InvalidArgumentError(
                f"bad endpoint {spec!r}: use http(s)://host:port[/v1][#model] or openai:<model>"
            )
        return cls(url, model or os.environ.get("CODEFOCUS_ENDPOINT_MODEL", "default"))

    # ---- what the methods use ---------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # rough: the endpoint's tokenizer is not known here

    def check_fits(self, n_prompt: int, n_new: int) -> None:
        return None  # the server reports a too-long context itself (as an EndpointError)

    def default_max_new_tokens(self, reference_solution: str | None) -> int:
        return self.count_tokens(reference_solution) + 20 if reference_solution else 128

    def generate(
        self,
        model_inputs: Sequence[str],
        settings: GenerationSettings | None = None,
        max_new_tokens: Sequence[int] | int | None = None,
        batch_size: int = 8,
    ) -> list[Generation]:
        settings = settings or GenerationSettings()
        limits = token_limits(len(model_inputs), settings, max_new_tokens)
        # sorted, neighbouring prompts share their longest prefixes: a server that keeps the
        # last prompt's keys and values per slot (llama.cpp with cache_prompt, llama-cpp-python)
        # or caches prefixes (vLLM) then evaluates only what changed
        order = sorted(range(len(model_inputs)), key=lambda i: model_inputs[i])
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            answered = list(
                pool.map(
                    lambda i: self._complete(model_inputs[i], limits[i], settings),
                    order,
                )
            )
        texts = [""] * len(model_inputs)
        for index, text in zip(order, answered, strict=True):
            texts[index] = text
        results = []
        for text, completion in zip(model_inputs, texts, strict=True):
            if settings.stop_at_function_end:
                completion = truncate_at_function_end(completion)
            results.append(Generation(self.name, text, completion, settings))
        return results

    @property
    def fingerprint(self) -> str:
        """For cache keys: the endpoint, the served model id, the API flavour, and the server's own
        description of that model from ``/v1/models`` (llama.cpp and vLLM report its file, size or
        parameters there). A server that swaps weights under the same id and description cannot
        be told apart from outside; such a server should be given a new model id."""
        if getattr(self, "_fingerprint", None) is None:
            import hashlib

            described = self._describe_model()
            payload = json.dumps(
                [self.base_url, self.model, self.chat, described], sort_keys=True, default=str
            )
            self._fingerprint = hashlib.sha256(payload.encode()).hexdigest()
        return self._fingerprint

    def _describe_model(self):
        request = urllib.request.Request(
            self.base_url + "/models",
            headers={"Authorization": f"Bearer {self.api_key}"} if self.api_key else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                listing = json.loads(response.read())
        except (OSError, ValueError):
            return None  # no listing: the key rests on the URL and the model id alone
        entries = listing.get("data", []) if isinstance(listing, dict) else []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("id") == self.model:
                return {k: v for k, v in entry.items() if k != "created"}
        return [e.get("id") for e in entries if isinstance(e, dict)] or None

    # ---- HTTP ---------------------------------------------------------------------------
    def _complete(self, prompt: str, limit: int, settings: GenerationSettings) -> str:
        body: dict = {
            "model": self.model,
            "max_tokens": int(limit),
            "temperature": settings.temperature if settings.do_sample else 0.0,
            "seed": settings.seed,
            # llama.cpp's server: reuse the slot's keys and values for the shared prefix (other
            # servers ignore the field; vLLM's prefix caching needs no request field)
            "cache_prompt": True,
        }
        if self.chat:
            body["messages"] = [{"role": "user", "content": prompt}]
            path = "/chat/completions"
        else:
            body["prompt"] = prompt
            path = "/completions"
        reply = self._post(path, body)
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] if self.chat else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(
                f"malformed reply from {self.base_url}{path}: {str(reply)[:200]}"
            ) from None
        if not isinstance(text, str):
            raise EndpointError(f"malformed reply from {self.base_url}{path}: text is not a string")
        return text

    def _post(self, path: str, body: dict) -> dict:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.base_url + path
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(url, data=data, headers=headers, method="POST")
            self.requests_sent += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    raw = response.read()
            except urllib.error.HTTPError as error:
                detail = error.read()[:200].decode(errors="replace")
                if error.code in (401, 403):
                    raise EndpointError(
                        f"{url}: authentication failed ({error.code}); check OPENAI_API_KEY"
                    ) from None
                if error.code == 429 or error.code >= 500:
                    last = f"{error.code} {detail}".strip()
                    continue
                raise EndpointError(f"{url}: HTTP {error.code}: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                last = str(getattr(error, "reason", error))
                continue
            try:
                return json.loads(raw)
            except ValueError:
                raise EndpointError(f"{url}: malformed reply (not JSON): {raw[:100]!r}") from None
        if last.startswith("429"):
            raise EndpointError(f"{url}: rate limited (429) after {self.retries + 1} attempts")
        raise EndpointError(f"cannot reach {url} after {self.retries + 1} attempts: {last}")
