"""Programmer-attention labels (Kou et al. 2024), repaired onto the official benchmark prompts.

The released CSVs have quirks (see the data README): HumanEval offsets refer to a copy of the
prompt with blank lines and some trailing spaces removed, MBPP span ends are inclusive, a few
words were written as empty cells ("None" read as NaN), MBPP has blank placeholder rows and a
"Type2" category, and some offsets do not point at the labelled word. ``load_labels`` turns every
row into a clean half-open span on the official prompt, or drops it with a reason; nothing is
dropped without being counted in the ``RepairReport``.
"""

from __future__ import annotations

import ast
import csv
import functools
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from codefocus.data.benchmarks import LabelledSpan, Task, load_humaneval, load_mbpp
from codefocus.data.paths import data_file, resolve_data_dir
from codefocus.errors import DataError
from codefocus.serialization import JsonRecord

CATEGORIES = ("datatype", "operator", "conditional", "property")
CATEGORY_NAMES = {
    "datatype": "data type",
    "operator": "operator",
    "conditional": "conditional",
    "property": "property",
}


@dataclass(frozen=True)
class LabelRow:
    """One row of a label CSV, exactly as stored (offsets in the CSV's own convention)."""

    line: int
    task_number: int
    prompt: str
    word: str
    category: str
    start: int | None
    end: int | None

    @property
    def is_placeholder(self) -> bool:
        return self.start is None


@dataclass
class RepairReport(JsonRecord):
    """What was repaired or dropped while loading one label file, with counts and examples."""

    benchmark: str
    rows: int = 0
    placeholders: int = 0
    kept: int = 0
    repaired: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    tasks_with_labels: int = 0
    tasks_without_labels: list[int] = field(default_factory=list)

    def note(self, kind: str, counter: Counter, example: str) -> None:
        counter[kind] += 1
        bucket = self.examples.setdefault(kind, [])
        if len(bucket) < 3:
            bucket.append(example)


@dataclass
class LabelSet:
    """Repaired labels per task number, and the report of how they were obtained."""

    benchmark: str
    spans: dict[int, tuple[LabelledSpan, ...]]
    report: RepairReport

    def spans_for(self, task_number: int) -> tuple[LabelledSpan, ...]:
        return self.spans.get(task_number, ())


_COLUMNS = {
    "humaneval": ("prompt_id", "prompt", "word", "label type", "index range"),
    "mbpp": ("prompt_id", "Prompt", "Word", "Label Type", "index"),
}


_PLAIN_RANGE = re.compile(r"\((\d+), (\d+)\)")


def _parse_range(text: str, path: Path, line: int) -> tuple[int, int]:
    plain = _PLAIN_RANGE.fullmatch(text)  # the stored form, read without a Python parser
    if plain:
        return int(plain[1]), int(plain[2])
    try:
        value = ast.literal_eval(text)
        start, end = int(value[0]), int(value[1])
    except (ValueError, SyntaxError, TypeError, IndexError):
        raise DataError(f"{path}:{line}: malformed index range {text!r}") from None
    return start, end


def read_label_rows(benchmark: str, data_dir: str | Path | None = None) -> list[LabelRow]:
    """Read a label CSV as stored. A malformed row raises a one-line DataError."""
    if benchmark not in _COLUMNS:
        raise DataError(f"no programmer labels for benchmark {benchmark!r}")
    path = data_file(resolve_data_dir(data_dir), "programmer-attention", f"{benchmark}.csv")
    try:
        stat = path.stat()
        return list(_read_label_file(path, benchmark, stat.st_mtime_ns, stat.st_size))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: unreadable label file ({error})") from None


@functools.lru_cache(maxsize=8)
def _read_label_file(path: Path, benchmark: str, mtime_ns: int, size: int) -> tuple[LabelRow, ...]:
    """The rows of one label file, read once per version of the file (``mtime_ns``, ``size``
    are the key's part that notices a change): a study report reads them several times."""
    id_col, prompt_col, word_col, type_col, range_col = _COLUMNS[benchmark]
    rows: list[LabelRow] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in _COLUMNS[benchmark] if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing columns {', '.join(missing)}")
        for record in reader:
            line = reader.line_num
            if None in record or any(record.get(c) is None for c in _COLUMNS[benchmark]):
                raise DataError(f"{path}:{line}: row has the wrong number of fields")
            try:
                number = int(record[id_col])
            except ValueError:
                raise DataError(
                    f"{path}:{line}: prompt id {record[id_col]!r} is not a number"
                ) from None
            span_text = record[range_col].strip()
            start, end = _parse_range(span_text, path, line) if span_text else (None, None)
            rows.append(
                LabelRow(
                    line=line,
                    task_number=number,
                    prompt=record[prompt_col],
                    word=record[word_col],
                    category=record[type_col].strip().lower(),
                    start=start,
                    end=end,
                )
            )
    return tuple(rows)


