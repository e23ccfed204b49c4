"""Faithfulness over a whole study: one more unit kind in the study's own store.

Each (model, task) whose attribution is stored gets a ``faithfulness`` unit, committed as soon
as it is measured, so a killed run loses at most the task in flight and a re-run measures only
what is missing. The options it ran with are kept in the store; a run with other options is
refused rather than mixed into the same table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from codefocus.errors import RECOVERABLE, DataError, InvalidArgumentError
from codefocus.faithfulness.evaluate import check_options, evaluate_faithfulness
from codefocus.faithfulness.results import Faithfulness

KIND = "faithfulness"
SETTINGS_KEY = "faithfulness_settings"


def _store(directory: Path):
    from codefocus.studies.runner import STORE_NAME
    from codefocus.studies.store import StudyStore

    if not (directory / STORE_NAME).is_file():
        raise DataError(f"no study in {directory} (missing {STORE_NAME})")
    return StudyStore(directory / STORE_NAME)


def load_faithfulness(directory: str | Path) -> dict[tuple[str, str], Faithfulness]:
    """Every stored faithfulness result by (model, task id); empty when none was measured."""
    store = _store(Path(directory))
    try:
        return {
            (row["model"], row["task_id"]): Faithfulness.from_dict(row["payload"])
            for row in store.rows(KIND)
            if row["kind"] == KIND and row["status"] == "done"
        }
    finally:
        store.close()


def run_study_faithfulness(
    directory: str | Path,
    *,
    methods: Sequence[str] | None = None,
    k: int = 10,
    perturbation: str = "delete",
    random_orders: int = 3,
    lds_samples: int = 32,
    code_change: bool = True,
    data_dir: str | Path | None = None,
    models: dict[str, object] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[str, str, Faithfulness | None, str | None], None] | None = None,
) -> dict[str, int]:
    """Measure faithfulness for every stored attribution that lacks it.

    ``models`` maps a study model name to a loaded model (default: each is loaded as the study
    loads it, only when it has work). ``on_start(total)`` and ``on_done(model, task, result,
    error)`` report progress. Returns counts: ``done`` (measured now), ``stored`` (measured
    before), ``failed`` (now or before: a recorded failure is not retried).
    """
    from codefocus.studies.results import load_results

    check_options(k, perturbation, random_orders, lds_samples)
    directory = Path(directory)
    settings = {
        "k": k,
        "perturbation": perturbation,
        "random_orders": random_orders,
        "lds_samples": lds_samples,
        "code_change": code_change,
        "methods": list(methods) if methods is not None else None,
    }
    store = _store(directory)
    try:
        recorded = store.meta(SETTINGS_KEY)
        if recorded is not None and recorded != settings:
            changed = sorted(key for key in settings if recorded.get(key) != settings[key])
            raise InvalidArgumentError(
                f"{directory}: faithfulness was measured with other options "
                f"({', '.join(f'{key}={recorded.get(key)!r}' for key in changed)}); "
                "use the same options, or a copy of the study"
            )
        config, results = load_results(directory, data_dir)
        recorded_status = {
            (row["model"], row["task_id"]): row["status"]
            for row in store.rows(KIND)
            if row["kind"] == KIND
        }
        statuses = [recorded_status.get((r.model, r.attribution.task_id or "")) for r in results]
        pending = [r for r, status in zip(results, statuses, strict=True) if status is None]
        counts = {  # a failure recorded by an earlier run stays a failure, not a stored result
            "done": 0,
            "stored": statuses.count("done"),
            "failed": statuses.count("failed"),
        }
        if on_start:
            on_start(len(pending))
        if not pending:
            return counts
        store.set_meta(SETTINGS_KEY, settings)
        loaded = dict(models or {})
        for result in pending:
            task_id = result.attribution.task_id or ""
            if result.model not in loaded:
                loaded[result.model] = config.options.load_model(result.model)
            chosen = None
            if methods is not None:
                chosen = [m for m in methods if m in result.attribution.word_scores]
            try:
                measured = evaluate_faithfulness(
                    loaded[result.model],
                    result.attribution,
                    chosen,
                    k=k,
                    perturbation=perturbation,
                    random_orders=random_orders,
                    lds_samples=lds_samples,
                    code_change=code_change,
                    data_dir=data_dir,
                )
            except RECOVERABLE as error:
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                store.put(result.model, task_id, KIND, error=message)
                counts["failed"] += 1
                if on_done:
                    on_done(result.model, task_id, None, message)
                continue
            store.put(result.model, task_id, KIND, measured.to_dict(), seconds=measured.seconds)
            counts["done"] += 1
            if on_done:
                on_done(result.model, task_id, measured, None)
        return counts
    finally:
        store.close()
