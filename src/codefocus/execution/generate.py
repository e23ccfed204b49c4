"""Generate samples for a benchmark into ``samples.jsonl``, resumably."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from codefocus.data.benchmarks import Task
from codefocus.errors import DataError, InvalidArgumentError
from codefocus.generation.records import GenerationSettings
from codefocus.models.base import evaluation_input_for, sample_record
from codefocus.storage import write_text_atomic


def _sample_lines(path: Path) -> tuple[list[str], dict[str, int], bool]:
    """The complete sample lines of ``path``, how many samples each task has, and whether a
    torn last line (a write cut by a crash) was left out; any other line that is not a sample
    record is a ``DataError``: the file is not one ``generate`` wrote, and nothing of it is
    dropped."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"--out: {path} is not a samples file (not UTF-8 text)") from None
    lines = text.splitlines(keepends=True)
    good: list[str] = []
    counts: dict[str, int] = {}
    torn = bool(lines) and not lines[-1].endswith("\n")
    for number, line in enumerate(lines[:-1] if torn else lines, start=1):
        try:
            record = json.loads(line)
            valid = isinstance(record, dict) and isinstance(record.get("task_id"), str)
            valid = valid and any(
                isinstance(record.get(k), str) for k in ("completion", "solution")
            )
        except ValueError:
            valid = False
        if not valid:
            raise DataError(
                f"--out: {path}:{number} is not a sample record: the file is not a samples file "
                "written by codefocus generate (use --force to replace it)"
            )
        good.append(line)
        counts[record["task_id"]] = counts.get(record["task_id"], 0) + 1
    return good, counts, torn  # a torn line's sample is generated again


def check_samples_file(path: Path, force: bool = False) -> None:
    """Before any work: ``path`` is new, a samples file to continue, or ``force`` replaces it."""
    from codefocus.storage import check_writable

    if path.is_file() and not force:
        _sample_lines(path)  # raises unless it is a samples file
        return
    try:
        check_writable(path, force=True)
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"--out: {error}") from None


def finished_samples(path: Path) -> dict[str, int]:
    """How many samples each task already has in ``path`` (a torn last line is dropped)."""
    if not path.is_file():
        return {}
    good, counts, torn = _sample_lines(path)
    if torn:
        write_text_atomic(path, "".join(good))
    return counts


def generate_samples(
    model,
    tasks: list[Task],
    out: Path,
    n: int = 1,
    settings: GenerationSettings | None = None,
    on_progress: Callable[[int], None] | None = None,
    replace: bool = False,
) -> int:
    """Append ``n`` samples per task to ``out``, skipping those already there (``replace``:
    start ``out`` afresh). Returns how many were generated now. Each sample is flushed as soon
    as it exists."""
    settings = settings or GenerationSettings()
    if n <= 0:
        raise InvalidArgumentError(f"--n must be positive, got {n}")
    if replace and out.exists():
        out.unlink()
    done = finished_samples(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(out, "a", encoding="utf-8") as handle:
        for task in tasks:
            have = done.get(task.task_id, 0)
            model_input = evaluation_input_for(task)
            budget = settings.max_new_tokens or model.default_max_new_tokens(
                task.reference_solution
            )
            for index in range(have, n):
                step = GenerationSettings(**{**settings.to_dict(), "seed": settings.seed + index})
                completion = model.generate([model_input], step, max_new_tokens=budget)[
                    0
                ].completion
                handle.write(json.dumps(sample_record(task, model_input, completion)) + "\n")
                handle.flush()
                written += 1
                if on_progress:
                    on_progress(1)
            if on_progress and have >= n:
                on_progress(n)
    return written