def _non_space_positions(text: str) -> list[int]:
    return [i for i, ch in enumerate(text) if not ch.isspace()]


class _OffsetMap:
    """Maps offsets of a whitespace-reduced copy of a text onto the original text.

    Only whitespace was removed, so the k-th non-space character of the copy is the k-th
    non-space character of the original.
    """

    def __init__(self, copy: str, original: str) -> None:
        self.copy_positions = _non_space_positions(copy)
        self.original_positions = _non_space_positions(original)
        if [copy[i] for i in self.copy_positions] != [original[i] for i in self.original_positions]:
            raise DataError("label prompt differs from the benchmark prompt beyond whitespace")
        self.rank = {pos: k for k, pos in enumerate(self.copy_positions)}

    def span(self, start: int, end: int) -> tuple[int, int] | None:
        inside = [self.rank[p] for p in range(start, end) if p in self.rank]
        if not inside:
            return None
        return self.original_positions[inside[0]], self.original_positions[inside[-1]] + 1


_TRAILING_PUNCTUATION = ".,;:!?"


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _on_word_boundaries(text: str, start: int, end: int) -> bool:
    left_ok = start == 0 or not (_is_word_char(text[start - 1]) and _is_word_char(text[start]))
    right_ok = end == len(text) or not (_is_word_char(text[end - 1]) and _is_word_char(text[end]))
    return left_ok and right_ok


