"""Attention-guided robustness probes (Kou et al., Section 6): substitute the words a method ranks
highest, regenerate, and run the tests — do they break the code more often than random words?

Per task whose original greedy code passes its tests: each ranking (``probes.rankings.Ranking``)
orders the task's words (a registered method's scores; ``programmers`` = the labelled words, in a
seeded order; ``random:<seed>``; and the control ``lowest:<method>``, the method's lowest-ranked
words); for each K the top-K words are replaced together by the provider's substitutes, the code
is regenerated greedily (the exact engine, batched over the task's probes) and run in the sandbox.
A probe *breaks* the task when the new code fails. A substitute that flips meaning — a WordNet
antonym, or a different number — is marked and not counted as a robustness failure
(``probes.words``).

The model reads the task as it would be evaluated (``runs.programs.probe_input``):
HumanEval's prompt as released; MBPP's text and first test in a docstring, then
``def <entry_point>(`` — the study's ``def function():`` header takes no arguments, so its code
could never pass the tests. Rankings are computed on that same input. HumanEval's signature line
is the interface the tests call: its words are never substituted (a renamed function or
parameter fails the tests whatever the model writes), and new code is run under the original
prompt.

Every unit (generation, verdict, ranking, the task's probes) is stored in ``OUT/probe.sqlite``
(the study store, through ``runs.units.UnitRunner``) as it finishes; re-running resumes.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from codefocus.data.tasks import Task, load_tasks
from codefocus.data.units import Span, scoped_word_spans
from codefocus.errors import InvalidArgumentError
from codefocus.options import AttributionOptions, WithOptions
from codefocus.probes.rankings import Ranking, order_by, order_words
from codefocus.probes.records import ProbeRecord, ProbeSummary
from codefocus.probes.words import OPPOSITES, probe_words, word_categories
from codefocus.probes.words import meaning_change as _meaning
from codefocus.runs.programs import generate_checked, probe_input, run_verdict
from codefocus.runs.units import ResultSettings, Unit, UnitResult, UnitRunner
from codefocus.studies.store import StudyStore

log = logging.getLogger(__name__)
STORE_NAME = "probe.sqlite"


@dataclass(frozen=True, init=False)
class ProbeConfig(WithOptions):
    """What a probe run does, and how its ranking methods run (``options``: one
    ``AttributionOptions``; ``substitutes``, embedding by default, also replace the probed words;
    ``protocol`` is what a ranking method computes). The options' fields are also keywords and
    keys of their own, as before the options object (``ProbeConfig(substitutes="wordnet")``)."""

    model: str = "default"
    benchmark: str = "mbpp"
    limit: int | None = None
    rank_by: tuple[str, ...] = ("bert_masking",)
    ks: tuple[int, ...] = (1, 3)
    random_seeds: tuple[int, ...] = (0, 1, 2)
    lowest: bool = True  # the control: each method's lowest-ranked words
    timeout: float = 3.0
    data_dir: str | None = None
    labelled_only: bool = True
    options: AttributionOptions = field(
        default_factory=lambda: AttributionOptions(substitutes="embedding")
    )

    DEFAULT_OPTIONS = {"substitutes": "embedding"}
    STORED_OPTIONS = ("substitutes", "protocol")  # the keys every stored probe config has had

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.options.substitutes is None:  # a probe substitutes words: it needs a provider
            object.__setattr__(self, "options", self.options.changed(substitutes="embedding"))


# a probe store holds one configuration: every setting but the number of tasks must match
PROBE_SETTINGS = ResultSettings(ignored=("limit",))


def rankings_for(config: ProbeConfig) -> list[Ranking]:
    """Every ranking the run needs: the asked ones, the random seeds and the lowest controls."""
    from codefocus.methods import method_names

    chosen: list[str] = []
    for name in config.rank_by:
        if name == "programmers":
            chosen.append(name)
        elif name == "random":
            continue  # always there, below
        else:
            chosen += method_names([name])
    out = [Ranking.parse(name) for name in dict.fromkeys(chosen)]
    methods = [r.method for r in out if r.kind == "method"]
    out += [Ranking("random", seed=seed) for seed in config.random_seeds]
    if config.lowest:
        out += [Ranking("lowest", method=m) for m in methods]
    return out


class ProbeRun:
    def __init__(self, config: ProbeConfig, out: str | Path, model=None) -> None:
        from codefocus.methods.substitutes import check_provider

        for k in config.ks:
            if not isinstance(k, int) or k < 1:
                raise InvalidArgumentError(f"--k: each K must be a positive integer, got {k!r}")
        from codefocus.protocols import get_protocol

        check_provider(config.substitutes)
        get_protocol(config.protocol)
        self.config = config
        self.rankings = rankings_for(config)
        self.out = Path(out)
        self._model = model
        self._score_memo: dict[tuple[str, str], tuple[list[Span], list[float]]] = {}

    @property
    def cache(self):
        """One generation cache (one connection) for the whole run."""
        if not hasattr(self, "_cache"):
            from codefocus.generation.cache import default_cache

            self._cache = default_cache()
        return self._cache

    @property
    def model(self):
        if self._model is None:
            self._model = self.config.options.load_model(self.config.model)
        return self._model

    @property
    def model_name(self) -> str:
        return self.config.model

    def tasks(self) -> list[Task]:
        tasks = load_tasks(self.config.benchmark, self.config.data_dir)
        if self.config.labelled_only:
            tasks = [t for t in tasks if t.human_spans]
        return tasks[: self.config.limit]

    def run(self, progress=None, stop_after: float | None = None) -> ProbeSummary:
        """Probe every task (resuming); with ``stop_after`` seconds, start no task after that
        (a time-boxed run: re-running continues with the next tasks)."""
        from codefocus.models.base import is_white_box

        methods = [str(r.method) for r in self.rankings if r.kind == "method"]
        if not is_white_box(self.model):
            from codefocus.methods import REGISTRY

            needing = [m for m in methods if REGISTRY[m].needs_white_box]
            if needing:
                raise InvalidArgumentError(
                    f"--rank-by: {', '.join(needing)} need a white-box model; "
                    f"{self.model.name} is an endpoint (use perturbation methods)"
                )
        summary = ProbeSummary()

        def count(result: UnitResult) -> None:
            if result.failed:
                unit = result.unit
                summary.failed_units.append(f"{unit.task_id} {unit.key}: {result.error}")

        started = time.perf_counter()
        with UnitRunner(self.out / STORE_NAME, on_record=count) as runner:
            try:
                runner.claim(
                    self.config.to_dict(),
                    PROBE_SETTINGS,
                    lambda *_: (
                        f"{self.out} holds probes run with other settings; use another --out"
                    ),
                )
                tasks = self.tasks()
                for index, task in enumerate(tasks):
                    if stop_after is not None and time.perf_counter() - started > stop_after:
                        break
                    self._task(runner, task, summary)
                    if progress:
                        progress(index + 1, len(tasks), task.task_id)
            finally:
                summary.seconds = time.perf_counter() - started
        return summary

    # ---- one task -----------------------------------------------------------------------------
    def _task(self, runner: UnitRunner, task: Task, summary: ProbeSummary) -> None:
        from codefocus.generation.records import GenerationSettings

        summary.tasks += 1
        settings = GenerationSettings()
        model_input, offset = probe_input(task)
        unit = functools.partial(Unit, self.model_name, task.task_id)

        def generate():
            budget = self.model.default_max_new_tokens(task.reference_solution)
            generation = generate_checked(self.model, self.cache, model_input, budget, settings)
            return {"completion": generation.completion, "budget": budget}

        generation = runner.run(unit("generation"), generate)
        if generation is None:
            return
        verdict = runner.run(
            unit("verdict"), lambda: self._verdict(task, model_input, generation["completion"])
        )
        if verdict is None or not verdict["passed"]:
            return  # only code that passes can break
        summary.passing += 1
        words = probe_words(task)
        if not words:
            return
        orders = {}
        for ranking in self.rankings:
            payload = runner.run(
                unit("ranking", str(ranking)),
                functools.partial(
                    self._ranking, task, ranking, words, model_input, offset, generation
                ),
            )
            if payload is not None:
                orders[ranking] = payload["order"]
        probes = runner.run(
            unit("probes"),
            lambda: self._probes(task, words, orders, generation, model_input, offset, settings),
        )
        summary.probes += len(probes or [])

    def _ranking(self, task, ranking, words, model_input, offset, generation) -> dict:
        """The probe-able words (indices into ``words``), best first (``order_words``)."""
        completion = generation["completion"]
        return order_words(
            task,
            ranking,
            words,
            offset,
            lambda method: self._scores(task, method, model_input, completion),
        )

    def _verdict(self, task: Task, model_input: str, completion: str) -> dict:
        """The code's test verdict in the sandbox, under the original interface."""
        outcome = run_verdict(task, model_input, completion, self.config.timeout, sample=True)
        return {"passed": outcome.passed, "result": outcome.reason}

    def _scores(self, task: Task, method: str, model_input: str, completion: str):
        """(words, scores) of ``method`` on the probe's input, every word scored."""
        from codefocus.api import attribute

        key = (task.task_id, method)
        if key not in self._score_memo:
            result = attribute(
                self.model,
                model_input,
                [method],
                completion=completion,
                cache=self.cache,
                # every word scored: the probe substitutes any of them
                options=self.config.options.changed(scope="prompt"),
            )
            if method in result.failures:
                raise InvalidArgumentError(f"{method} failed: {result.failures[method]}")
            self._score_memo[key] = (result.words, result.word_scores[method])
        return self._score_memo[key]

    def _probes(self, task, words, orders, generation, model_input, offset, settings) -> list[dict]:
        from codefocus.data.wordnet import load_wordnet
        from codefocus.generation.generator import CachedGenerator
        from codefocus.methods.setup import rebuild
        from codefocus.methods.substitutes import get_provider, substitute_word

        provider = get_provider(self.config.substitutes, self.model)
        substitutes = [substitute_word(provider, task.prompt, w) for w in words]
        all_words = scoped_word_spans(task.prompt, "study")
        position = {(w.start, w.end): i for i, w in enumerate(all_words)}
        wordnet = load_wordnet()
        before, after = model_input[:offset], model_input[offset + len(task.prompt) :]
        planned = []
        for ranking, order in orders.items():
            for k in self.config.ks:
                chosen = sorted(order[:k])
                if not chosen:
                    continue
                replacements = {
                    position[(words[i].start, words[i].end)]: substitutes[i] for i in chosen
                }
                planned.append((ranking, k, chosen, rebuild(task.prompt, all_words, replacements)))
        generator = CachedGenerator(self.model, self.cache)
        inputs = [before + prompt + after for _, _, _, prompt in planned]
        outputs = generator.generations(
            inputs, generation["budget"], settings, original=model_input
        )
        records = []
        verdicts: dict[str, dict] = {}
        for (ranking, k, chosen, prompt), output in zip(planned, outputs, strict=True):
            if output.completion not in verdicts:  # under the original interface
                verdicts[output.completion] = self._verdict(task, model_input, output.completion)
            verdict = verdicts[output.completion]
            flipped, synonyms = [], 0
            for i in chosen:
                word = task.prompt[words[i].start : words[i].end]
                why, synonym = _meaning(word, substitutes[i], wordnet)
                flipped += [why] if why else []
                synonyms += synonym
            records.append(
                ProbeRecord(
                    task.task_id,
                    str(ranking),
                    k,
                    chosen,
                    [task.prompt[words[i].start : words[i].end] for i in chosen],
                    [substitutes[i] for i in chosen],
                    [c for i in chosen for c in word_categories(task, words[i])],
                    flipped,
                    synonyms,
                    task.prompt,
                    prompt,
                    generation["completion"],
                    output.completion,
                    verdict["passed"],
                    verdict["result"],
                ).to_dict()
            )
        return records


def load_probes(out: str | Path) -> tuple[ProbeConfig, list[ProbeRecord], dict]:
    """The run's configuration, every probe, and per task whether its original passed."""
    store = StudyStore(Path(out) / STORE_NAME)
    try:
        config = ProbeConfig.from_dict(store.meta("config", {}))
        records = []
        originals = {}
        for row in store.rows("probes"):
            if row["status"] == "done":
                records += [ProbeRecord.from_dict(r) for r in row["payload"]]
        for row in store.rows("verdict"):
            if row["status"] == "done":
                originals[row["task_id"]] = row["payload"]["passed"]
        return config, records, originals
    finally:
        store.close()


# moved to probes.rankings, probes.words and runs.programs; kept importable from here
__all__ = [
    "OPPOSITES",
    "STORE_NAME",
    "ProbeConfig",
    "ProbeRecord",
    "ProbeRun",
    "ProbeSummary",
    "Ranking",
    "load_probes",
    "order_by",
    "probe_input",
    "probe_words",
    "rankings_for",
    "word_categories",
]
