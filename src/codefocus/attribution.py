"""The result of attributing one task on one model: typed, JSON round-trip, self-rendering."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from codefocus.data.statements import Statement
from codefocus.data.tasks import LabelledSpan
from codefocus.errors import InvalidArgumentError, UnknownNameError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Unit:
    """A piece of the prompt (a model token or a word) and its character span in ``prompt``."""

    text: str
    start: int
    end: int

    def to_list(self) -> list:
        return [self.text, self.start, self.end]

    @classmethod
    def from_list(cls, data: list) -> Unit:
        return cls(str(data[0]), int(data[1]), int(data[2]))


@dataclass
class Attribution:
    """Which words of a task a model relied on, by each method.

    ``prompt`` is the text whose words are scored (the task prompt); ``model_input`` is what the
    model read (for MBPP the prompt plus the study's function header). Token spans refer to
    ``model_input``, word and human spans to ``prompt`` (a prefix of it, so they agree).
    """

    model: str
    task_id: str | None
    prompt: str
    model_input: str
    generated: str
    tokens: list[Unit]
    words: list[Unit]
    token_scores: dict[str, list[float]]
    word_scores: dict[str, list[float]]
    statements: list[Statement] = field(default_factory=list)
    statement_word_scores: dict[str, list[list[float]]] = field(default_factory=dict)
    human_spans: list[LabelledSpan] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def methods(self) -> list[str]:
        return list(self.word_scores)

    def scores(self, method: str) -> list[float]:
        if method not in self.word_scores:
            raise UnknownNameError(
                f"no scores for method {method!r}: this attribution has {', '.join(self.methods)}"
            )
        return self.word_scores[method]

    def top_k(self, method: str, k: int) -> list[Unit]:
        """The K highest-scoring words (ties to the earlier word), in prompt order."""
        from codefocus.metrics.alignment import top_k_indices

        if k <= 0:
            raise InvalidArgumentError(f"K must be positive, got {k}")
        chosen = sorted(top_k_indices(self.scores(method), k).tolist())
        return [self.words[i] for i in chosen]

    def alignment(self, ks=(5, 10, 20)) -> dict[str, list]:
        """Alignment of every method with the human labels (when the task has labels)."""
        from codefocus.metrics.alignment import PromptUnits, align

        if not self.human_spans:
            return {}
        human = [(s.start, s.end) for s in self.human_spans]
        categories = [s.category for s in self.human_spans]
        spans = [(w.start, w.end) for w in self.words]
        return {
            method: align(
                [PromptUnits.build(self.task_id or "prompt", spans, scores, human, categories)], ks
            )
            for method, scores in self.word_scores.items()
        }

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        def clean(values):
            return [None if (isinstance(v, float) and math.isnan(v)) else v for v in values]

        return {
            "schema": SCHEMA_VERSION,
            "model": self.model,
            "task_id": self.task_id,
            "prompt": self.prompt,
            "model_input": self.model_input,
            "generated": self.generated,
            "tokens": [t.to_list() for t in self.tokens],
            "words": [w.to_list() for w in self.words],
            "token_scores": {k: clean(v) for k, v in self.token_scores.items()},
            "word_scores": {k: clean(v) for k, v in self.word_scores.items()},
            "statements": [s.to_dict() for s in self.statements],
            "statement_word_scores": self.statement_word_scores,
            "human_spans": [s.to_dict() for s in self.human_spans],
            "settings": self.settings,
            "timings": self.timings,
            "failures": self.failures,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict())
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, data: dict) -> Attribution:
        def restore(values):
            return [float("nan") if v is None else float(v) for v in values]

        return cls(
            model=data["model"],
            task_id=data.get("task_id"),
            prompt=data["prompt"],
            model_input=data["model_input"],
            generated=data["generated"],
            tokens=[Unit.from_list(t) for t in data["tokens"]],
            words=[Unit.from_list(w) for w in data["words"]],
            token_scores={k: restore(v) for k, v in data["token_scores"].items()},
            word_scores={k: restore(v) for k, v in data["word_scores"].items()},
            statements=[Statement.from_dict(s) for s in data.get("statements", [])],
            statement_word_scores=data.get("statement_word_scores", {}),
            human_spans=[LabelledSpan.from_dict(s) for s in data.get("human_spans", [])],
            settings=data.get("settings", {}),
            timings=data.get("timings", {}),
            failures=data.get("failures", {}),
        )

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Attribution:
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    # ---- rendering -----------------------------------------------------------------------
    def show(self, methods: list[str] | None = None, k: int = 10, console=None) -> None:
        """Print the prompt highlighted by each method's top-K words (terminal)."""
        from codefocus.reports.terminal import print_attribution

        print_attribution(self, methods or self.methods, k, console)

    def to_html(self, methods: list[str] | None = None, k: int = 10) -> str:
        """A self-contained HTML page: the prompt highlighted per method, labels beside it."""
        from codefocus.reports.html import attribution_html

        return attribution_html(self, methods or self.methods, k)
