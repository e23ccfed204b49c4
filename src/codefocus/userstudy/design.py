"""A blinded, randomized rating study of attribution methods (the study's RQ4) as data.

A design is built once from attributions in a codefocus study and written to
``US_DIR/design.json``: which tasks, which methods, each method's top-K words per task, the
questions and the seed. Participants see a method only as "Highlight 1/2/3"; the order of the
tasks and of the methods within each task is drawn per participant from ``(seed, participant
number)``, so every order can be replayed from the design alone.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from codefocus.errors import DataError, InvalidArgumentError
from codefocus.serialization import JsonRecord

DESIGN_NAME = "design.json"
LIKERT = (
    "strongly disagree",
    "disagree",
    "somewhat disagree",
    "neutral",
    "somewhat agree",
    "agree",
    "strongly agree",
)
# Kou et al., Section 3.4: three ratings per highlight, then three open questions
RATING_QUESTIONS = {
    "Q1": "The model-attended keywords align with my attention when reading the task.",
    "Q2": "This attention explains why the model succeeded or failed.",
    "Q3": "I want to see this attention when working with code generation models.",
}
OPEN_QUESTIONS = {
    "Q4": "Are you interested in how the model generates code? Why or why not?",
    "Q5": "What would you want to find out about how the model generates code?",
    "Q6": "Do you trust the model's attention as shown? What would improve your trust?",
}


@dataclass(frozen=True)
class Highlight(JsonRecord):
    """One of a method's top-K words: its span in the prompt and its score."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class DesignTask(JsonRecord):
    """A task as participants see it, with every method's highlights."""

    key: str  # model + task id, unique within the design
    task_id: str
    model: str
    prompt: str
    code: str
    verdict: str
    highlights: dict[str, list[Highlight]]


@dataclass(frozen=True)
class StudyDesign(JsonRecord):
    methods: tuple[str, ...]
    tasks: tuple[DesignTask, ...]
    k: int
    seed: int
    source: str = ""  # the codefocus study it was built from
    title: str = "How do code models pay attention?"
    rating_questions: dict[str, str] = field(default_factory=lambda: dict(RATING_QUESTIONS))
    open_questions: dict[str, str] = field(default_factory=lambda: dict(OPEN_QUESTIONS))

    def task(self, key: str) -> DesignTask:
        for task in self.tasks:
            if task.key == key:
                return task
        raise DataError(f"the design has no task {key!r}")

    def save(self, directory: Path) -> Path:
        from codefocus.storage import write_text_atomic

        return write_text_atomic(directory / DESIGN_NAME, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> StudyDesign:
        path = Path(directory) / DESIGN_NAME
        if not path.is_file():
            raise DataError(f"no user study in {directory} (missing {DESIGN_NAME})")
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"{path} is not a user-study design ({error})") from None


@dataclass(frozen=True)
class ParticipantOrder(JsonRecord):
    """The order one participant sees: task keys, and per task the methods by position."""

    tasks: tuple[str, ...]
    methods: dict[str, tuple[str, ...]]


def participant_order(design: StudyDesign, number: int) -> ParticipantOrder:
    """The randomized order of participant ``number`` (0, 1, ...): the same every time."""
    rng = random.Random(f"codefocus-userstudy:{design.seed}:{number}")
    keys = [t.key for t in design.tasks]
    rng.shuffle(keys)
    methods = {}
    for key in keys:
        own = list(design.methods)
        rng.shuffle(own)
        methods[key] = tuple(own)
    return ParticipantOrder(tuple(keys), methods)


def build_design(
    study_dir: str | Path,
    methods: list[str],
    tasks: int,
    k: int = 10,
    seed: int = 0,
    data_dir: str | Path | None = None,
) -> StudyDesign:
    """A design from the attributions stored in a codefocus study: ``tasks`` tasks drawn with
    ``seed`` among those where every method gave an attribution (scores not all equal)."""
    from codefocus.reports.explorer import top_words
    from codefocus.studies.results import load_results

    if len(set(methods)) != len(methods) or len(methods) < 2:
        raise InvalidArgumentError(f"--methods: name two or more different methods, got {methods}")
    if tasks < 1:
        raise InvalidArgumentError(f"--tasks must be positive, got {tasks}")
    _, results = load_results(Path(study_dir), data_dir)
    eligible = []
    for result in results:
        a = result.attribution
        if all(m in a.word_scores and top_words(a.word_scores[m], k) for m in methods):
            eligible.append(result)
    if len(eligible) < tasks:
        have = sorted({m for r in results for m in r.attribution.word_scores})
        raise InvalidArgumentError(
            f"--tasks {tasks}: only {len(eligible)} tasks of {study_dir} have all of "
            f"{', '.join(methods)} (the study has {', '.join(have) or 'no methods'}); compute "
            "the missing methods with --compute or ask for fewer tasks"
        )
    chosen = random.Random(seed).sample(eligible, tasks)
    chosen.sort(key=lambda r: (r.model, r.attribution.task_id or ""))
    design_tasks = []
    for result in chosen:
        a = result.attribution
        verdict = result.verdict or {}
        highlights = {}
        for method in methods:
            scores = a.word_scores[method]
            highlights[method] = [
                Highlight(a.words[i].start, a.words[i].end, float(scores[i]))
                for i in sorted(top_words(scores, k))
            ]
        design_tasks.append(
            DesignTask(
                key=f"{result.model}:{a.task_id}",
                task_id=a.task_id or "prompt",
                model=result.model,
                prompt=a.prompt,
                code=a.generated,
                verdict=(
                    "passed its tests"
                    if verdict.get("passed")
                    else "failed its tests"
                    if verdict
                    else "not evaluated"
                ),
                highlights=highlights,
            )
        )
    return StudyDesign(tuple(methods), tuple(design_tasks), k, seed, source=str(study_dir))
