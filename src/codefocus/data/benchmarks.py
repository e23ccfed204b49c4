"""Benchmark files as typed tasks: HumanEval, MBPP and sanitized MBPP, read and normalised (no
labels here: ``data/tasks.py`` attaches them)."""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from codefocus.data.paths import data_file, resolve_data_dir
from codefocus.errors import DataError
from codefocus.serialization import JsonRecord

BENCHMARKS = ("humaneval", "mbpp", "mbpp-sanitized")


@dataclass(frozen=True)
class LabelledSpan(JsonRecord):
    """A programmer-attention label: a character span of the task prompt and its category."""

    start: int
    end: int
    category: str
    word: str


@dataclass(frozen=True)
class Task(JsonRecord):
    """One programming task.

    ``prompt`` is the official benchmark text the labels refer to: the HumanEval prompt as
    released, or the MBPP ``text`` field. ``tests`` is a self-contained test program that calls
    ``entry_point``; ``human_spans`` are the programmer-attention labels on ``prompt``.
    """

    benchmark: str
    task_id: str
    prompt: str
    entry_point: str
    tests: str
    reference_solution: str
    human_spans: tuple[LabelledSpan, ...] = field(default=())
    test_imports: tuple[str, ...] = field(default=())

    @property
    def number(self) -> int:
        return int(self.task_id.rsplit("/", 1)[1])

    def with_labels(self, spans: tuple[LabelledSpan, ...]) -> Task:
        return Task(
            self.benchmark,
            self.task_id,
            self.prompt,
            self.entry_point,
            self.tests,
            self.reference_solution,
            spans,
            self.test_imports,
        )


def _read_jsonl(path: Path) -> Iterator[dict]:
    """Records of a (gzipped) JSON-lines file; a damaged file is a one-line ``DataError``."""
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}:{number}: malformed JSON line ({error.msg})") from None
                if not isinstance(record, dict):
                    raise DataError(f"{path}:{number}: a line is not a JSON object")
                yield record
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as error:
        kind = "truncated" if isinstance(error, EOFError) else "unreadable"
        raise DataError(f"{path}: {kind} file after line {number} ({error})") from None


def load_humaneval(data_dir: str | Path | None = None) -> list[Task]:
    """The 164 HumanEval tasks from ``humaneval/HumanEval.jsonl.gz``."""
    path = data_file(resolve_data_dir(data_dir), "humaneval", "HumanEval.jsonl.gz")
    tasks = []
    for row in _read_jsonl(path):
        try:
            tasks.append(
                Task(
                    benchmark="humaneval",
                    task_id=row["task_id"],
                    prompt=row["prompt"],
                    entry_point=row["entry_point"],
                    tests=row["test"] + f"\n\ncheck({row['entry_point']})\n",
                    reference_solution=row["canonical_solution"],
                )
            )
        except KeyError as error:
            raise DataError(f"{path}: task without field {error}") from None
    return tasks


_CALLED_NAME = re.compile(
    r"assert\s+(?:not\s+)?\(?\s*(?:set\(|math\.isclose\(|abs\()?\s*([A-Za-z_]\w*)\s*\("
)


def _entry_point(code: str, tests: list[str]) -> str:
    """The function the tests call: the first defined function that the asserts name."""
    defined = re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", code, flags=re.MULTILINE)
    joined = "\n".join(tests)
    for name in defined:
        if re.search(rf"\b{re.escape(name)}\s*\(", joined):
            return name
    match = _CALLED_NAME.search(joined)
    if match:
        return match.group(1)
    return defined[-1] if defined else ""


def _lf(text: str) -> str:
    """MBPP mixes CRLF and lone CR line ends; make them all LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _mbpp_task(row: dict, benchmark: str, prompt_field: str) -> Task:
    code = _lf(row["code"])
    tests = [_lf(t) for t in row["test_list"]]
    setup = _lf(row.get("test_setup_code", ""))
    imports = tuple(row.get("test_imports", []))
    body = "\n".join([*imports, setup, *tests]).strip() + "\n"
    return Task(
        benchmark=benchmark,
        task_id=f"Mbpp/{row['task_id']}",
        prompt=row[prompt_field],
        entry_point=_entry_point(code, tests),
        tests=body,
        reference_solution=code,
        test_imports=imports,
    )


def load_mbpp(data_dir: str | Path | None = None) -> list[Task]:
    """The 974 MBPP tasks from ``mbpp/mbpp.jsonl`` (CRLF line ends normalised)."""
    path = data_file(resolve_data_dir(data_dir), "mbpp", "mbpp.jsonl")
    try:
        return [_mbpp_task(row, "mbpp", "text") for row in _read_jsonl(path)]
    except KeyError as error:
        raise DataError(f"{path}: task without field {error}") from None


def load_sanitized_mbpp(data_dir: str | Path | None = None) -> list[Task]:
    """The 426 hand-verified MBPP tasks from ``mbpp/sanitized-mbpp.json``."""
    path = data_file(resolve_data_dir(data_dir), "mbpp", "sanitized-mbpp.json")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error.msg})") from None
    try:
        return [_mbpp_task(row, "mbpp-sanitized", "prompt") for row in rows]
    except KeyError as error:
        raise DataError(f"{path}: task without field {error}") from None
