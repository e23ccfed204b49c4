"""Prompt units as groups of words: what a perturbation leaves out at once.

Scores stay one per word (an ``Attribution`` is unchanged); a coarser unit only decides which
words are left out together, and each word takes its group's score. ``word_groups(prompt, words,
unit)`` maps the words of a prompt (``scoped_word_spans``) to groups of their indices: every word
in exactly one group, each group's indices ascending, the groups ordered by their first word (so
the same prompt always gives the same groups). The units:

* ``word``: each word alone (what every method did before units existed).
* ``token``: the model's own tokens (white-box models: ``tokens`` are the prompt's token spans).
  Words are the finest unit scores are reported on, so a group is never smaller than a word:
  words that share a model token (NLTK splits ``don't``, ``3.5`` is one word but several tokens)
  are one group; every other word is alone.
* ``line``: the words that start on one line of the prompt.
* ``sentence``: prose sentences. A sentence ends at ``.``, ``!`` or ``?`` followed by
  whitespace, and at a blank line. In a code prompt (a line starts with ``def``, ``class``,
  ``import`` or ``from ... import``) prose is what lies in triple-quoted strings and comments;
  every line of code is a sentence of its own, so is a doctest line (``>>>``) and the line of
  output after it, and a docstring's quotes end the sentence before them.
* ``statement``: Python statements of a code prompt (``ast`` on the longest prefix of whole lines
  that parses, as ``data/statements.py`` parses code cut off by the budget): a word belongs to the
  innermost statement that contains it (a compound statement keeps its header and clauses, its
  body's statements are their own; a HumanEval docstring is one statement); a comment is a unit
  of its own; a word outside every parsed statement is grouped by its line. A prompt that is not
  code (no statement parses: an MBPP task text) has sentences as statements.
"""

from __future__ import annotations

import ast
import bisect
import re
from collections.abc import Hashable, Sequence

import numpy as np

from codefocus.data.statements import _parse_prefix
from codefocus.data.units import Span
from codefocus.errors import InvalidArgumentError

UNIT_KINDS = ("word", "token", "line", "sentence", "statement")

_CODE_LINE = re.compile(
    r"(?m)^[ \t]*(?:async[ \t]+def|def|class|import|from[ \t]+\S+[ \t]+import)\b"
)
_TRIPLE = re.compile(r"(?s)(\"\"\"|''')(.*?)(?:\1|\Z)")
_COMMENT = re.compile(r"#[^\n]*")
_SENTENCE_END = re.compile(r"[.!?]+\s+")
_BLANK_LINE = re.compile(r"\n[ \t]*\n\s*")


def check_unit(
    unit: object, option: str = "perturb_units", kinds: Sequence[str] = UNIT_KINDS
) -> str:
    """``unit`` if it is one of ``kinds``; otherwise one line naming ``option`` and the value."""
    if not isinstance(unit, str) or unit not in kinds:
        raise InvalidArgumentError(f"unknown {option} {unit!r}: use {', '.join(kinds)}")
    return unit


def word_groups(
    prompt: str,
    words: Sequence[Span],
    unit: str = "word",
    tokens: Sequence[Span] | None = None,
) -> list[list[int]]:
    """Groups of the indices of ``words`` (spans of ``prompt``) for a ``unit`` (``UNIT_KINDS``):
    a partition of ``range(len(words))``, each group ascending, groups ordered by first word.
    ``tokens`` (the model's token spans of the prompt) are needed for ``token`` units only."""
    check_unit(unit)
    if unit == "word":
        return [[index] for index in range(len(words))]
    if unit == "token":
        if tokens is None:
            raise InvalidArgumentError(
                "perturb_units 'token' needs the model's tokens: use a white-box model"
            )
        return _token_groups(words, tokens)
    if unit == "line":
        starts = [0] + [m.end() for m in re.finditer("\n", prompt)]
        return _by_starts(words, starts)
    if unit == "sentence":
        return _by_starts(words, sentence_starts(prompt))
    return _by_key(_statement_keys(prompt, words))


def _by_key(keys: Sequence[Hashable]) -> list[list[int]]:
    """Words with equal keys in one group; groups in order of their first word."""
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def _by_starts(words: Sequence[Span], starts: Sequence[int]) -> list[list[int]]:
    """Words grouped by the segment their first character is in (``starts``: segment starts)."""
    ordered = sorted(set(starts))
    return _by_key([bisect.bisect_right(ordered, w.start) for w in words])


def _token_groups(words: Sequence[Span], tokens: Sequence[Span]) -> list[list[int]]:
    """Words joined when one model token overlaps both (neighbours, transitively)."""
    keys = list(range(len(words)))
    for token in tokens:
        touched = [i for i, w in enumerate(words) if w.overlap(token) > 0]
        for index in touched[1:]:
            old, new = keys[index], keys[touched[0]]
            keys = [new if k == old else k for k in keys]
    return _by_key(keys)


