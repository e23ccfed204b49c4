"""Generate samples for a benchmark into ``samples.jsonl``, resumably."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from codefocus.data.benchmarks import Task
from codefocus.errors import InvalidArgumentError
from codefocus.models.base import GenerationSettings, evaluation_input_for, sample_record


def finished_samples(path: Path) -> dict[str, int]:
    """How many samples each task already has in ``path`` (a torn last line is dropped)."""
    counts: dict[str, int] = {}
    if not path.is_file():
        return counts
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    good = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # an interrupted write: that sample is generated again
        if not line.endswith("\n"):
            continue
        good.append(line)
        counts[record["task_id"]] = counts.get(record["task_id"], 0) + 1
    if len(good) != len(lines):
        path.write_text("".join(good), encoding="utf-8")
    return counts


def generate_samples(
    model,
    tasks: list[Task],
    out: Path,
    n: int = 1,
    settings: GenerationSettings | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Append ``n`` samples per task to ``out``, skipping those already there. Returns how many
    were generated now. Each sample is flushed as soon as it exists."""
    settings = settings or GenerationSettings()
    if n <= 0:
        raise InvalidArgumentError(f"--n must be positive, got {n}")
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
