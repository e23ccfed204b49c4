"""The result of attributing one task on one model: typed, validated, JSON round-trip,
self-rendering. Studies store these and reports load them, so one format serves both."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from codefocus.data.benchmarks import LabelledSpan
from codefocus.data.statements import Statement
from codefocus.data.units import Span
from codefocus.errors import InvalidArgumentError, SchemaError, UnknownNameError
from codefocus.serialization import from_jsonable, to_jsonable

# 2: spans as {start, end, text} records (1 wrote [text, start, end] lists; still read)
SCHEMA_VERSION = 2


@dataclass
class Attribution:
    """Which words of a task a model relied on, by each method.

    ``prompt`` is the text whose words are scored (the task prompt); ``model_input`` is what the
    model read (for MBPP the prompt plus the study's function header). Token spans refer to
    ``model_input``, word and human spans to ``prompt`` (a prefix of it, so they agree).

    Invariants, checked on construction (``SchemaError`` when broken): each method's word scores
    has one value per word and its token scores one per token; each statement row one value per
    word and one row per statement; every span lies inside its text.
    """

    model: str
    task_id: str | None
    prompt: str
    model_input: str
    generated: str
    tokens: list[Span]
    words: list[Span]
    token_scores: dict[str, list[float]]
    word_scores: dict[str, list[float]]
    statements: list[Statement] = field(default_factory=list)
    statement_word_scores: dict[str, list[list[float]]] = field(default_factory=dict)
    human_spans: list[LabelledSpan] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``SchemaError`` unless the scores fit the words, tokens and statements."""
        where = self.task_id or "prompt"
        for name, spans, text in (
            ("word", self.words, self.prompt),
            ("token", self.tokens, self.model_input),
        ):
            for span in spans:
                if span.end > len(text):
                    raise SchemaError(
                        f"{where}: {name} span {span.start}-{span.end} is past the text"
                    )
        for kind, scores, count in (
            ("word", self.word_scores, len(self.words)),
            ("token", self.token_scores, len(self.tokens)),
        ):
            for method, values in scores.items():
                if len(values) != count:
                    raise SchemaError(
                        f"{where}: method {method} has {len(values)} {kind} scores for "
                        f"{count} {kind}s"
                    )
        for method, rows in self.statement_word_scores.items():
            if len(rows) != len(self.statements) or any(len(r) != len(self.words) for r in rows):
                raise SchemaError(
                    f"{where}: method {method}'s statement scores do not fit "
                    f"{len(self.statements)} statements x {len(self.words)} words"
                )

    @property
    def methods(self) -> list[str]:
        return list(self.word_scores)

    def scores(self, method: str) -> list[float]:
        if method not in self.word_scores:
            raise UnknownNameError(
                f"no scores for method {method!r}: this attribution has {', '.join(self.methods)}"
            )
        return self.word_scores[method]

    @property
    def contrast(self) -> dict | None:
        """The recorded contrast (``source``, ``text``) of a contrastive attribution, else None."""
        contrast = self.settings.get("contrast")
        return contrast if isinstance(contrast, dict) and "text" in contrast else None

    def ranking(self, method: str) -> list[float]:
        """What the top K is read from: the scores, or for a contrastive attribution their
        sizes ``|score|``. A contrastive score explains ``log p(code) - log p(contrast)``, so a
        word matters by how far it moved that choice, either way; its sign says which way."""
        return self._ranked(self.scores(method))

    def _ranked(self, scores: list[float]) -> list[float]:
        return [abs(v) for v in scores] if self.contrast is not None else scores

    def top_k(self, method: str, k: int) -> list[Span]:
        """The K highest-ranked words (``ranking``; ties to the earlier word), in prompt order.

        Always K words (or all of them), as the alignment metrics count: where fewer than K
        words have a non-zero contrastive score, zero-score words fill the rest. The explorer
        highlights only the words that moved the choice (``reports.explorer.top_by_size``)."""
        from codefocus.metrics.alignment import check_k, top_k_indices

        check_k(k)
        chosen = sorted(top_k_indices(self.ranking(method), k).tolist())
        return [self.words[i] for i in chosen]

    @property
    def protocol_units(self) -> str:
        """What the white-box methods rank under the recorded protocol: ``tokens`` or ``words``
        (results from before protocols were recorded: words)."""
        return str(self.settings.get("protocol", {}).get("units", "words"))

    @property
    def stored_labels(self) -> bool:
        """Whether the human spans are the study's as stored (a ``kou2024`` protocol)."""
        return self.settings.get("protocol", {}).get("labels") == "stored"

    def stored_pairs(self, method: str) -> list[list]:
        """The method's scores in the study's stored format, ``[[unit, score], ...]`` in prompt
        order: under a token protocol the white-box methods' units are the model's tokens as text
        without surrounding whitespace (the study's cleaned BPE pieces; whitespace-only tokens
        are left out, as the study's search could not place them), otherwise the words."""
        if self.protocol_units == "tokens" and method in self.token_scores:
            return [
                [token.text.strip(), float(score)]
                for token, score in zip(self.tokens, self.token_scores[method], strict=True)
                if token.text.strip()
            ]
        return [
            [word.text, float(score)]
            for word, score in zip(self.words, self.scores(method), strict=True)
        ]

    def alignment(self, ks=(5, 10, 20)) -> dict[str, list]:
        """Alignment of every method with the human labels (when the task has labels).

        Under a protocol with stored labels (``kou2024``) the study's scorer is used, exactly as
        ``codefocus reproduce kou2024`` scores the study's stored files: units located by a
        left-to-right search of their text, the spans as stored. Otherwise words (or, under a
        token protocol, the tokens' own spans) are compared with the spans directly."""
        from codefocus.metrics.alignment import align, check_k

        if isinstance(ks, int) or not all(isinstance(k, int) for k in ks):
            raise InvalidArgumentError(f"ks must be a list of integers such as [5, 10], got {ks!r}")
        for k in ks:
            check_k(k)
        if not self.human_spans:
            return {}
        return {method: align([self.prompt_units(method)], ks) for method in self.word_scores}

    def prompt_units(self, method: str):
        """The units ``method`` ranks and the human spans, as ``alignment`` compares them (a
        contrastive attribution's by ``|score|``, as ``ranking`` says)."""
        from codefocus.metrics.alignment import PromptUnits

        if self.stored_labels:
            return self.study_prompt_units(method)
        if self.protocol_units == "tokens" and method in self.token_scores:
            units, scores = self.tokens, self._ranked(self.token_scores[method])
        else:
            units, scores = self.words, self.ranking(method)
        return PromptUnits.build(
            self.task_id or "prompt",
            [(u.start, u.end) for u in units],
            scores,
            [(s.start, s.end) for s in self.human_spans],
            [s.category for s in self.human_spans],
        )

    def study_prompt_units(self, method: str):
        """This prompt's units for ``method`` as the study's scorer sees them."""
        from codefocus.data.units import find_units
        from codefocus.metrics.alignment import PromptUnits

        pairs = self.stored_pairs(method)
        spans = find_units(self.prompt, [unit for unit, _ in pairs])
        kept = [(s.start, s.end, v) for s, (_, v) in zip(spans, pairs, strict=True) if s]
        return PromptUnits.build(
            self.task_id or "prompt",
            [(a, b) for a, b, _ in kept],
            self._ranked([v for _, _, v in kept]),
            [(s.start, s.end) for s in self.human_spans],
            [s.category for s in self.human_spans],
        )

    def faithfulness(self, model, methods: list[str] | None = None, **options):
        """How faithful each method's ranking is to ``model`` (the model this attribution
        explains): deletion and insertion curves, AOPC, controls, code change and LDS.
        ``options`` are those of ``codefocus.faithfulness.evaluate_faithfulness``."""
        from codefocus.faithfulness import evaluate_faithfulness

        return evaluate_faithfulness(model, self, methods, **options)

    # ---- selecting and combining -------------------------------------------------------------
    def select(self, methods: list[str] | str) -> Attribution:
        """The same attribution with only ``methods`` (in that order)."""
        names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else methods
        for name in names:
            if name not in self.failures:
                self.scores(name)  # unknown names fail here

        def keep(scores: dict) -> dict:
            return {n: scores[n] for n in names if n in scores}

        settings = dict(self.settings)
        if isinstance(settings.get("methods"), dict):  # each method's options
            settings["methods"] = keep(settings["methods"])
        return replace(
            self,
            token_scores=keep(self.token_scores),
            word_scores=keep(self.word_scores),
            statement_word_scores=keep(self.statement_word_scores),
            settings=settings,
            timings={k: v for k, v in self.timings.items() if k in names or k == "generate"},
            failures={k: v for k, v in self.failures.items() if k in names},
        )

    def merge(self, other: Attribution) -> Attribution:
        """One attribution with the methods of both: they must explain the same generation of
        the same input with the same words (``other``'s scores win for a method in both)."""
        same = (
            self.model == other.model
            and self.model_input == other.model_input
            and self.generated == other.generated
            and self.words == other.words
            and self.tokens == other.tokens
            and self.statements == other.statements
        )
        if not same:
            raise InvalidArgumentError(
                f"cannot merge attributions of different generations ({self.task_id or 'prompt'}, "
                f"{other.task_id or 'prompt'}): model, input, code, words or statements differ"
            )
        if self.contrast != other.contrast:  # scores of two different targets
            raise InvalidArgumentError(
                f"cannot merge attributions of different targets ({self.task_id or 'prompt'}): "
                "one explains another contrast, or none"
            )
        settings = {**self.settings, **other.settings}
        if isinstance(self.settings.get("methods"), dict):
            settings["methods"] = {**self.settings["methods"], **other.settings.get("methods", {})}
        return replace(
            self,
            token_scores={**self.token_scores, **other.token_scores},
            word_scores={**self.word_scores, **other.word_scores},
            statement_word_scores={**self.statement_word_scores, **other.statement_word_scores},
            settings=settings,
            timings={**self.timings, **other.timings},
            # a failure stays unless the other attribution has that method's scores
            failures={k: v for k, v in self.failures.items() if k not in other.word_scores}
            | other.failures,
        )

    # ---- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"schema": SCHEMA_VERSION, **to_jsonable(self)}

    @classmethod
    def from_dict(cls, data: dict) -> Attribution:
        """Rebuild from ``to_dict`` output; refuses another schema version (version 1 is
        upgraded)."""
        if not isinstance(data, dict):
            raise SchemaError("an attribution must be a JSON object")
        version = data.get("schema")
        if version == 1:
            data = _upgrade_from_1(data)
        elif version != SCHEMA_VERSION:
            raise SchemaError(
                f"attribution schema {version!r} is not supported: this codefocus reads "
                f"schema {SCHEMA_VERSION} (and upgrades 1)"
            )
        try:
            return from_jsonable(cls, {k: v for k, v in data.items() if k != "schema"})
        except (KeyError, TypeError, ValueError) as error:
            raise SchemaError(f"malformed attribution: {error}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Attribution:
        """From a JSON text (``load`` reads a file)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SchemaError(f"not an attribution: invalid JSON ({error})") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write the JSON to ``path`` atomically (a temporary file, then a rename)."""
        from codefocus.storage import write_text_atomic

        return write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Attribution:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidArgumentError(f"cannot read attribution {path}: {error}") from None
        return cls.from_json(text)

    # ---- rendering -----------------------------------------------------------------------
    def show(self, methods: list[str] | None = None, k: int = 10, console=None) -> None:
        """Print the prompt highlighted by each method's top-K words (terminal)."""
        from codefocus.reports.terminal import print_attribution

        print_attribution(self, methods or self.methods, k, console)

    def to_html(
        self,
        methods: list[str] | None = None,
        k: int = 10,
        reference: str | None = None,
        verdict: str | None = None,
    ) -> str:
        """A self-contained HTML page: the explorer (which words produced which statements),
        each method's top-K scores and their alignment with the labels."""
        from codefocus.reports.html import attribution_html

        return attribution_html(self, methods or self.methods, k, reference, verdict)

    def _repr_html_(self) -> str:
        """Jupyter shows the explorer."""
        from codefocus.reports.explorer import explorer_html

        return explorer_html(self)

    def __repr__(self) -> str:
        """Short, as inseq's and shap's objects are: what, not the whole prompt."""
        failed = f", failed={sorted(self.failures)}" if self.failures else ""
        return (
            f"Attribution(model={self.model!r}, task={self.task_id or 'prompt'!r}, "
            f"methods={self.methods}, words={len(self.words)}, tokens={len(self.tokens)}, "
            f"statements={len(self.statements)}, generated={len(self.generated)} chars{failed})"
        )


def _upgrade_from_1(data: dict) -> dict:
    """Schema 1 wrote spans as ``[text, start, end]`` lists."""

    def span(item) -> dict:
        if isinstance(item, list):
            return {"text": str(item[0]), "start": int(item[1]), "end": int(item[2])}
        return item

    return {
        **data,
        "schema": SCHEMA_VERSION,
        "tokens": [span(t) for t in data.get("tokens", [])],
        "words": [span(w) for w in data.get("words", [])],
    }