def looks_like_code(prompt: str) -> bool:
    """Whether a line of ``prompt`` starts a Python definition or an import."""
    return _CODE_LINE.search(prompt) is not None


def _triple_regions(prompt: str) -> list[tuple[int, int]]:
    """The insides of the triple-quoted strings of ``prompt`` (an unclosed one runs to the end)."""
    return [(found.start(2), found.end(2)) for found in _TRIPLE.finditer(prompt)]


def _prose_regions(prompt: str) -> list[tuple[int, int]]:
    """Where prose lies in a code prompt: inside triple-quoted strings and comments."""
    regions = _triple_regions(prompt)
    for found in _COMMENT.finditer(prompt):
        if not any(start <= found.start() < end for start, end in regions):
            regions.append((found.start(), found.end()))
    return sorted(regions)


def sentence_starts(prompt: str) -> list[int]:
    """The characters where the sentences of ``prompt`` begin (see the module's ``sentence``)."""
    code = looks_like_code(prompt)
    prose = _prose_regions(prompt) if code else [(0, len(prompt))]

    def in_prose(position: int) -> bool:
        return any(start <= position < end for start, end in prose)

    starts = {0}
    starts.update(m.end() for m in _SENTENCE_END.finditer(prompt) if in_prose(m.start()))
    starts.update(m.end() for m in _BLANK_LINE.finditer(prompt))
    if code:
        for start, end in prose:
            starts.update((start, end))  # a docstring's quotes, a comment's end
        position, previous = 0, ""
        for line in prompt.split("\n"):
            stripped = line.strip()
            doctest = stripped.startswith(">>>") or previous.startswith(">>>")
            if not in_prose(position) or doctest:
                starts.add(position)
            previous, position = stripped, position + len(line) + 1
    return sorted(starts)


def _statement_keys(prompt: str, words: Sequence[Span]) -> list[Hashable]:
    """Per word: the innermost parsed statement containing it (its character span), else its
    line; a prompt where no statement parses falls back to sentences."""
    tree = _parse_prefix(prompt) if looks_like_code(prompt) else None
    statements = [n for n in ast.walk(tree) if isinstance(n, ast.stmt)] if tree else []
    if not statements:
        starts = sentence_starts(prompt)
        return [("sentence", bisect.bisect_right(starts, w.start)) for w in words]
    lines = prompt.split("\n")
    line_starts = [0]
    for line in lines:
        line_starts.append(line_starts[-1] + len(line) + 1)

    def position(line: int, column: int) -> int:  # ast columns count UTF-8 bytes
        text = lines[line - 1].encode("utf-8")[:column].decode("utf-8", errors="ignore")
        return line_starts[line - 1] + len(text)

    spans = []
    for node in statements:
        end_line = node.end_lineno or node.lineno
        end_column = node.end_col_offset if node.end_col_offset is not None else len(lines[-1])
        spans.append((position(node.lineno, node.col_offset), position(end_line, end_column)))
    strings = _triple_regions(prompt)
    comments = [
        (m.start(), m.end())
        for m in _COMMENT.finditer(prompt)
        if not any(start <= m.start() < end for start, end in strings)
    ]
    keys: list[Hashable] = []
    for word in words:
        comment = next((c for c in comments if c[0] <= word.start < c[1]), None)
        if comment is not None:
            keys.append(("comment", comment))
            continue
        containing = [s for s in spans if s[0] <= word.start and word.end <= s[1]]
        if containing:  # innermost: the shortest span that contains the word
            keys.append(("statement", min(containing, key=lambda s: (s[1] - s[0], -s[0]))))
        else:
            keys.append(("line", bisect.bisect_right(line_starts, word.start)))
    return keys


def spread(groups: Sequence[Sequence[int]], scores: Sequence[float], count: int) -> np.ndarray:
    """One score per word (``count`` words): each word its group's score."""
    values = np.zeros(count)
    for group, score in zip(groups, scores, strict=True):
        values[list(group)] = score
    return values


def unit_owners(groups: Sequence[Sequence[int]], count: int) -> np.ndarray:
    """For each of ``count`` words, the index of the group (prompt unit) it belongs to: a
    coalition over units becomes one over words as ``coalitions[:, owners]``."""
    owners = np.empty(count, dtype=int)
    for index, group in enumerate(groups):
        owners[list(group)] = index
    return owners


def options_without_word_units(options: dict) -> dict:
    """A method's recorded options less ``perturb_units`` at its default (``word``): a result
    recorded before the option existed and one recorded since compare equal."""
    if options.get("perturb_units") == "word":
        return {name: value for name, value in options.items() if name != "perturb_units"}
    return options