def _relocate(text: str, word: str, near: int) -> tuple[int, int] | None:
    """The whole-word occurrence of ``word`` in ``text`` closest to ``near``."""
    best = None
    for match in re.finditer(re.escape(word), text):
        if _on_word_boundaries(text, match.start(), match.end()):
            distance = abs(match.start() - near)
            if best is None or distance < best[0]:
                best = (distance, match.start(), match.end())
    return None if best is None else (best[1], best[2])


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Strip surrounding whitespace and sentence punctuation glued to the end ("pairs." -> "pairs").

    Labels made only of symbols ("[", "):") are the programmers' choice and are kept as they are.
    """
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    core_end = end
    while core_end > start and text[core_end - 1] in _TRAILING_PUNCTUATION:
        core_end -= 1
    return (start, core_end) if core_end > start else (start, end)


def _repair_row(
    row: LabelRow, benchmark: str, official: str, report: RepairReport
) -> LabelledSpan | None:
    where = f"task {row.task_number} line {row.line}"
    if row.category not in CATEGORIES:
        report.note(f"unknown category {row.category!r}", report.dropped, f"{where}: {row.word!r}")
        return None
    assert row.start is not None and row.end is not None
    start, end = row.start, row.end
    if benchmark == "mbpp":
        end += 1  # MBPP ends are inclusive in the CSV
    word = row.word
    if not word:
        word = row.prompt[start:end]
        if word.strip():
            report.note(
                "empty word restored from its offsets", report.repaired, f"{where}: {word!r}"
            )
        else:
            report.note("empty word with empty span", report.dropped, where)
            return None
    # Check the stored offsets against the stored prompt, relocate the word where they disagree.
    stored = row.prompt
    if stored[start:end] != word or not _on_word_boundaries(stored, start, end):
        found = _relocate(stored, word, start)
        if found is None:
            report.note("word not found in its prompt", report.dropped, f"{where}: {word!r}")
            return None
        report.note(
            "offsets did not match the word; relocated",
            report.repaired,
            f"{where}: {word!r} ({row.start}, {row.end}) -> {found}",
        )
        start, end = found
    trimmed = _trim(stored, start, end)
    if trimmed != (start, end):
        if trimmed[0] == trimmed[1]:
            report.note("whitespace-only label", report.dropped, f"{where}: {word!r}")
            return None
        report.note(
            "whitespace or trailing punctuation trimmed", report.repaired, f"{where}: {word!r}"
        )
        start, end = trimmed
    if stored != official:
        mapped = _OffsetMap(stored, official).span(start, end)
        if mapped is None:
            report.note("span maps to whitespace only", report.dropped, where)
            return None
        start, end = mapped
    return LabelledSpan(start, end, row.category, official[start:end])


def load_labels(
    benchmark: str,
    data_dir: str | Path | None = None,
    tasks: list[Task] | None = None,
) -> LabelSet:
    """Repair the label CSV of ``benchmark`` onto the official prompts of ``tasks``."""
    rows = read_label_rows(benchmark, data_dir)
    if tasks is None:
        tasks = load_humaneval(data_dir) if benchmark == "humaneval" else load_mbpp(data_dir)
    official = {t.number: t.prompt for t in tasks}
    report = RepairReport(benchmark=benchmark, rows=len(rows))
    spans: dict[int, list[LabelledSpan]] = {}
    seen_tasks: set[int] = set()
    if benchmark == "mbpp":
        report.repaired["inclusive span end made exclusive"] = sum(
            1 for r in rows if not r.is_placeholder
        )
    if benchmark == "humaneval":
        report.repaired["offsets moved from the whitespace-reduced prompt"] = sum(
            1 for r in rows if r.task_number in official and r.prompt != official[r.task_number]
        )
    for row in rows:
        seen_tasks.add(row.task_number)
        if row.is_placeholder:
            report.placeholders += 1
            continue
        if row.task_number not in official:
            report.note("task not in the benchmark", report.dropped, f"line {row.line}")
            continue
        label = _repair_row(row, benchmark, official[row.task_number], report)
        if label is None:
            continue
        bucket = spans.setdefault(row.task_number, [])
        if any(
            (s.start, s.end, s.category) == (label.start, label.end, label.category) for s in bucket
        ):
            report.note(
                "duplicate label", report.dropped, f"task {row.task_number} line {row.line}"
            )
            continue
        bucket.append(label)
        report.kept += 1
    report.tasks_with_labels = len(spans)
    report.tasks_without_labels = sorted(n for n in seen_tasks if n not in spans)
    ordered = {n: tuple(sorted(s, key=lambda x: (x.start, x.end))) for n, s in spans.items()}
    return LabelSet(benchmark, ordered, report)


@dataclass(frozen=True)
class StudyLabels:
    """Human spans exactly as Kou et al. used them, keyed by prompt text (the label files'
    text: HumanEval whitespace-reduced, MBPP as released)."""

    spans: dict[str, list[tuple[int, int]]]
    categories: dict[str, list[str]]
    rows_per_prompt: dict[str, int]  # labelled CSV rows of each prompt text, duplicates included

    @property
    def recall_denominator(self) -> int:
        """All labelled rows (7,983): the denominator of a file that holds every prompt."""
        return sum(self.rows_per_prompt.values())

    def recall_denominator_for(self, prompts: Iterable[str]) -> int:
        """study: recall counts the labelled rows of the prompts a stored file holds."""
        return sum(self.rows_per_prompt.get(text, 0) for text in set(prompts))


def study_labels(data_dir: str | Path | None = None) -> StudyLabels:
    """The study's spans: offsets as stored (MBPP's inclusive ends used as half-open), and a text
    shared by two MBPP ids keeps the labels of the id that comes first in the file."""
    spans: dict[str, list[tuple[int, int]]] = {}
    categories: dict[str, list[str]] = {}
    rows_per_prompt: dict[str, int] = {}
    for benchmark in ("humaneval", "mbpp"):
        owner: dict[str, int] = {}
        for row in read_label_rows(benchmark, data_dir):
            if row.is_placeholder:
                continue
            rows_per_prompt[row.prompt] = rows_per_prompt.get(row.prompt, 0) + 1
            if owner.setdefault(row.prompt, row.task_number) != row.task_number:
                continue  # study: a duplicated MBPP text keeps the first task id's labels
            assert row.start is not None and row.end is not None
            spans.setdefault(row.prompt, []).append((row.start, row.end))
            categories.setdefault(row.prompt, []).append(row.category)
    return StudyLabels(spans, categories, rows_per_prompt)
