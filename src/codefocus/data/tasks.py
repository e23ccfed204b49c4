"""Tasks by name, with the programmer labels attached: the entry point for benchmark data.

``data/benchmarks.py`` reads the benchmark files, ``data/labels.py`` repairs the label files onto
them; this module joins the two (so neither imports the other's caller).
"""

from __future__ import annotations

from pathlib import Path

from codefocus.data.benchmarks import (
    BENCHMARKS,
    LabelledSpan,
    Task,
    load_humaneval,
    load_mbpp,
    load_sanitized_mbpp,
)
from codefocus.data.labels import load_labels
from codefocus.errors import UnknownNameError

__all__ = [
    "BENCHMARKS",
    "LabelledSpan",
    "Task",
    "get_task",
    "load_humaneval",
    "load_mbpp",
    "load_sanitized_mbpp",
    "load_tasks",
    "parse_task_ref",
]


LABEL_MODES = ("repaired", "stored")


def load_tasks(
    benchmark: str,
    data_dir: str | Path | None = None,
    with_labels: bool = True,
    labels: str = "repaired",
) -> list[Task]:
    """Load a benchmark by name, attaching programmer labels where they exist.

    Args:
        benchmark: ``humaneval``, ``mbpp`` or ``mbpp-sanitized``.
        data_dir: the data directory; default ``$CODEFOCUS_DATA``.
        with_labels: attach the programmer-attention labels (``Task.human_spans``).
        labels: ``repaired`` moves the labels onto the released prompts and fixes their offsets;
            ``stored`` keeps them as the study used them (``stored_label_tasks``).

    Raises:
        UnknownNameError: an unknown benchmark.
        DataError: the data directory or a file in it is missing or malformed.
    """
    loaders = {
        "humaneval": load_humaneval,
        "mbpp": load_mbpp,
        "mbpp-sanitized": load_sanitized_mbpp,
    }
    key = benchmark.lower()
    if key not in loaders:
        raise UnknownNameError(
            f"unknown benchmark {benchmark!r}: choose from {', '.join(BENCHMARKS)}"
        )
    if labels not in LABEL_MODES:
        raise UnknownNameError(f"unknown label mode {labels!r}: use repaired or stored")
    tasks = loaders[key](data_dir)
    if not with_labels:
        return tasks
    if labels == "stored":
        return stored_label_tasks(tasks, data_dir)
    label_benchmark = "humaneval" if key == "humaneval" else "mbpp"
    repaired = load_labels(label_benchmark, data_dir, tasks if key != "mbpp-sanitized" else None)
    return [t.with_labels(repaired.spans_for(t.number)) for t in tasks]


def stored_label_tasks(tasks: list[Task], data_dir: str | Path | None = None) -> list[Task]:
    """Tasks as the study saw them: the prompt is the label file's text (for HumanEval the
    released prompt with blank lines and trailing spaces removed, which the study fed to its
    models and keyed its results by) and the spans are the label file's offsets as stored (MBPP's
    inclusive ends used as half-open; a text shared by two MBPP ids takes the first id's labels).
    Tasks without a label row keep their released prompt and get no spans."""
    from dataclasses import replace

    from codefocus.data.labels import read_label_rows, study_labels

    benchmark = "humaneval" if tasks and tasks[0].benchmark == "humaneval" else "mbpp"
    texts = {
        row.task_number: row.prompt
        for row in read_label_rows(benchmark, data_dir)
        if not row.is_placeholder
    }
    stored = study_labels(data_dir)
    chosen = []
    for task in tasks:
        text = texts.get(task.number)
        spans = stored.spans.get(text, []) if text is not None else []
        if text is None or not spans:
            chosen.append(task.with_labels(()))
            continue
        labelled = tuple(
            LabelledSpan(start, end, category, text[start:end])
            for (start, end), category in zip(spans, stored.categories[text], strict=True)
        )
        chosen.append(replace(task, prompt=text, human_spans=labelled))
    return chosen


def parse_task_ref(ref: str) -> tuple[str, int]:
    """Parse ``humaneval/0``, ``HumanEval/0``, ``mbpp/11`` or ``Mbpp/11``."""
    if not isinstance(ref, str):
        raise UnknownNameError(f"bad task reference {ref!r}: use humaneval/N or mbpp/N")
    try:
        name, number = ref.strip().split("/")
        benchmark = {"humaneval": "humaneval", "mbpp": "mbpp"}[name.lower()]
        return benchmark, int(number)
    except (ValueError, KeyError):
        raise UnknownNameError(f"bad task reference {ref!r}: use humaneval/N or mbpp/N") from None


def get_task(ref: str, data_dir: str | Path | None = None, labels: str = "repaired") -> Task:
    """One task by reference (``humaneval/0``, ``mbpp/11``), with its labels.

    Raises:
        UnknownNameError: a malformed reference or a task not in the benchmark.
        DataError: the data directory or a file in it is missing or malformed.
    """
    benchmark, number = parse_task_ref(ref)
    for task in load_tasks(benchmark, data_dir, labels=labels):
        if task.number == number:
            return task
    raise UnknownNameError(f"task {ref!r} is not in {benchmark}")
