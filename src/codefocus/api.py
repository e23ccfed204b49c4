"""The library's entry point for attribution: ``attribute(model, task, methods, options)``.

``options`` (``codefocus.options.AttributionOptions``) are checked where they are made; then each
step is a function of its own:

1. ``plan``: the request checked before any model loads: the protocol as it runs here, the method
   instances, the task and its input, the cache; ``check_model`` checks the loaded model against
   it (white-box methods, the engine, device and dtype);
2. ``generate_original``: the model's greedy completion, when none is given;
3. ``build_inputs``: what the methods compute from (``MethodInputs``: the white-box context, the
   perturbation setup); ``prepare`` runs ``check_model``, 2 and 3 for one task on one model;
4. ``run_methods``: every method, a failure recorded instead of raised (the perturbed inputs of
   all perturbation methods are regenerated first, together, in one engine call);
5. ``to_attribution``: token scores mapped onto words and, per generated statement, onto the
   words again (the word -> statement map), into one typed ``Attribution``.

A ``contrast`` (``attribute(..., contrast=...)``: the task's reference solution or given code)
makes the target contrastive, ``log p(code | x) - log p(contrast | x)``: the methods that take one
explain it (``methods.likelihood``, the summed CODING gradients), the others are refused with a
one-line failure each; ``Contrast`` and ``contrast_for`` say what text is contrasted.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from codefocus.attribution import Attribution
from codefocus.data.benchmarks import Task
from codefocus.data.statements import Statement, line_of, statements_of
from codefocus.data.units import Aggregation, Span, aggregate_to_words, scoped_word_spans
from codefocus.data.units import scored_range as scored_range_of
from codefocus.errors import RECOVERABLE, CodefocusError, InvalidArgumentError
from codefocus.generation.cache import GenerationCache, default_cache
from codefocus.generation.generator import CachedGenerator
from codefocus.generation.records import Generation, GenerationSettings
from codefocus.generation.registry import get_engine
from codefocus.methods import Method, MethodInputs, TokenScores
from codefocus.methods.context import AttributionContext
from codefocus.methods.perturbation import prefetch
from codefocus.methods.setup import PerturbationSetup
from codefocus.models.base import TextGenerator, is_white_box, model_input_for, study_budget
from codefocus.options import AttributionOptions, build_options, effective_protocol, placement_of
from codefocus.protocols import Protocol

__all__ = ["AttributionOptions", "attribute", "effective_protocol", "plan", "prepare"]
log = logging.getLogger(__name__)
# a task reference given where a prompt is expected
TASK_REFERENCE = re.compile(r"(?i)(humaneval|mbpp)/[0-9]+")


@dataclass(frozen=True)
class Plan:
    """A request, checked: the protocol as it runs, the methods, the input; nothing loaded."""

    options: AttributionOptions
    protocol: Protocol
    methods: list[Method]
    task: Task | None
    prompt: str
    model_input: str
    scored: tuple[int, int]
    settings: GenerationSettings
    cache: GenerationCache | None
    contrast: Contrast | None = None


@dataclass(frozen=True)
class Contrast:
    """The code the model's own is contrasted with: ``source`` is ``"reference"`` (the task's
    reference solution, made comparable: ``reference_contrast``) or ``"given"``; ``text`` is
    what is scored after the model input."""

    source: str
    text: str

    def to_dict(self) -> dict:
        return {"source": self.source, "text": self.text}


def takes_contrast(method: Method) -> bool:
    """Whether ``method`` can explain ``log p(code) - log p(contrast)``."""
    return bool(getattr(method, "takes_contrast", False))


def reference_contrast(task: Task, suffix: str) -> str:
    """The task's reference solution as code read after the same model input as the model's.

    HumanEval: the canonical solution as released (the function's body, which follows the
    prompt as the model's code does). An input that ends in a function header (MBPP under the
    study's ``def function():``): the body of the reference's entry-point function, the text
    after its own ``def <entry_point>(...):`` (blanks before its line end dropped), since the
    model writes a body after the header; imports and helpers before that ``def`` are left out.
    """
    reference = task.reference_solution or ""
    if not reference.strip():
        raise InvalidArgumentError(
            f"contrast='reference': {task.task_id} has no reference solution; give code instead"
        )
    if not suffix.rstrip().endswith(":"):
        return reference
    end = _header_end(reference, task.entry_point)
    if end is None:
        raise InvalidArgumentError(
            f"contrast='reference': no def {task.entry_point} in the reference solution of "
            f"{task.task_id}; give code instead"
        )
    body = re.sub(r"\A[ \t]+(?=\n)", "", reference[end:])
    if not body.strip():
        raise InvalidArgumentError(
            f"contrast='reference': the reference solution of {task.task_id} has an empty body"
        )
    return body


def _header_end(code: str, name: str) -> int | None:
    """Where the header ``def name(...):`` of ``code`` ends (after its colon), or None."""
    import io
    import tokenize

    starts = [0]  # where each line starts (tokenize counts rows from 1)
    for line in code.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    previous: list[str] = []
    depth, inside = 0, False
    try:
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if not inside:
                inside = previous[-1:] == ["def"] and token.string == name
                if token.type != tokenize.NL and token.type != tokenize.COMMENT:
                    previous.append(token.string)
                continue
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth -= 1
            elif token.type == tokenize.OP and token.string == ":" and depth == 0:
                row, column = token.end
                return starts[row - 1] + column
    except (tokenize.TokenError, SyntaxError):
        return None
    return None


def contrast_for(task: Task | None, suffix: str, contrast: str | None) -> Contrast | None:
    """``contrast`` resolved: None, ``"reference"`` (the task's, ``reference_contrast``), or
    code text (taken as given)."""
    if contrast is None:
        return None
    if not isinstance(contrast, str):
        raise InvalidArgumentError(
            f"contrast must be 'reference' or code text, got {type(contrast).__name__}"
        )
    if contrast == "reference":
        if task is None:
            raise InvalidArgumentError(
                "contrast='reference' needs a benchmark task (humaneval/N, mbpp/N); "
                "for a prompt of your own, give the contrast as code"
            )
        return Contrast("reference", reference_contrast(task, suffix))
    if not contrast.strip():
        raise InvalidArgumentError("the contrast is empty: give 'reference' or code text")
    return Contrast("given", contrast)


@dataclass
class Prepared:
    """Everything the methods need for one task on one model."""

    model: TextGenerator
    plan: Plan
    completion: str
    completion_ids: Sequence[int] | None
    inputs: MethodInputs
    timings: dict[str, float] = field(default_factory=dict)


def plan(
    task_or_prompt: Task | str,
    methods: Sequence[str] | str,
    options: AttributionOptions,
    settings: GenerationSettings | None = None,
    cache: GenerationCache | None | str = "default",
    contrast: str | None = None,
) -> Plan:
    """Step 1: the request checked before any model loads (``options`` are checked already). A
    task reference given as the prompt (``"mbpp/11"``) is loaded with the protocol's labels; a
    ``contrast`` is resolved (``contrast_for``) and needs a method that takes one."""
    protocol = options.run_protocol(methods)
    chosen = options.methods(methods, protocol)
    if not chosen:
        raise InvalidArgumentError("no method given")
    if isinstance(task_or_prompt, str) and TASK_REFERENCE.fullmatch(task_or_prompt.strip()):
        from codefocus.data.tasks import get_task

        # "humaneval/0" means the task, not the text
        task_or_prompt = get_task(task_or_prompt, labels=protocol.labels)
    settings = settings or GenerationSettings()
    if settings.max_new_tokens is not None and settings.max_new_tokens < 1:
        raise InvalidArgumentError(
            f"max_new_tokens must be positive, got {settings.max_new_tokens}"
        )
    if cache == "default":
        cache = default_cache()
    elif isinstance(cache, str):
        raise InvalidArgumentError(f"cache must be 'default', a GenerationCache or None: {cache!r}")
    task = task_or_prompt if isinstance(task_or_prompt, Task) else None
    prompt = task.prompt if task else str(task_or_prompt)
    model_input = model_input_for(task, protocol.mbpp_header) if task else prompt
    scored = scored_range_of(prompt, protocol.scope)
    resolved = contrast_for(task, model_input[len(prompt) :], contrast)
    if resolved is not None and not any(takes_contrast(m) for m in chosen):
        from codefocus.methods import contrast_refusal

        raise InvalidArgumentError(contrast_refusal(*chosen))
    return Plan(
        options, protocol, chosen, task, prompt, model_input, scored, settings, cache, resolved
    )


def check_model(model: TextGenerator, planned: Plan) -> None:
    """The loaded model can run the plan: white-box methods need a white-box model, the engine
    must take it, and a device or dtype asked for must be the one it is in."""
    if not is_white_box(model):
        needing = [m.name for m in planned.methods if m.needs_white_box]
        if needing:
            raise InvalidArgumentError(
                f"{', '.join(needing)} need a white-box model; {model.name} is an endpoint: "
                "use the perturbation methods (occlusion, bert_masking, shap, shap_partition) "
                "or, where the server echoes prompt log-probabilities, the likelihood methods"
            )
    get_engine(planned.options.engine).check(model)
    planned.options.check_placement(model)


def generate_original(
    model: TextGenerator,
    model_input: str,
    budget: int,
    settings: GenerationSettings,
    generator: CachedGenerator,
) -> Generation:
    """Step 2: the model's greedy completion of ``model_input`` (checked to fit first)."""
    model.check_fits(model.count_tokens(model_input), budget)
    return generator.generations([model_input], budget, settings)[0]


def build_inputs(
    model: TextGenerator,
    planned: Plan,
    completion: str,
    completion_ids: Sequence[int] | None,
    generator: CachedGenerator,
    budget: int,
) -> MethodInputs:
    """Step 3: the white-box context (white-box models) and the perturbation setup (when a
    perturbation or likelihood method is asked for)."""
    protocol = planned.protocol
    context = None
    if is_white_box(model):
        context = AttributionContext(
            model,
            planned.model_input,
            completion,
            completion_ids=completion_ids,
            scope=planned.scored,
            exclude_sink=protocol.exclude_sink,
            contrast=planned.contrast.text if planned.contrast else None,
        )
    setup = None
    if any(m.family in ("perturbation", "likelihood") for m in planned.methods):
        setup = PerturbationSetup(
            prompt=planned.prompt,
            suffix=planned.model_input[len(planned.prompt) :],
            completion=completion,
            generator=generator,
            budget=budget,
            settings=planned.settings,
            similarity=protocol.similarity,
            provider=protocol.substitutes,
            model=model,
            scope=protocol.scope,
            contrast=planned.contrast.text if planned.contrast else None,
        )
    return MethodInputs(context, setup)


def prepare(
    model: TextGenerator,
    planned: Plan,
    completion: str | None = None,
    completion_ids: Sequence[int] | None = None,
) -> Prepared:
    """The model checked against the plan, the completion (the model's greedy code when not
    given: step 2) and the methods' inputs (step 3)."""
    check_model(model, planned)
    task, options = planned.task, planned.options
    budget = planned.settings.max_new_tokens or study_budget(
        model, task.reference_solution if task else None, planned.protocol.budget_extra
    )
    generator = CachedGenerator(model, planned.cache, options.batch_size, options.engine)
    timings: dict[str, float] = {}
    if completion is None:
        started = time.perf_counter()
        generation = generate_original(
            model, planned.model_input, budget, planned.settings, generator
        )
        completion, completion_ids = generation.completion, generation.token_ids
        timings["generate"] = time.perf_counter() - started
    if completion_ids is not None:
        generator.suggest_draft(planned.model_input, budget, planned.settings, completion_ids)
    inputs = build_inputs(model, planned, completion, completion_ids, generator, budget)
    return Prepared(model, planned, completion, completion_ids, inputs, timings)


def run_methods(
    methods: list[Method], inputs: MethodInputs
) -> tuple[dict[str, TokenScores], dict[str, float], dict[str, str]]:
    """Step 4: each method's scores and seconds; a method that fails (a codefocus error, out of
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


def _recorded_settings(prepared: Prepared) -> dict:
    """What produced the scores, stored with them (so a result says how it was computed)."""
    planned, methods = prepared.plan, prepared.plan.methods
    scored_ids = prepared.completion_ids is not None
    recorded: dict = {
        "protocol": planned.protocol.to_dict(),
        "generation": planned.settings.to_dict(),
        "aggregation": planned.options.aggregation,
        "scope": planned.protocol.scope,
        "scored_range": list(planned.scored),
        "scored_tokens": "generated ids" if scored_ids else "tokenised text",
        "methods": {m.name: m.options() for m in methods},
        **placement_of(prepared.model),  # device and dtype, for a white-box model
    }
    if planned.contrast is not None:  # absent without one: results as before
        recorded["contrast"] = planned.contrast.to_dict()
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
    results: dict[str, TokenScores],
    timings: dict[str, float],
    failures: dict[str, str],
) -> Attribution:
    """Step 5: token scores onto words (each token to every word it overlaps) and statements."""
    planned = prepared.plan
    context = prepared.inputs.white_box
    model_input, prompt = planned.model_input, planned.prompt
    aggregation = cast(Aggregation, planned.options.aggregation)
    tokens: list[Span] = []
    if context is not None:
        tokens = [
            Span(s, e, model_input[s:e])
            for (s, e), keep in zip(context.prompt_offsets, context.scored, strict=True)
            if keep
        ]
    words = [w.with_text(prompt) for w in scoped_word_spans(prompt, planned.protocol.scope)]
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
    task = planned.task
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
        settings=_recorded_settings(prepared),
        timings={**prepared.timings, **timings},
        failures=failures,
    )


def attribute(
    model: TextGenerator | str,
    task_or_prompt: Task | str,
    methods: Sequence[str] | str = "all-whitebox",
    options: AttributionOptions | None = None,
    *,
    completion: str | None = None,
    settings: GenerationSettings | None = None,
    cache: GenerationCache | None | str = "default",
    completion_ids: Sequence[int] | None = None,
    contrast: str | None = None,
    **keywords: Any,
) -> Attribution:
    """Which words of a task the model attended to, by each method.

    Args:
        model: a loaded model (``load_model``) or a name: ``default``, ``tiny``, a hub id, a
            directory, a ``.gguf`` file, or an endpoint URL (perturbation and likelihood
            methods). A name is loaded on ``options.device`` in ``options.dtype``.
        task_or_prompt: a ``Task`` (``get_task("humaneval/0")``) or a prompt text; a task
            reference (``"mbpp/11"``) is loaded with the protocol's labels.
        methods: method or group names (``all-whitebox``, ``perturbation``, ``shap``, ...).
        options: how the attribution runs (``AttributionOptions``): the protocol (``codefocus``
            by default; ``kou2024`` gives the only numbers comparable with the study's Table 2)
            and the fields of it to change (``scope``, ``exclude_sink``, ``substitutes``,
            ``similarity``), the aggregation onto words, the regeneration ``engine`` (``draft``:
            exact, the original completion verified as a draft; ``plain``; ``llama.cpp``) and its
            ``batch_size``, the ``method_options`` (``shap_samples``, ``shap_l1_reg``,
            ``ig_steps``, ...), ``device``, ``dtype`` and ``max_memory``. The protocol is
            recorded in ``settings["protocol"]``, the device and dtype in ``settings``.
        completion: code to explain; without it the model writes one (greedy, the study's token
            budget) and its generated tokens are scored exactly. A completion given as text is
            scored as tokenised (or as ``completion_ids`` when given).
        settings: generation settings (default: greedy, the study's token budget).
        cache: where generations are kept between calls (keyed by the model's fingerprint, the
            input and the settings): ``"default"`` (``generation.cache.default_cache``), a
            ``GenerationCache``, or ``None`` for none.
        contrast: explain why the model wrote its code rather than other code: ``None`` (the
            default: its code alone), ``"reference"`` (the task's reference solution, made
            comparable with the model's code: ``reference_contrast``) or code text. The target
            becomes ``log p(code | x) - log p(contrast | x)``: positive scores push toward the
            model's code, negative ones toward the contrast. Only the leave-one-out likelihood
            methods, contextcite with ``contextcite_target="logprob"`` and the summed CODING
            gradients take one; each other method is recorded in ``failures``.
            Recorded in ``settings["contrast"]`` (``source`` and ``text``).
        **keywords: any field of ``AttributionOptions`` (``scope="prompt"``, ``engine="plain"``),
            changing ``options``: the keywords ``attribute`` took before the options object, kept
            working. ``shap_l1_reg=`` still works, with a ``DeprecationWarning``: it is
            ``method_options={"shap_l1_reg": ...}`` now.

    Returns:
        An ``Attribution``; a method that failed is in its ``failures`` and the others ran.

    Raises:
        UnknownNameError: an unknown method, model or substitute provider.
        InvalidArgumentError: a bad scope, similarity, engine, option or method/model mix.
        ContextTooLongError: the prompt and the token budget do not fit the model.
    """
    options = build_options(options, **keywords)
    # before any model loads
    planned = plan(task_or_prompt, methods, options, settings, cache, contrast)
    loaded = options.load_model(model) if isinstance(model, str) else model
    prepared = prepare(loaded, planned, completion, completion_ids)
    runnable: list[Method] = planned.methods
    refused: dict[str, str] = {}
    if planned.contrast is not None:  # a method that cannot explain a contrast does not run
        from codefocus.methods import contrast_refusal

        runnable = [m for m in planned.methods if takes_contrast(m)]
        refused = {m.name: contrast_refusal(m) for m in planned.methods if not takes_contrast(m)}
    results, timings, failures = run_methods(runnable, prepared.inputs)
    return to_attribution(prepared, results, timings, {**refused, **failures})
