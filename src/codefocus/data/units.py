"""Scored units (model sub-tokens, words, the study's cleaned tokens) as character spans.

Every comparison in codefocus happens on half-open character intervals ``[start, end)`` of one
prompt text, so any unit sequence is first turned into spans here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from codefocus.errors import InvalidArgumentError


@dataclass(frozen=True, order=True)
class Span:
    """A half-open character interval ``[start, end)`` of a prompt, with its text where known.

    The one span type: model tokens, words and statements' words are all spans. ``text`` is a
    copy of ``prompt[start:end]`` kept for reading and for JSON; it takes no part in comparisons.
    """

    start: int
    end: int
    text: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise InvalidArgumentError(f"invalid span ({self.start}, {self.end})")

    def __len__(self) -> int:
        return self.end - self.start

    def overlap(self, other: Span) -> int:
        """Number of characters shared with ``other``."""
        return max(0, min(self.end, other.end) - max(self.start, other.start))

    def substring(self, prompt: str) -> str:
        return prompt[self.start : self.end]

    def with_text(self, prompt: str) -> Span:
        """This span, carrying its text in ``prompt``."""
        return Span(self.start, self.end, prompt[self.start : self.end])


def find_units(text: str, units: Iterable[str], start: int = 0) -> list[Span | None]:
    """Locate units left to right, each searched from the end of the previous match.

    This is how the original study mapped its cleaned tokens to characters: ``str.find`` from a
    moving cursor. A unit that is not found maps to ``None`` (the study dropped it) and does not
    move the cursor.
    """
    cursor = start
    spans: list[Span | None] = []
    for unit in units:
        index = text.find(unit, cursor) if unit else -1
        if index < 0:
            spans.append(None)
            continue
        spans.append(Span(index, index + len(unit)))
        cursor = index + len(unit)
    return spans


def scored_units_from_pairs(
    text: str, pairs: Sequence[tuple[str, float]]
) -> list[tuple[Span, float]]:
    """Turn stored ``(unit, score)`` pairs into located spans and scores, dropping units not
    found."""
    spans = find_units(text, (unit for unit, _ in pairs))
    return [
        (Span(span.start, span.end, unit), float(score))
        for (unit, score), span in zip(pairs, spans, strict=True)
        if span is not None
    ]


def spans_from_offsets(offsets: Sequence[tuple[int, int]]) -> list[Span]:
    """Spans from tokenizer offsets (``return_offsets_mapping``), trimming nothing."""
    return [Span(int(s), int(e)) for s, e in offsets]


_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_PUNCTUATION_ONLY = re.compile(r"^[^\w]+$")


def word_spans(text: str, drop_punctuation: bool = True) -> list[Span]:
    """NLTK-style words of ``text`` as spans (the study's unit for perturbation methods).

    NLTK's ``word_tokenize`` needs the punkt model, which is a download; we split sentences at
    ``.!?`` followed by whitespace instead and run NLTK's own word tokenizer on each sentence,
    which gives the same words on benchmark prompts. Punctuation-only tokens are dropped, as in
    the study.
    """
    from nltk.tokenize.destructive import NLTKWordTokenizer

    tokenizer = NLTKWordTokenizer()
    spans: list[Span] = []
    position = 0
    for sentence in _SENTENCE_BREAK.split(text):
        offset = text.find(sentence, position)
        position = offset + len(sentence)
        for start, end in tokenizer.span_tokenize(sentence):
            piece = sentence[start:end]
            if drop_punctuation and _PUNCTUATION_ONLY.match(piece):
                continue
            spans.append(Span(offset + start, offset + end))
    return spans


Scope = Literal["study", "prompt"]
SCOPES = ("study", "prompt")
_DEF_LINE = re.compile(r"(?m)^[ \t]*def\s")


def scored_range(prompt: str, scope: str = "study") -> tuple[int, int]:
    """The characters of ``prompt`` whose words are scored and compared with the labels.

    ``study`` (default) is Kou et al.'s scope: from the first line that starts with ``def`` to the
    first ``>>>`` after it (HumanEval: the signature and the description, without the import
    lines and the doctest examples; to the end where there is no ``>>>``); a prompt with no
    ``def`` line (an MBPP task text) is scored whole. ``prompt`` scores every word.
    """
    if scope not in SCOPES:
        raise InvalidArgumentError(f"unknown scope {scope!r}: use study or prompt")
    if scope == "prompt":
        return 0, len(prompt)
    found = _DEF_LINE.search(prompt)
    if found is None:
        return 0, len(prompt)
    start = found.start() + len(found.group()) - len(found.group().lstrip())
    end = prompt.find(">>>", start)
    return start, end if end >= 0 else len(prompt)


def scoped_word_spans(prompt: str, scope: str = "study") -> list[Span]:
    """The words of ``prompt`` inside its scored range."""
    start, end = scored_range(prompt, scope)
    return [w for w in word_spans(prompt) if w.start >= start and w.end <= end]


Aggregation = Literal["sum", "mean", "max"]


def aggregate_to_words(
    token_spans: Sequence[Span],
    token_scores: Sequence[float],
    words: Sequence[Span],
    how: Aggregation = "sum",
) -> list[float]:
    """Aggregate sub-token scores onto words: each token goes to every word it overlaps.

    A word that no token overlaps scores 0.0.
    """
    if len(token_spans) != len(token_scores):
        raise InvalidArgumentError("token spans and scores differ in length")
    if how not in ("sum", "mean", "max"):
        raise InvalidArgumentError(f"unknown aggregation {how!r}: use sum, mean or max")
    result: list[float] = []
    for word in words:
        values = [s for t, s in zip(token_spans, token_scores, strict=True) if t.overlap(word)]
        if not values:
            result.append(0.0)
        elif how == "sum":
            result.append(float(sum(values)))
        elif how == "mean":
            result.append(float(sum(values) / len(values)))
        else:
            result.append(float(max(values)))
    return result
