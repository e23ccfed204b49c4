"""The library's entry points."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from codefocus.attribution import Attribution, Unit
from codefocus.data.statements import line_of, statements_of
from codefocus.data.tasks import Task
from codefocus.data.units import (
    Aggregation,
    Span,
    aggregate_to_words,
    scoped_word_spans,
    scored_range,
)
from codefocus.errors import CodefocusError, InvalidArgumentError
from codefocus.methods.base import resolve_methods
from codefocus.methods.context import AttributionContext
from codefocus.methods.perturbation import PerturbationSetup
from codefocus.methods.perturbation import shap_l1_reg as shap_l1_reg_argument
from codefocus.metrics.similarity import check_similarity
from codefocus.models.base import GenerationSettings, model_input_for
from codefocus.models.cache import CachedGenerator

log = logging.getLogger(__name__)


class _BlackBoxContext:
    """What a perturbation method sees of an endpoint model: only the perturbation setup."""

    perturbation = None


def _as_model(model):
    if isinstance(model, str):
        from codefocus.models.loading import load_model

        return load_model(model)
    return model


def _recorded_settings(
    settings, aggregation, scope, scored, exclude_sink, chosen, context, completion_ids
) -> dict:
    """What produced the scores, stored with them (so a result says how it was computed)."""
    recorded: dict = {
        "generation": settings.to_dict(),
        "aggregation": aggregation,
        "scope": scope,
        "scored_range": list(scored),
        "scored_tokens": "generated ids" if completion_ids is not None else "tokenised text",
    }
    families = {m.family for m in chosen}
    if "attention" in families or "attention-compat" in families:
        recorded["attention_sink"] = "first position not scored" if exclude_sink else "scored"
    setup = getattr(context, "perturbation", None)
    if setup is not None:
        recorded["perturbation"] = {
            "similarity": setup.similarity,
            "substitutes": setup.provider,
            "shap_samples": setup.shap_samples,
            "shap_l1_reg": setup.shap_l1_reg,
        }
    return recorded


def attribute(
    model,
    task_or_prompt: Task | str,
    methods: Sequence[str] | str = "all-whitebox",
    completion: str | None = None,
    settings: GenerationSettings | None = None,
    aggregation: Aggregation = "sum",
    substitutes: str = "embedding",
    similarity: str = "bleu",
    cache=None,
    batch_size: int = 8,
    scope: str = "study",
    exclude_sink: bool = True,
    shap_l1_reg: str = "none",
    completion_ids: Sequence[int] | None = None,
    engine: str = "draft",
) -> Attribution:
    """Which words of a task the model attended to, by each method.

    ``model`` is a loaded model or a name (``default``, ``tiny``, hub id, directory, .gguf).
    Without ``completion`` the model first writes one (greedy; the study's token budget) and its
    generated tokens are scored exactly; a ``completion`` given as text is scored as tokenised
    (or as ``completion_ids`` when given). ``scope="study"`` scores the study's part of the
    prompt (HumanEval: ``def`` to the first ``>>>``), ``"prompt"`` all of it; the model reads the
    whole input either way. A method that fails is recorded in ``failures`` and the others run.
    ``engine="draft"`` regenerates perturbed prompts by verifying the original completion as a
    draft (exact; ``models/engine.py``), ``"plain"`` decodes each one.
    """
    model = _as_model(model)
    settings = settings or GenerationSettings()
    chosen = resolve_methods(list(methods) if not isinstance(methods, str) else methods)
    scored = scored_range(
        task_or_prompt.prompt if isinstance(task_or_prompt, Task) else task_or_prompt, scope
    )
    check_similarity(similarity)
    shap_l1_reg_argument(shap_l1_reg)
    if isinstance(task_or_prompt, Task):
        task: Task | None = task_or_prompt
        prompt = task_or_prompt.prompt
        model_input = model_input_for(task_or_prompt)
    else:
        task = None
        prompt = model_input = task_or_prompt
    timings: dict[str, float] = {}
    budget = settings.max_new_tokens or model.default_max_new_tokens(
        task.reference_solution if task else None
    )
    if engine not in ("draft", "plain"):
        raise InvalidArgumentError(f"unknown engine {engine!r}: use draft or plain")
    generator = CachedGenerator(model, cache, batch_size, engine)
    if completion is None:
        model.check_fits(model.count_tokens(model_input), budget)
        started = time.perf_counter()
        generation = generator.generations([model_input], budget, settings)[0]
        completion, completion_ids = generation.completion, generation.token_ids
        timings["generate"] = time.perf_counter() - started
    white_box = hasattr(model, "encode")
    if not white_box:
        needing = [m.name for m in chosen if m.needs_white_box]
        if needing:
            raise InvalidArgumentError(
                f"{', '.join(needing)} need a white-box model; {model.name} is an endpoint: "
                "use the perturbation methods (occlusion, bert_masking, shap, shap_partition)"
            )
        context = _BlackBoxContext()
    else:
        context = AttributionContext(
            model,
            model_input,
            completion,
            completion_ids=completion_ids,
            scope=scored,
            exclude_sink=exclude_sink,
        )
    if any(m.family == "perturbation" for m in chosen):
        context.perturbation = PerturbationSetup(
            prompt=prompt,
            suffix=model_input[len(prompt) :],
            completion=completion,
            generator=generator,
            budget=budget,
            settings=settings,
            similarity=similarity,
            provider=substitutes,
            model=model,
            shap_l1_reg=shap_l1_reg,
            scope=scope,
        )
    offsets = context.prompt_offsets if white_box else []
    in_scope = list(context.scored) if white_box else []
    tokens = [
        Unit(model_input[s:e], s, e) for (s, e), keep in zip(offsets, in_scope, strict=True) if keep
    ]
    words = [
        Unit(prompt[w.start : w.end], w.start, w.end) for w in scoped_word_spans(prompt, scope)
    ]
    token_spans = [Span(t.start, t.end) for t in tokens]
    word_span_list = [Span(w.start, w.end) for w in words]
    statements = statements_of(model_input, completion)
    step_lines = [
        line_of(completion, start) for start, _ in getattr(context, "completion_offsets", [])
    ]

    token_scores: dict[str, list[float]] = {}
    word_scores: dict[str, list[float]] = {}
    statement_scores: dict[str, list[list[float]]] = {}
    failures: dict[str, str] = {}
    for method in chosen:
        started = time.perf_counter()
        try:
            result = method.compute(context)
        except CodefocusError as error:
            failures[method.name] = str(error)
            continue
        except RuntimeError as error:  # e.g. out of memory: record it, keep the other methods
            failures[method.name] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
            log.warning("method %s failed: %s", method.name, failures[method.name])
            continue
        timings[method.name] = time.perf_counter() - started
        scores = np.asarray(result.scores, dtype=float)
        if result.word_level:  # perturbation methods score the words themselves
            word_scores[method.name] = scores.tolist()
            continue
        scores = scores[context.scored]
        token_scores[method.name] = scores.tolist()
        word_scores[method.name] = aggregate_to_words(
            token_spans, scores, word_span_list, aggregation
        )
        if result.per_step is not None and len(result.per_step) == len(step_lines):
            rows = []
            for statement in statements:
                mask = [statement.first_line <= line <= statement.last_line for line in step_lines]
                summed = result.per_step[np.asarray(mask, dtype=bool)].sum(axis=0)[context.scored]
                rows.append(aggregate_to_words(token_spans, summed, word_span_list, aggregation))
            statement_scores[method.name] = rows
    return Attribution(
        model=model.name,
        task_id=task.task_id if task else None,
        prompt=prompt,
        model_input=model_input,
        generated=completion,
        tokens=tokens,
        words=words,
        token_scores=token_scores,
        word_scores=word_scores,
        statements=statements,
        statement_word_scores=statement_scores,
        human_spans=list(task.human_spans) if task else [],
        settings=_recorded_settings(
            settings, aggregation, scope, scored, exclude_sink, chosen, context, completion_ids
        ),
        timings=timings,
        failures=failures,
    )
