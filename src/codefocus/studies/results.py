"""A study's results as stored: one merged ``Attribution`` per (model, task), with its task and
verdict. The report, the user study and the faithfulness evaluation all read them here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from codefocus.attribution import Attribution
from codefocus.studies.runner import STORE_NAME, StudyConfig, study_tasks
from codefocus.studies.store import StudyStore


@dataclass
class TaskResult:
    model: str
    task: object
    attribution: Attribution
    verdict: dict | None


def load_results(
    directory: Path,
    data_dir: str | Path | None = None,
    task_ids: Sequence[str] | None = None,
) -> tuple[StudyConfig, list[TaskResult]]:
    """The study's configuration and one merged ``Attribution`` per (model, task); ``data_dir``
    overrides the data directory the study was run with, ``task_ids`` the tasks read (a study
    grown a task at a time records the tasks of its last run, which a stopped run leaves short)."""
    store = StudyStore(directory / STORE_NAME)
    try:
        config = StudyConfig.from_dict(store.meta("config", {}))
        if data_dir is not None:
            config = replace(config, data_dir=str(data_dir))
        if task_ids is not None:
            config = replace(config, task_ids=tuple(task_ids))
        tasks = {t.task_id: t for t in study_tasks(config)}
        method_rows: dict[tuple[str, str], list[dict]] = {}  # read once, not per task
        for row in store.rows("method:"):
            if row["status"] == "done":
                method_rows.setdefault((row["model"], row["task_id"]), []).append(row)
        results = []
        for model in config.models:
            for task_id, task in tasks.items():
                generation = store.get(model, task_id, "generation")
                if generation is None or generation["status"] != "done":
                    continue
                verdict = store.get(model, task_id, "verdict")
                attribution = None
                for row in method_rows.get((model, task_id), []):
                    stored = Attribution.from_dict(row["payload"])
                    attribution = stored if attribution is None else attribution.merge(stored)
                if attribution is None:
                    continue
                results.append(TaskResult(model, task, attribution, verdict and verdict["payload"]))
        return config, results
    finally:
        store.close()
