"""The library's entry point for attribution: ``attribute(model, task, methods)``.

It runs in three steps, each a function of its own:

1. ``prepare``: the model's input, its completion (generated when not given) and what the
   methods compute from (``MethodInputs``: the white-box context, the perturbation setup);
2. ``run_methods``: every method, a failure recorded instead of raised (the perturbed inputs of
   all perturbation methods are regenerated first, together, in one engine call);
3. ``to_attribution``: token scores mapped onto words and, per generated statement, onto the
   words again (the word -> statement map), into one typed ``Attribution``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codefocus.attribution import Attribution
from codefocus.data.benchmarks import Task
from codefocus.data.statements import Statement, line_of, statements_of
from codefocus.data.units import Aggregation, Span, aggregate_to_words, scoped_word_spans
from codefocus.data.units import scored_range as scored_range_of
from codefocus.errors import RECOVERABLE, CodefocusError, InvalidArgumentError
from codefocus.generation.cache import GenerationCache, default_cache
from codefocus.generation.generator import CachedGenerator
from codefocus.generation.records import GenerationSettings
from codefocus.generation.registry import get_engine
from codefocus.methods import Method, MethodInputs, TokenScores
from codefocus.methods.context import AttributionContext
from codefocus.methods.perturbation import prefetch
from codefocus.methods.setup import PerturbationSetup
from codefocus.methods.substitutes import check_provider
from codefocus.metrics.similarity import check_similarity
from codefocus.models.base import TextGenerator, is_white_box, model_input_for, study_budget
from codefocus.protocols import Protocol, get_protocol

log = logging.getLogger(__name__)
# a task reference given where a prompt is expected
TASK_REFERENCE = re.compile(r"(?i)(humaneval|mbpp)/[0-9]+")


@dataclass
class Prepared:
    """Everything the methods need for one task on one model."""

    model: TextGenerator
    task: Task | None
    prompt: str
    model_input: str
    completion: str
    completion_ids: Sequence[int] | None
    scope: str
    scored: tuple[int, int]
    inputs: MethodInputs
    settings: GenerationSettings
    timings: dict[str, float] = field(default_factory=dict)
    protocol: Protocol = field(default_factory=get_protocol)


def _as_model(model) -> TextGenerator:
    if isinstance(model, str):
        from codefocus.models.loading import load_model

        return load_model(model)
    return model


def check_arguments(scope: str, similarity: str, engine: str) -> None:
    """Fail on a bad scope, similarity or engine (before a model loads)."""
    scored_range_of("", scope)
    check_similarity(similarity)
    get_engine(engine)


def prepare(
    model: TextGenerator,
    task_or_prompt: Task | str,
    methods: list[Method],
    completion: str | None = None,
    completion_ids: Sequence[int] | None = None,
    settings: GenerationSettings | None = None,
    protocol: Protocol | str | None = None,
    cache: GenerationCache | None = None,
    batch_size: int = 8,
    engine: str = "draft",
) -> Prepared:
    """Step 1: the input, the completion (the model's greedy code when not given) and the
    methods' inputs, as ``protocol`` defines them. Bad arguments fail here, before any
    generation."""
    protocol = get_protocol(protocol)
    scope, exclude_sink = protocol.scope, protocol.exclude_sink
    substitutes, similarity = protocol.substitutes, protocol.similarity
    check_arguments(scope, similarity, engine)
    settings = settings or GenerationSettings()
    task = task_or_prompt if isinstance(task_or_prompt, Task) else None
    prompt = task.prompt if task else str(task_or_prompt)
    model_input = model_input_for(task, protocol.mbpp_header) if task else prompt
    scored = scored_range_of(prompt, scope)
    white_box = is_white_box(model)
    if not white_box:
        needing = [m.name for m in methods if m.needs_white_box]
        if needing:
            raise InvalidArgumentError(
                f"{', '.join(needing)} need a white-box model; {model.name} is an endpoint: "
                "use the perturbation methods (occlusion, bert_masking, shap, shap_partition)"
            )
    get_engine(engine).check(model)
    budget = settings.max_new_tokens or study_budget(
        model, task.reference_solution if task else None, protocol.budget_extra
    )
    generator = CachedGenerator(model, cache, batch_size, engine)
    timings: dict[str, float] = {}
    if completion is None:
        model.check_fits(model.count_tokens(model_input), budget)
        started = time.perf_counter()
        generation = generator.generations([model_input], budget, settings)[0]
        completion, completion_ids = generation.completion, generation.token_ids
        timings["generate"] = time.perf_counter() - started
    if completion_ids is not None:
        generator.suggest_draft(model_input, budget, settings, completion_ids)
    context = None
    if white_box:
        context = AttributionContext(
            model,  # type: ignore[arg-type]
            model_input,
            completion,
            completion_ids=completion_ids,
            scope=scored,
            exclude_sink=exclude_sink,
        )
    setup = None
    if any(m.family in ("perturbation", "likelihood") for m in methods):
        setup = PerturbationSetup(
            prompt=prompt,
            suffix=model_input[len(prompt) :],
            completion=completion,
            generator=generator,
            budget=budget,
            settings=settings,
            similarity=similarity,
            provider=substitutes,
            model=model,
            scope=scope,
        )
    return Prepared(
        model,
        task,
        prompt,
        model_input,
        completion,
        completion_ids,
        scope,
        scored,
        MethodInputs(context, setup),
        settings,
        timings,
        protocol,
    )


def run_methods(
    methods: list[Method], inputs: MethodInputs
) -> tuple[dict[str, TokenScores], dict[str, float], dict[str, str]]:
    """Step 2: each method's scores and seconds; a method that fails (a codefocus error, out of
    memory) is recorded in the failures and the others run."""
    results: dict[str, TokenScores] = {}
    timings: dict[str, float] = {}
    failures: dict[str, str] = {}
    shared: dict[str, float] = {}
    if inputs.perturbation is not None:
        try:  # every perturbed input of every method regenerated together
            shared = prefetch(methods, inputs.perturbation)
        except RECOVERABLE as error:  # each method meets it again below
            log.warning("regenerating the perturbed inputs together failed: %s", error)
    for method in methods:
        started = time.perf_counter()
        try:
            results[method.name] = method.compute(inputs)
        except CodefocusError as error:
            failures[method.name] = str(error)
            continue
        except RECOVERABLE as error:  # e.g. out of memory: record it, keep the other methods
            failures[method.name] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            log.warning("method %s failed: %s", method.name, failures[method.name])
            continue
        timings[method.name] = time.perf_counter() - started + shared.get(method.name, 0.0)
    return results, timings, failures


def _recorded_settings(prepared: Prepared, methods: list[Method], aggregation: str) -> dict:
    """What produced the scores, stored with them (so a result says how it was computed)."""
    recorded: dict = {
        "protocol": prepared.protocol.to_dict(),
        "generation": prepared.settings.to_dict(),
        "aggregation": aggregation,
        "scope": prepared.scope,
        "scored_range": list(prepared.scored),
        "scored_tokens": "generated ids"
        if prepared.completion_ids is not None
        else "tokenised text",
        "methods": {m.name: m.options() for m in methods},
    }
    context, setup = prepared.inputs.white_box, prepared.inputs.perturbation
    if context is not None and any(m.family.startswith("attention") for m in methods):
        sink = "first position not scored" if context.exclude_sink else "scored"
        recorded["attention_sink"] = sink
    if setup is not None:
        shap = next((m for m in methods if m.name == "shap"), None)
        recorded["perturbation"] = {
            "similarity": setup.similarity,
            "substitutes": setup.provider,
            "shap_samples": getattr(shap, "shap_samples", 50),
            "shap_l1_reg": getattr(shap, "shap_l1_reg", "none"),
            "engine": setup.generator.engine_used(),
        }
    return recorded


def _statement_rows(
    per_step: np.ndarray,
    step_lines: list[int],
    statements: list[Statement],
    scored: np.ndarray,
    token_spans: list[Span],
    words: list[Span],
    aggregation: Aggregation,
) -> list[list[float]]:
    """Per statement: the scores of the generated tokens on its lines, summed, onto words."""
    rows = []
    for statement in statements:
        mask = [statement.first_line <= line <= statement.last_line for line in step_lines]
        summed = per_step[np.asarray(mask, dtype=bool)].sum(axis=0)[scored]
        rows.append(aggregate_to_words(token_spans, summed, words, aggregation))
    return rows


def to_attribution(
    prepared: Prepared,
    methods: list[Method],
    results: dict[str, TokenScores],
    timings: dict[str, float],
    failures: dict[str, str],
    aggregation: Aggregation = "sum",
) -> Attribution:
    """Step 3: token scores onto words (each token to every word it overlaps) and statements."""
    context = prepared.inputs.white_box
    model_input, prompt = prepared.model_input, prepared.prompt
    tokens: list[Span] = []
    if context is not None:
        tokens = [
            Span(s, e, model_input[s:e])
            for (s, e), keep in zip(context.prompt_offsets, context.scored, strict=True)
            if keep
        ]
    words = [w.with_text(prompt) for w in scoped_word_spans(prompt, prepared.scope)]
    statements = statements_of(model_input, prepared.completion)
    step_lines = (
        [line_of(prepared.completion, start) for start, _ in context.completion_offsets]
        if context is not None
        else []
    )
    token_scores: dict[str, list[float]] = {}
    word_scores: dict[str, list[float]] = {}
    statement_scores: dict[str, list[list[float]]] = {}
    for name, result in results.items():
        scores = np.asarray(result.scores, dtype=float)
        if result.word_level:  # perturbation methods score the words themselves
            word_scores[name] = scores.tolist()
            continue
        assert context is not None  # token-level scores come from white-box methods only
        scores = scores[context.scored]
        token_scores[name] = scores.tolist()
        word_scores[name] = aggregate_to_words(tokens, scores, words, aggregation)
        if result.per_step is not None and len(result.per_step) == len(step_lines):
            statement_scores[name] = _statement_rows(
                result.per_step, step_lines, statements, context.scored, tokens, words, aggregation
            )
    task = prepared.task
    return Attribution(
        model=prepared.model.name,
        task_id=task.task_id if task else None,
        prompt=prompt,
        model_input=model_input,
        generated=prepared.completion,
        tokens=tokens,
        words=words,
        token_scores=token_scores,
        word_scores=word_scores,
        statements=statements,
        statement_word_scores=statement_scores,
        human_spans=list(task.human_spans) if task else [],
        settings=_recorded_settings(prepared, methods, aggregation),
        timings={**prepared.timings, **timings},
        failures=failures,
    )


_SUBSTITUTE_NOTES: set[str] = set()


def effective_protocol(protocol: Protocol, methods: Sequence[str] | str) -> Protocol:
    """The protocol as it can run here: a masked LM that is not installed (codefocus never
    downloads one) gives way to the embedding provider, said once per process and recorded in
    the protocol's name (``kou2024+substitutes=embedding``), so every table can mark the rows."""
    from codefocus.methods.substitutes import masked_lm_available

    if not any(m.family == "perturbation" for m in protocol.methods(methods)):
        return protocol
    if masked_lm_available(protocol.substitutes):
        return protocol
    if protocol.substitutes not in _SUBSTITUTE_NOTES:
        _SUBSTITUTE_NOTES.add(protocol.substitutes)
        log.warning(
            "substitutes %s: no such masked LM installed here (codefocus downloads none); BERT "
            "masking and SHAP use the embedding provider instead, recorded as "
            "substitutes=embedding",
            protocol.substitutes,
        )
    return protocol.derive(substitutes="embedding")


