"""Attention-guided robustness probes (Kou et al., Section 6): substitute the words a method ranks
highest, regenerate, and run the tests — do they break the code more often than random words?

Per task whose original greedy code passes its tests: each ranking orders the task's words
(a registered method's scores; ``programmers`` = the labelled words, in a seeded order;
``random:<seed>``; and the control ``lowest:<method>``, the method's lowest-ranked words); for
each K the top-K words are replaced together by the provider's substitutes, the code is
regenerated greedily (the exact engine, batched over the task's probes) and run in the sandbox.
A probe *breaks* the task when the new code fails. A substitute that flips meaning — a WordNet
antonym, or a different number — is marked and not counted as a robustness failure.

The model reads the task as it would be evaluated (``models.base.evaluation_input_for``):
HumanEval's prompt as released; MBPP's text and first test in a docstring, then
``def <entry_point>(`` — the study's ``def function():`` header takes no arguments, so its code
could never pass the tests. Rankings are computed on that same input. HumanEval's signature line
is the interface the tests call: its words are never substituted (a renamed function or
parameter fails the tests whatever the model writes), and new code is run under the original
prompt.

Every unit (generation, verdict, ranking, the task's probes) is stored in ``OUT/probe.sqlite``
(the study store) as it finishes; re-running resumes.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codefocus.data.tasks import Task, load_tasks
from codefocus.data.units import Span, scoped_word_spans
from codefocus.errors import RECOVERABLE, InvalidArgumentError
from codefocus.serialization import JsonRecord
from codefocus.studies.store import StudyStore

log = logging.getLogger(__name__)
STORE_NAME = "probe.sqlite"
SPECIAL = ("programmers", "random")


@dataclass(frozen=True)
class ProbeConfig(JsonRecord):
    model: str = "default"
    benchmark: str = "mbpp"
    limit: int | None = None
    rank_by: tuple[str, ...] = ("bert_masking",)
    ks: tuple[int, ...] = (1, 3)
    substitutes: str = "embedding"
    random_seeds: tuple[int, ...] = (0, 1, 2)
    lowest: bool = True  # the control: each method's lowest-ranked words
    timeout: float = 3.0
    data_dir: str | None = None
    labelled_only: bool = True
    protocol: str = "codefocus"  # what a ranking method computes (codefocus.protocols)


@dataclass
class ProbeRecord(JsonRecord):
    """One probe: which words of which task were replaced, by what, and what the code did."""

    task_id: str
    ranking: str
    k: int
    changed: list[int]  # word indices
    words: list[str]
    substitutes: list[str]
    categories: list[str]  # label categories of the changed words (may repeat, may be empty)
    flipped: list[str]  # why a substitute flips meaning ("antonym: x -> y", "number: 3 -> 4")
    synonyms: int  # substitutes WordNet calls synonyms of their word
    prompt: str
    perturbed: str
    original_code: str
    new_code: str
    passed: bool
    verdict: str

    @property
    def broke(self) -> bool:
        return not self.passed

    @property
    def counted(self) -> bool:
        """Counted as a robustness probe: no substitute flips meaning."""
        return not self.flipped


@dataclass
class ProbeSummary(JsonRecord):
    tasks: int = 0
    passing: int = 0
    probes: int = 0
    failed_units: list[str] = field(default_factory=list)
    seconds: float = 0.0


def rankings_for(config: ProbeConfig) -> list[str]:
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
    methods = [r for r in chosen if r not in SPECIAL]
    out = list(dict.fromkeys(chosen))
    out += [f"random:{seed}" for seed in config.random_seeds]
    if config.lowest:
        out += [f"lowest:{m}" for m in methods]
    return out


def probe_words(task: Task) -> list[Span]:
    """The words a probe may substitute: the study's scored words, less HumanEval's signature."""
    words = scoped_word_spans(task.prompt, "study")
    if task.benchmark == "humaneval":
        start = task.prompt.find("def ")
        line_end = task.prompt.find("\n", start)
        words = [w for w in words if not (start <= w.start < line_end)]
    return words


def probe_input(task: Task) -> tuple[str, int]:
    """The text the model reads for a probe, and where the task text starts in it."""
    from codefocus.models.base import evaluation_input_for

    text = evaluation_input_for(task)
    offset = text.find(task.prompt)
    assert offset >= 0  # the task text is part of its evaluation input
    return text, offset


def word_categories(task: Task, word: Span) -> list[str]:
    return sorted(
        {s.category for s in task.human_spans if min(s.end, word.end) > max(s.start, word.start)}
    )


def order_by(scores: list[float], lowest: bool = False) -> list[int]:
    """Word indices, best first (ties to the earlier word); ``lowest`` reverses the scores."""
    values = -np.asarray(scores, dtype=float) if lowest else np.asarray(scores, dtype=float)
    values = np.where(np.isnan(values), -np.inf, values)
    return [int(i) for i in np.argsort(-values, kind="stable")]


# opposites that matter in a task's logic but that WordNet does not list as antonyms
OPPOSITES = {
    frozenset(pair)
    for pair in (
        ("and", "or"),
        ("all", "any"),
        ("min", "max"),
        ("minimum", "maximum"),
        ("true", "false"),
        ("even", "odd"),
        ("ascending", "descending"),
        ("increasing", "decreasing"),
        ("first", "last"),
        ("before", "after"),
        ("less", "more"),
        ("fewer", "more"),
        ("lower", "upper"),
        ("lowercase", "uppercase"),
        ("smaller", "larger"),
        ("smaller", "bigger"),
        ("smallest", "largest"),
        ("positive", "negative"),
        ("left", "right"),
    )
}


def _meaning(word: str, substitute: str, wordnet) -> tuple[str | None, bool]:
    """(why the substitute flips meaning, or None; whether WordNet calls them synonyms)."""
    from codefocus.methods.substitutes import _NUMBER

    if frozenset((word.lower(), substitute.lower())) in OPPOSITES:
        return f"opposite: {word} -> {substitute}", False
    if _NUMBER.match(word):
        return (f"number: {word} -> {substitute}" if substitute != word else None), False
    if wordnet is None:
        return None, False
    low, new = word.lower(), substitute.lower()
    forms = {new} | {f for pos in ("n", "v", "a", "r") for f in wordnet.lemmas(new, pos)}
    if forms & {a.lower() for a in wordnet.antonyms(low)}:
        return f"antonym: {word} -> {substitute}", False
    synonyms = {s.lower() for s in wordnet.synonyms(low)}
    return None, bool(forms & synonyms)


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
            from codefocus.models.loading import load_model

            self._model = load_model(self.config.model)
        return self._model

    def tasks(self) -> list[Task]:
        tasks = load_tasks(self.config.benchmark, self.config.data_dir)
        if self.config.labelled_only:
            tasks = [t for t in tasks if t.human_spans]
        return tasks[: self.config.limit]

    def run(self, progress=None, stop_after: float | None = None) -> ProbeSummary:
        """Probe every task (resuming); with ``stop_after`` seconds, start no task after that
        (a time-boxed run: re-running continues with the next tasks)."""
        from codefocus.models.base import is_white_box

        methods = [r for r in self.rankings if r not in SPECIAL and ":" not in r]
        if not is_white_box(self.model):
            from codefocus.methods import REGISTRY

            needing = [m for m in methods if REGISTRY[m].needs_white_box]
            if needing:
                raise InvalidArgumentError(
                    f"--rank-by: {', '.join(needing)} need a white-box model; "
                    f"{self.model.name} is an endpoint (use perturbation methods)"
                )
        store = StudyStore(self.out / STORE_NAME)
        summary = ProbeSummary()
        started = time.perf_counter()
        try:
            previous = store.meta("config")
            current = self.config.to_dict()
            if previous and {k: v for k, v in previous.items() if k != "limit"} != {
                k: v for k, v in current.items() if k != "limit"
            }:
                raise InvalidArgumentError(
                    f"{self.out} holds probes run with other settings; use another --out"
                )
            store.set_meta("config", current)
            tasks = self.tasks()
            for index, task in enumerate(tasks):
                if stop_after is not None and time.perf_counter() - started > stop_after:
                    break
                self._task(store, task, summary)
                if progress:
                    progress(index + 1, len(tasks), task.task_id)
        finally:
            summary.seconds = time.perf_counter() - started
            store.close()
        return summary

    # ---- one task -----------------------------------------------------------------------------
    def _unit(self, store, task, kind, compute, summary):
        """A stored unit's payload, computing and storing it first when missing."""
        row = store.get(self.model_name, task.task_id, kind)
        if row is not None:
            return row["payload"] if row["status"] == "done" else None
        started = time.perf_counter()
        try:
            payload = compute()
        except RECOVERABLE as error:
            reason = f"{type(error).__name__}: {error}"
            store.put(self.model_name, task.task_id, kind, None, error=reason)
            summary.failed_units.append(f"{task.task_id} {kind}: {reason}")
            return None
        store.put(
            self.model_name, task.task_id, kind, payload, seconds=time.perf_counter() - started
        )
        return payload

    @property
    def model_name(self) -> str:
        return self.config.model

    def _task(self, store, task: Task, summary: ProbeSummary) -> None:
        from codefocus.generation.records import GenerationSettings

        summary.tasks += 1
        settings = GenerationSettings()
        model_input, offset = probe_input(task)

        def generate():
            from codefocus.generation.generator import CachedGenerator

            budget = self.model.default_max_new_tokens(task.reference_solution)
            self.model.check_fits(self.model.count_tokens(model_input), budget)
            (generation,) = CachedGenerator(self.model, self.cache).generations(
                [model_input], budget, settings
            )
            return {"completion": generation.completion, "budget": budget}

        generation = self._unit(store, task, "generation", generate, summary)
        if generation is None:
            return
        verdict = self._unit(
            store, task, "verdict", lambda: self._verdict(task, model_input, generation), summary
        )
        if verdict is None or not verdict["passed"]:
            return  # only code that passes can break
        summary.passing += 1
        words = probe_words(task)
        if not words:
            return
        orders = {}
        for ranking in self.rankings:
            payload = self._unit(
                store,
                task,
                f"ranking:{ranking}",
                lambda r=ranking: self._ranking(
                    task, r, words, model_input, offset, generation["completion"]
                ),
                summary,
            )
            if payload is not None:
                orders[ranking] = payload["order"]
        probes = self._unit(
            store,
            task,
            "probes",
            lambda: self._probes(task, words, orders, generation, model_input, offset, settings),
            summary,
        )
        summary.probes += len(probes or [])

    def _verdict(self, task, model_input, generation) -> dict:
        passed, reason = self._run(task, model_input, generation["completion"])
        return {"passed": passed, "result": reason}

    def _run(self, task: Task, model_input: str, completion: str) -> tuple[bool, str]:
        """The code's test verdict in the sandbox, under the original interface."""
        from codefocus.execution.evaluate import program_for
        from codefocus.execution.sandbox import Limits, run_python
        from codefocus.models.base import sample_record

        program, tests = program_for(task, sample_record(task, model_input, completion))
        outcome = run_python(program, tests, Limits(timeout=self.config.timeout))
        return outcome.passed, outcome.reason

    def _ranking(
        self,
        task: Task,
        ranking: str,
        words: list[Span],
        model_input: str,
        offset: int,
        completion: str,
    ) -> dict:
        """The probe-able words (indices into ``words``), best first."""
        if ranking.startswith("random:"):
            order = list(range(len(words)))
            random.Random(f"{task.task_id}:{ranking}").shuffle(order)
            return {"order": order}
        if ranking == "programmers":
            labelled = [i for i, w in enumerate(words) if word_categories(task, w)]
            random.Random(f"{task.task_id}:programmers").shuffle(labelled)
            return {"order": labelled}
        lowest = ranking.startswith("lowest:")
        method = ranking.split(":", 1)[1] if lowest else ranking
        scored_words, scores = self._scores(task, method, model_input, completion)
        position = {(w.start - offset, w.end - offset): i for i, w in enumerate(scored_words)}
        own = [scores[position[(w.start, w.end)]] for w in words]
        if max(own) == min(own):
            raise InvalidArgumentError(f"{method} gave no attribution (all scores equal)")
        return {"order": order_by(own, lowest), "scores": own}

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
                substitutes=self.config.substitutes,
                cache=self.cache,
                scope="prompt",
                protocol=self.config.protocol,
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
        verdicts: dict[str, tuple[bool, str]] = {}
        for (ranking, k, chosen, prompt), output in zip(planned, outputs, strict=True):
            if output.completion not in verdicts:  # under the original interface
                verdicts[output.completion] = self._run(task, model_input, output.completion)
            passed, reason = verdicts[output.completion]
            flipped, synonyms = [], 0
            for i in chosen:
                word = task.prompt[words[i].start : words[i].end]
                why, synonym = _meaning(word, substitutes[i], wordnet)
                flipped += [why] if why else []
                synonyms += synonym
            records.append(
                ProbeRecord(
                    task.task_id,
                    ranking,
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
                    passed,
                    reason,
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
