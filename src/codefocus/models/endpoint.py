"""Black-box models behind an OpenAI-compatible HTTP API (OpenAI, vLLM, llama.cpp, Ollama...).

Generation serves the perturbation methods; ``completion_logprobs`` (the log-probability of given
code, read from a server that echoes the prompt's log-probabilities) serves the likelihood
methods. Requests go out concurrently up to a limit, each with a timeout; connection errors, 429
and 5xx are retried with exponential backoff a bounded number of times; every failure ends as one
clear ``EndpointError``.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from codefocus.errors import EndpointError, InvalidArgumentError
from codefocus.generation.records import Generation, GenerationSettings
from codefocus.generation.truncation import truncate_at_function_end
from codefocus.models.base import token_limits

# a text any language model continues with confidence: which way a server aligns its echo
PROBE = "a b c d e f g h i j k l m n o p q r s t"


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
        self._late: bool | None = None  # whether the server's echo is a token late (asked once)

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

    def completion_logprobs(self, texts: Sequence[str], completion: str) -> np.ndarray:
        """``log p(completion | text)`` for each text, what the likelihood methods compare: one
        ``/v1/completions`` request per text, ``prompt = text + completion`` with ``echo`` and
        ``logprobs``, whose reply holds every prompt token's log-probability; the completion's
        tokens are summed. Nothing is regenerated: ``max_tokens`` is 1 (llama-cpp-python reads 0
        as "no limit") and that one generated token is ignored.

        The server tokenizes ``text + completion`` as one string, so one token may straddle the
        boundary (the end of the text and the start of the completion merged, as ``"\\n"`` and
        indentation are by GPT-2's tokenizer). That token is counted, with the log-probability
        the server gives it: every character of the completion is scored exactly once, and the
        text characters that token also holds are scored with it. A white-box model scores the
        completion's own tokens after the text's (``methods/likelihood.py``); the two agree
        exactly wherever no token straddles.

        A server that reports each echoed log-probability one token late (llama-cpp-python for a
        model without a BOS token: ``_reads_late``) is refused with one line saying so: its values
        cannot be realigned from outside (the top log-probabilities it also sends are keyed by
        text, which several tokens share).
        """
        if self.chat:
            raise InvalidArgumentError(
                f"{self.name} is a chat endpoint, which cannot score given code: the likelihood "
                "methods need /v1/completions with echo and logprobs (an http:// endpoint)"
            )
        if not completion:
            return np.zeros(len(texts))
        if any(not text for text in texts):
            raise InvalidArgumentError("an empty input has no likelihood to compare")
        self._reads_late()  # asked once, before the requests go out together
        # sorted, as generate sends them: neighbouring prompts share their longest prefixes
        order = sorted(range(len(texts)), key=lambda i: texts[i])
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            scored = list(pool.map(lambda i: self._score(texts[i], completion), order))
        totals = np.zeros(len(texts))
        totals[order] = scored
        return totals

    def completion_token_count(self, completion: str) -> int:
        """How many tokens ``completion`` is, as the server tokenizes it alone (what a white-box
        tokenizer would say; contextcite's published target divides by it): one echo request."""
        if self.chat:
            raise InvalidArgumentError(
                f"{self.name} is a chat endpoint, which cannot count the tokens of given code"
            )
        if not completion:
            return 0
        echo = self._echo(completion, 1)
        return sum(
            1 for offset in echo.offsets if isinstance(offset, int) and offset < len(completion)
        )

    def _missing_prompt_logprobs(self) -> str:
        return (
            f"the server at {self.base_url} does not return prompt log-probabilities (echo with "
            "logprobs on /v1/completions), which the likelihood methods need"
        )

    def _score(self, text: str, completion: str) -> float:
        offsets, values = self.prompt_logprobs(text + completion)
        missing = self._missing_prompt_logprobs()
        return completion_logprob(offsets, values, len(text), len(text + completion), missing)

    def prompt_logprobs(self, prompt: str) -> tuple[list[int], list[float | None]]:
        """Each token of ``prompt`` as the server tokenizes it: its character offset and its
        log-probability given the tokens before it (``None`` for the first); one request."""
        if self._reads_late():
            raise EndpointError(
                f"the server at {self.base_url} reports each echoed log-probability one token "
                "late (llama-cpp-python does for a model without a BOS token, "
                "abetlen/llama-cpp-python#1983), so the likelihood methods cannot use it: start "
                "it with --kv_overrides tokenizer.ggml.add_bos_token=bool:true (every prompt "
                "then starts with BOS) or use a server that aligns them (vLLM)"
            )
        echo = self._echo(prompt, 1)
        # without what the server generated after the prompt
        kept = sum(1 for o in echo.offsets if not isinstance(o, int) or o < len(prompt))
        return echo.offsets[:kept], echo.values[:kept]

    def _reads_late(self) -> bool:
        """Whether the server reports each echoed token's log-probability one position late, as
        llama-cpp-python (0.3.x) does for a model without a BOS token (Qwen's among them;
        abetlen/llama-cpp-python#1983): token i's value is then log p(token i | tokens up to i).
        Asked once, with a text that any language model continues with confidence: read late,
        its tokens' values are far below the ones the previous positions' top log-probabilities
        give them."""
        if self._late is None:
            echo = self._echo(PROBE, 5)
            late = echo.read_late()
            self._late = False
            if late is not None:
                pairs = [
                    (given, read)
                    for given, read in list(zip(echo.values, late, strict=True))[5:]
                    if isinstance(given, int | float)
                ]
                known = [(given, read) for given, read in pairs if read is not None]
                if pairs and len(known) >= 0.8 * len(pairs):
                    as_given = float(np.mean([given for given, _ in known]))
                    as_late = float(np.mean([read for _, read in known]))
                    self._late = as_late > as_given + 2.0
        return self._late

    def _echo(self, prompt: str, top: int) -> Echo:
        body = {
            "model": self.model,
            "prompt": prompt,
            "echo": True,
            "logprobs": top,
            "max_tokens": 1,
            "temperature": 0.0,
            "cache_prompt": True,
        }
        try:
            reply = self._post("/completions", body)
        except EndpointError as error:
            reason = str(error)
            if "echo" in reason.lower() or "logprob" in reason.lower():
                raise EndpointError(f"{self._missing_prompt_logprobs()}: {reason}") from None
            raise
        try:
            choice = reply["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise EndpointError(
                f"malformed reply from {self.base_url}/completions: {str(reply)[:200]}"
            ) from None
        echo = echoed_logprobs(choice, prompt) if isinstance(choice, dict) else None
        if echo is None:
            raise EndpointError(self._missing_prompt_logprobs())
        return echo

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


@dataclass(frozen=True)
class Echo:
    """An echoed prompt as the server tokenized it: each token's character offset and its
    log-probability (``None`` for the first); where the reply has them, each token's text and
    the top log-probabilities at its position."""

    offsets: list[int]
    values: list[float | None]
    tokens: list[str] | None = None
    tops: list[dict | None] | None = None

    def read_late(self) -> list[float | None] | None:
        """The values as a server that reports each one a position late implies them: token i's
        from the top log-probabilities given at position i - 1 (``None`` where it is not among
        them); ``None`` when the reply has no tokens or top log-probabilities."""
        if self.tokens is None or self.tops is None:
            return None
        values: list[float | None] = [None]
        for token, top in zip(self.tokens[1:], self.tops, strict=False):
            # an empty text (a piece of a character) names no token for sure among the top
            value = top.get(token) if isinstance(top, dict) and token else None
            values.append(float(value) if isinstance(value, int | float) else None)
        return values


def echoed_logprobs(choice: dict, prompt: str) -> Echo | None:
    """The echoed tokens of a ``/v1/completions`` reply, from the OpenAI shape
    (``logprobs.text_offset``, ``token_logprobs``, ``tokens``, ``top_logprobs``) or from vLLM's
    ``prompt_logprobs`` (one ``{token id: {logprob, decoded_token}}`` per prompt token, the
    prompt's own token listed first; offsets counted back from the prompt's end). ``None`` when
    the reply has neither."""
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
        text = choice.get("text")
        echoes = not isinstance(text, str) or text.startswith(prompt)
        if isinstance(offsets, list) and isinstance(values, list) and values and echoes:
            if len(offsets) == len(values):
                tokens, tops = logprobs.get("tokens"), logprobs.get("top_logprobs")
                same = all(isinstance(x, list) and len(x) == len(values) for x in (tokens, tops))
                return Echo(offsets, values, *((tokens, tops) if same else (None, None)))
    entries = choice.get("prompt_logprobs")
    if not isinstance(entries, list) or len(entries) < 2:
        return None
    pieces: list[str] = []
    values = [None]
    for entry in entries[1:]:
        own = next(iter(entry.values()), None) if isinstance(entry, dict) else None
        if not isinstance(own, dict) or not isinstance(own.get("decoded_token"), str):
            return None
        pieces.append(own["decoded_token"])
        values.append(own.get("logprob"))
    tail = "".join(pieces)
    if not prompt.endswith(tail):
        return None  # the decoded tokens do not spell the prompt: no offsets to trust
    offsets, position = [0], len(prompt) - len(tail)
    for piece in pieces:
        offsets.append(position)
        position += len(piece)
    return Echo(offsets, values)


def completion_logprob(
    offsets: Sequence[int], values: Sequence[float | None], boundary: int, end: int, missing: str
) -> float:
    """Sum of the log-probabilities of the tokens holding characters ``boundary:end`` of the echoed
    prompt: from the token holding character ``boundary`` (the one that starts there, or the one
    that straddles it) to the last token that starts before ``end`` (what the server generated
    starts at ``end`` and is left out). Tokens sharing an offset (the byte pieces of one
    character) are all counted. ``missing`` begins the error when the reply cannot say."""
    in_order = all(isinstance(o, int) for o in offsets) and all(
        a <= b for a, b in itertools.pairwise(offsets)
    )
    if not offsets or offsets[0] != 0 or not in_order:
        raise EndpointError(f"{missing} (the echoed token offsets do not start at 0 in order)")
    first = max(offset for offset in offsets if offset <= boundary)
    total = 0.0
    for offset, value in zip(offsets, values, strict=True):
        if first <= offset < end:
            if not isinstance(value, int | float):
                raise EndpointError(f"{missing} (none for the token at character {offset})")
            total += float(value)
    return total