def attribute(
    model: TextGenerator | str,
    task_or_prompt: Task | str,
    methods: Sequence[str] | str = "all-whitebox",
    completion: str | None = None,
    settings: GenerationSettings | None = None,
    aggregation: Aggregation = "sum",
    substitutes: str | None = None,
    similarity: str | None = None,
    cache: GenerationCache | None | str = "default",
    batch_size: int = 8,
    scope: str | None = None,
    exclude_sink: bool | None = None,
    shap_l1_reg: str = "none",
    completion_ids: Sequence[int] | None = None,
    engine: str = "draft",
    method_options: dict | None = None,
    protocol: Protocol | str | None = None,
) -> Attribution:
    """Which words of a task the model attended to, by each method.

    Args:
        model: a loaded model (``load_model``) or a name: ``default``, ``tiny``, a hub id, a
            directory, a ``.gguf`` file, or an endpoint URL (perturbation methods only).
        task_or_prompt: a ``Task`` (``get_task("humaneval/0")``) or a prompt text.
        methods: method or group names (``all-whitebox``, ``perturbation``, ``shap``, ...).
        completion: code to explain; without it the model writes one (greedy, the study's token
            budget) and its generated tokens are scored exactly. A completion given as text is
            scored as tokenised (or as ``completion_ids`` when given).
        protocol: what the study's measurements mean (``codefocus.protocols``): ``codefocus``
            (default), ``kou2024`` (the study's released code: the only numbers comparable with
            its Table 2), ``kou2024-paper``, a derived one (``kou2024:exclude_sink=true``) or a
            ``Protocol``. It is recorded in ``settings["protocol"]``; a task reference
            (``"mbpp/11"``) is loaded with the protocol's labels.
        scope, exclude_sink, substitutes, similarity: change these fields of the protocol
            (``None``: as the protocol says). ``scope``: ``study`` scores the study's part of the
            prompt (HumanEval: ``def`` to the first ``>>>``), ``prompt`` all of it.
            ``exclude_sink``: attention methods do not score the first input position.
        cache: where generations are kept between calls (keyed by the model's fingerprint, the
            input and the settings): ``"default"`` (``generation.cache.default_cache``), a
            ``GenerationCache``, or ``None`` for none.
        shap_l1_reg: SHAP's regularisation (``none``, ``aic``, ``bic``, ``num_features(N)``).
        engine: ``draft`` regenerates perturbed prompts by verifying the original completion as
            a draft (exact; ``generation/draft.py``), ``plain`` decodes each one, ``llama.cpp``
            regenerates on llama.cpp in-process for a model with a GGUF file (the packaged
            default, a ``.gguf``), checked per task against transformers
            (``generation/llamacpp.py``). The engines are named in ``generation/registry.py``.
        method_options: further method options (``shap_samples``, ``partition_evals``,
            ``ig_steps``, ``gradient_chunk``), recorded in ``settings["methods"]``.

    Returns:
        An ``Attribution``; a method that failed is in its ``failures`` and the others ran.

    Raises:
        UnknownNameError: an unknown method, model or substitute provider.
        InvalidArgumentError: a bad scope, similarity, engine, option or method/model mix.
        ContextTooLongError: the prompt and the token budget do not fit the model.
    """
    changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("scope", scope),
            ("exclude_sink", exclude_sink),
            ("substitutes", substitutes),
            ("similarity", similarity),
        )
        if value is not None
    }
    chosen_protocol = effective_protocol(get_protocol(protocol).derive(**changes), methods)
    chosen = chosen_protocol.methods(methods, shap_l1_reg=shap_l1_reg, **(method_options or {}))
    check_arguments(chosen_protocol.scope, chosen_protocol.similarity, engine)  # before loading
    check_provider(chosen_protocol.substitutes)
    if not chosen:
        raise InvalidArgumentError("no method given")
    if isinstance(task_or_prompt, str) and TASK_REFERENCE.fullmatch(task_or_prompt.strip()):
        from codefocus.data.tasks import get_task

        # "humaneval/0" means the task, not the text
        task_or_prompt = get_task(task_or_prompt, labels=chosen_protocol.labels)
    if settings is not None and settings.max_new_tokens is not None:
        if settings.max_new_tokens < 1:
            raise InvalidArgumentError(
                f"max_new_tokens must be positive, got {settings.max_new_tokens}"
            )
    if cache == "default":
        cache = default_cache()
    elif isinstance(cache, str):
        raise InvalidArgumentError(f"cache must be 'default', a GenerationCache or None: {cache!r}")
    model = _as_model(model)
    prepared = prepare(
        model,
        task_or_prompt,
        chosen,
        completion=completion,
        completion_ids=completion_ids,
        settings=settings,
        protocol=chosen_protocol,
        cache=cache,
        batch_size=batch_size,
        engine=engine,
    )
    results, timings, failures = run_methods(chosen, prepared.inputs)
    return to_attribution(prepared, chosen, results, timings, failures, aggregation)
