"""Run a study: for each model and task, generate, check the code in the sandbox, attribute.

Units are (model, task, kind) with kind = generation, verdict, or method:<name>
(``runs.units.Unit``). Each finished unit is written to the study's SQLite store before the next
starts (``runs.units.UnitRunner``), so a killed study resumes where it stopped: re-running the
same command skips stored units and never duplicates one. A unit that fails (context too long,
out of memory, endpoint error) is stored with its reason; the study goes on.

``run_study`` runs one; ``studies.work`` does one task's units, ``studies.workers`` runs the
tasks in this process or on Ray.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codefocus.data.tasks import Task, load_tasks
from codefocus.errors import InvalidArgumentError
from codefocus.methods import method_names as resolve_names
from codefocus.options import AttributionOptions, WithOptions
from codefocus.protocols import CODEFOCUS_METHOD_NAMES, Protocol
from codefocus.runs.programs import verdict_input, verdict_program
from codefocus.runs.units import ResultSettings, UnitRunner
from codefocus.studies.work import generate_ahead

if TYPE_CHECKING:
    from rich.console import Console

    from codefocus.studies.workers import StudySummary

log = logging.getLogger(__name__)
STORE_NAME = "study.sqlite"
VERDICT_POLICIES = ("all", "attributed", "none")


@dataclass(frozen=True, init=False)
class StudyConfig(WithOptions):
    """What a study runs: models x tasks x methods, and how (``options``: one
    ``AttributionOptions``). The options' fields are also keywords and keys of their own
    (``StudyConfig(scope="prompt", dtype="bfloat16")``, a file's ``shap_l1_reg = "aic"``), as
    before the options object; ``to_dict`` writes them flat, device and dtype always."""

    models: tuple[str, ...] = ("default",)
    methods: tuple[str, ...] = ("all-whitebox",)
    benchmarks: tuple[str, ...] = ("humaneval",)
    limit: int | None = None
    labelled_only: bool = True
    max_new_tokens: int | None = None
    timeout: float = 3.0
    perturbation_tasks: int | None = None  # perturbation methods on the first N tasks only
    data_dir: str | None = None
    task_ids: tuple[str, ...] = field(default=())
    # perturbation methods on these tasks only (instead of perturbation_tasks' first N)
    perturbation_task_ids: tuple[str, ...] = field(default=())
    # which tasks get a verdict: all; only those whose attributed generation is itself testable
    # (no second generation: HumanEval, and MBPP where the protocol's prompt is the testable one);
    # none
    verdicts: str = "all"
    # protocol (codefocus, kou2024, ...), scope, exclude_sink, substitutes, similarity (None: as
    # the protocol says), method options (shap_l1_reg, ...), device, dtype, max_memory, ...
    options: AttributionOptions = field(default_factory=AttributionOptions)

    # the keys every stored config has had (the resume check compares some of them), and where
    # the study ran
    STORED_OPTIONS = (
        "protocol",
        "substitutes",
        "similarity",
        "scope",
        "exclude_sink",
        "shap_l1_reg",
        "device",
        "dtype",
    )

    def __post_init__(self) -> None:
        """Every value checked where the study starts (a TOML file reaches here too; the options
        are checked where they are made)."""
        super().__post_init__()
        for key in ("models", "methods", "benchmarks", "task_ids", "perturbation_task_ids"):
            value = getattr(self, key)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise InvalidArgumentError(f"{key} must be a list of names, got {value!r}")
            if not value and key not in ("task_ids", "perturbation_task_ids"):
                raise InvalidArgumentError(f"{key} must name at least one, got none")
        for key, least in (("limit", 1), ("max_new_tokens", 1), ("perturbation_tasks", 0)):
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or value < least):
                bound = "a positive integer" if least else "an integer >= 0"
                raise InvalidArgumentError(f"{key} must be {bound}, got {value!r}")
        if not isinstance(self.labelled_only, bool):
            raise InvalidArgumentError(
                f"labelled_only must be true or false, got {self.labelled_only!r}"
            )
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float):
            raise InvalidArgumentError(f"timeout must be a number of seconds, got {self.timeout!r}")
        if self.timeout <= 0:
            raise InvalidArgumentError(f"timeout must be positive, got {self.timeout!r}")
        if self.verdicts not in VERDICT_POLICIES:
            raise InvalidArgumentError(
                f"verdicts must be one of {', '.join(VERDICT_POLICIES)}, got {self.verdicts!r}"
            )
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise InvalidArgumentError(f"data_dir must be a path, got {self.data_dir!r}")
        resolve_names([CODEFOCUS_METHOD_NAMES.get(m, m) for m in self.methods])

    def run_protocol(self) -> Protocol:
        """The protocol as it runs here (a masked LM that is not installed gives way to the
        embedding provider: ``options.effective_protocol``)."""
        return self.options.run_protocol(list(self.methods))

    @classmethod
    def from_file(cls, path: str | Path) -> StudyConfig:
        """A small TOML (or YAML-free) config: the same keys as the command's options."""
        import tomllib

        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise InvalidArgumentError(f"cannot read study config {path}: {error}") from None
        study = data.get("study", data)
        if not isinstance(study, dict):
            raise InvalidArgumentError(f"bad study config {path}: [study] is not a table")
        for key in ("models", "methods", "benchmarks", "task_ids", "perturbation_task_ids"):
            if isinstance(study.get(key), str):
                study[key] = [v.strip() for v in study[key].split(",") if v.strip()]
        try:
            return cls.from_dict(study)
        except (TypeError, ValueError) as error:
            raise InvalidArgumentError(f"bad study config {path}: {error}") from None
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"study config {path}: {error}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def study_tasks(config: StudyConfig) -> list[Task]:
    tasks: list[Task] = []
    labels = config.declared_protocol().labels
    for benchmark in config.benchmarks:
        chosen = load_tasks(benchmark, config.data_dir, labels=labels)
        if config.labelled_only:
            chosen = [t for t in chosen if t.human_spans]
        if config.task_ids:  # in the order given (perturbation_tasks takes the first ones)
            by_id = {t.task_id: t for t in chosen}
            chosen = [by_id[i] for i in config.task_ids if i in by_id]
        tasks += chosen[: config.limit]
    return tasks


# the study's mix: 164 HumanEval prompts and 970 distinct MBPP texts
STUDY_MIX = {"humaneval": 164, "mbpp": 970}


def _spread(items: list, count: int) -> list:
    """``count`` items evenly spaced over ``items`` (all of them when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[(i * len(items)) // count] for i in range(count)]


# where ``codefocus demo --second-view N`` keeps its study under the protocol codefocus, inside the
# demo's folder; the report of the demo shows it as a second view
SECOND_VIEW = "second-view"


def demo_sample(
    prompts: int, perturbed: int, data_dir=None, labels: str = "stored"
) -> tuple[list[str], list[str]]:
    """A stratified sample of labelled prompts that mirrors the study's mix of HumanEval and
    MBPP, evenly spaced over each benchmark's task ids (so it is the same on every machine), and
    the ones of them that get the perturbation methods: the same mix, shortest reference
    solution first (they regenerate once per word). Returns both lists of task ids."""
    total = sum(STUDY_MIX.values())
    chosen: list[str] = []
    cheapest: list[str] = []
    for benchmark, share in STUDY_MIX.items():
        tasks = [t for t in load_tasks(benchmark, data_dir, labels=labels) if t.human_spans]
        count = round(prompts * share / total) if benchmark == "humaneval" else 0
        if benchmark == "mbpp":
            count = prompts - len(chosen)
        picked = _spread(tasks, count)
        chosen += [t.task_id for t in picked]
        want = round(perturbed * share / total) if benchmark == "humaneval" else 0
        if benchmark == "mbpp":
            want = perturbed - len(cheapest)
        by_length = sorted(picked, key=lambda t: len(t.reference_solution))
        cheapest += [t.task_id for t in by_length[:want]]
    return chosen, cheapest


def method_names(config: StudyConfig) -> list[str]:
    return [m.name for m in config.declared_protocol().methods(list(config.methods))]


def methods_per_task(config: StudyConfig, tasks: list[Task]) -> dict[str, list[str]]:
    """The methods each task gets: all of them, except that with ``perturbation_tasks = N`` the
    perturbation methods (one regeneration per perturbed prompt: by far the slowest) run on the
    first N tasks of each benchmark only."""
    chosen = config.declared_protocol().methods(list(config.methods))
    seen: dict[str, int] = {}
    result = {}
    for task in tasks:
        index = seen.get(task.benchmark, 0)
        seen[task.benchmark] = index + 1
        keep_perturbation = config.perturbation_tasks is None or index < config.perturbation_tasks
        if config.perturbation_task_ids:
            keep_perturbation = task.task_id in config.perturbation_task_ids
        result[task.task_id] = [
            m.name for m in chosen if keep_perturbation or m.family != "perturbation"
        ]
    return result


# settings that change a stored unit's result: a study may not mix two values of any of them
RESULT_SETTINGS = (
    "protocol",
    "max_new_tokens",
    "substitutes",
    "similarity",
    "timeout",
    "scope",
    "exclude_sink",
    "shap_l1_reg",
    "dtype",  # half precision changes every score
)
# stores from before a setting existed were computed differently (before dtype, in float32:
# the only precision a study then loaded, recorded as "auto")
LEGACY_DEFAULTS: dict = {"protocol": "codefocus", "dtype": "auto"}
STUDY_SETTINGS = ResultSettings(keys=RESULT_SETTINGS, legacy=LEGACY_DEFAULTS)


def run_study(
    config: StudyConfig,
    out: str | Path,
    executor: str = "local",
    console: Console | None = None,
    num_gpus: float = 0.0,
    models: dict[str, Any] | None = None,
) -> StudySummary:
    """Run (or resume) the study in ``out``; returns a summary.

    Every finished unit (generation, verdict, method) is stored before the next starts, so an
    interrupted study resumes where it stopped; a unit that fails is stored with its reason.

    Args:
        config: what to run (models, methods, benchmarks, settings).
        out: the study directory (``study.sqlite`` in it).
        executor: ``local`` or ``ray`` (``RAY_ADDRESS`` for an existing cluster).
        models: models already loaded, by study model name (``local`` only): used instead of
            loading them again, e.g. by a caller that grows a study one task at a time.

    Raises:
        InvalidArgumentError: an unknown executor, or ``out`` holds a study run with other
            result settings (its units would not be comparable).
    """
    from codefocus.studies.workers import (
        StudySummary,
        counter,
        run_local,
        run_ray,
        study_progress,
    )

    if executor not in ("local", "ray"):
        raise InvalidArgumentError(f"unknown executor {executor!r}: use local or ray")
    out = Path(out)
    with UnitRunner(out / STORE_NAME) as runner:
        current = json.loads(json.dumps(config.to_dict()))
        previous = runner.claim(
            current,
            STUDY_SETTINGS,
            lambda key, stored, new: (
                f"{out} holds a study run with {key}={stored!r}, not {new!r}: its stored units "
                "would not be comparable; use another --out (or the same settings)"
            ),
        )
        if previous and previous != current:
            log.info("the study grows: stored units are kept, new ones are added")
        tasks = study_tasks(config)
        methods = methods_per_task(config, tasks)
        summary = StudySummary()
        started = time.perf_counter()
        try:
            with study_progress(console) as progress:
                bars = {
                    m: progress.add_task(
                        f"  {m}",
                        total=sum(m in own for own in methods.values()) * len(config.models),
                        log=False,  # in a log, the model's line per task says it all
                    )
                    for m in method_names(config)
                }
                runner.on_record = counter(summary, progress, bars)
                if executor == "local":
                    run_local(config, runner, tasks, methods, summary, progress, bars, models)
                else:
                    run_ray(config, runner, tasks, methods, summary, progress, num_gpus)
        finally:
            summary.seconds = time.perf_counter() - started
    return summary


# moved to runs.programs and studies.work; kept importable from here
__all__ = [
    "LEGACY_DEFAULTS",
    "RESULT_SETTINGS",
    "STORE_NAME",
    "STUDY_MIX",
    "VERDICT_POLICIES",
    "StudyConfig",
    "demo_sample",
    "generate_ahead",
    "method_names",
    "methods_per_task",
    "run_study",
    "study_tasks",
    "verdict_input",
    "verdict_program",
]
