"""Statements of generated Python code as line ranges, for the word -> statement map."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from codefocus.serialization import JsonRecord


@dataclass(frozen=True)
class Statement(JsonRecord):
    """A statement's own lines in the completion (1-based, inclusive) and its text.

    A compound statement (``if``, ``for``, ``def`` ...) owns its header lines only; its body
    statements are statements of their own.
    """

    first_line: int
    last_line: int
    text: str


def _parse_prefix(source: str) -> ast.Module | None:
    """Parse the longest prefix of whole lines that parses (generated code may be cut off)."""
    lines = source.split("\n")
    for end in range(len(lines), 0, -1):
        try:
            return ast.parse("\n".join(lines[:end]))
        except SyntaxError:
            continue
    return None


def code_start(model_input: str, completion: str) -> int:
    """Where the code of ``model_input`` begins: the first line from which the input and the
    completion parse together into the completion (MBPP's input is English text followed by the
    study's ``def function():`` header; a HumanEval prompt is code from its first line)."""
    lines = model_input.split("\n")
    first_completion_line = len(lines)  # 1-based line of the completion's first line, from 0
    position = 0
    for index in range(len(lines)):
        tree = _parse_prefix(model_input[position:] + completion)
        covered = (
            max((getattr(n, "end_lineno", 0) or 0 for n in ast.walk(tree)), default=0)
            if tree is not None
            else 0
        )
        if covered >= first_completion_line - index:
            return position
        position += len(lines[index]) + 1
    return len(model_input)


def statements_of(model_input: str, completion: str) -> list[Statement]:
    """Statements whose lines lie in ``completion`` (line numbers relative to the completion).

    Only the code part of the input is parsed with the completion (see ``code_start``)."""
    model_input = model_input[code_start(model_input, completion) :]
    offset = model_input.count("\n")  # completion line 1 is source line offset + 1
    source = model_input + completion
    completion_lines = completion.split("\n")
    tree = _parse_prefix(source)
    owned: dict[int, tuple[int, int]] = {}
    if tree is not None:
        for node in ast.walk(tree):
            if not isinstance(node, ast.stmt):
                continue
            first = node.lineno
            last = node.end_lineno or first
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                last = max(first, body[0].lineno - 1)
            for line in range(first, last + 1):
                # ast.walk is breadth-first: inner statements come later and win
                owned[line] = (first, last)
    result: list[Statement] = []
    seen: set[tuple[int, int]] = set()
    for index, text in enumerate(completion_lines, start=1):
        source_line = offset + index
        if source_line in owned and owned[source_line] not in seen:
            first, last = owned[source_line]
            seen.add((first, last))
            first_c, last_c = max(first - offset, 1), min(last - offset, len(completion_lines))
            body = "\n".join(completion_lines[first_c - 1 : last_c])
            if body.strip():
                result.append(Statement(first_c, last_c, body))
        elif source_line not in owned and text.strip() and not text.strip().startswith("#"):
            # code that does not parse (cut off by the token budget): one statement per line
            result.append(Statement(index, index, text))
    return sorted(result, key=lambda s: s.first_line)


def line_of(text: str, position: int) -> int:
    """1-based line number of a character position."""
    return text.count("\n", 0, position) + 1
