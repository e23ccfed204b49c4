"""Faithfulness of an attribution to the model: does the model's belief in its own code depend
on the words a method ranks highest?

Every prompt variant the metrics need — each method's top-k and bottom-k words left out, only
its top-k kept, the random controls, the held-out ablations of the linear datamodeling score —
is collected first, identical variants once, and scored in one teacher-forced pass
(``CompletionScorer``: batched, the original prompt's keys and values reused for the shared
prefix). Code change regenerates greedily with the exact draft engine, so an unchanged answer
costs one verifying forward.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from codefocus.errors import InvalidArgumentError
from codefocus.faithfulness.results import Faithfulness, MethodFaithfulness
from codefocus.methods.likelihood import CompletionScorer
from codefocus.methods.setup import WordTemplate
from codefocus.metrics.alignment import top_k_indices

if TYPE_CHECKING:
    from codefocus.attribution import Attribution

PERTURBATIONS = ("delete", "substitute")


def _order(scores: Sequence[float]) -> np.ndarray:
    """All words, highest score first (ties to the earlier word, NaN last: as ``top_k``)."""
    return top_k_indices(scores, len(scores)) if len(scores) else np.zeros(0, dtype=int)


def _absent(count: int, left_out: Sequence[int] | np.ndarray) -> np.ndarray:
    mask = np.ones(count, dtype=int)
    mask[list(left_out)] = 0
    return mask


def _kept(count: int, kept: Sequence[int] | np.ndarray) -> np.ndarray:
    mask = np.zeros(count, dtype=int)
    mask[list(kept)] = 1
    return mask


def check_options(k: int, perturbation: str, random_orders: int, lds_samples: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidArgumentError(f"k must be a positive integer, got {k!r}")
    if perturbation not in PERTURBATIONS:
        raise InvalidArgumentError(
            f"unknown perturbation {perturbation!r}: choose from {', '.join(PERTURBATIONS)}"
        )
    if isinstance(random_orders, bool) or not isinstance(random_orders, int) or random_orders < 1:
        raise InvalidArgumentError(f"random_orders must be at least 1, got {random_orders!r}")
    if isinstance(lds_samples, bool) or not isinstance(lds_samples, int) or lds_samples < 0:
        raise InvalidArgumentError(f"lds_samples must be 0 or more, got {lds_samples!r}")


def check_not_contrastive(attribution: Attribution, name: str) -> None:
    """Faithfulness measures log p(code): a contrastive attribution (which explains
    ``log p(code) - log p(contrast)``) is refused in one line naming ``name``."""
    if attribution.contrast is not None:
        raise InvalidArgumentError(
            f"{name}: a contrastive attribution explains log p(code) - log p(contrast), and "
            "faithfulness measures log p(code): attribute without a contrast"
        )


def evaluate_faithfulness(
    model,
    attribution: Attribution,
    methods: Sequence[str] | None = None,
    *,
    k: int = 10,
    perturbation: str = "delete",
    random_orders: int = 3,
    lds_samples: int = 32,
    code_change: bool = True,
    budget: int | None = None,
    max_memory: int | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
) -> Faithfulness:
    """Deletion and insertion curves (k = 1..K), their controls, code change and the linear
    datamodeling score for each method of ``attribution``, on the model that produced it.

    Args:
        model: the loaded model the attribution explains (white-box, or an endpoint that returns
            prompt log-probabilities: ``CompletionScorer``).
        attribution: an ``Attribution`` of that model; its words are what is left out.
        methods: which of its methods (default: all that have scores).
        k: the largest number of words left out (the curves stop at the word count).
        perturbation: ``delete`` a word (with one space), or ``substitute`` it (the provider the
            attribution's protocol recorded).
        random_orders: seeded random rankings averaged into the random control.
        lds_samples: held-out random ablations (each word kept with probability 1/2) for the
            linear datamodeling score: the Spearman correlation between the sum of the kept
            words' scores and log p(code | ablated prompt). 0 skips it.
        code_change: regenerate greedily with the top-K (and a random K) left out, and record
            whether the code changed.
        budget: the generation budget for code change (default: the one the original used).
        max_memory: bytes, bounds the rows of each teacher-forced forward.
        seed: for the random orders and the ablations.
        data_dir: where the task's reference solution is read when the attribution recorded no
            generation budget (default: ``$CODEFOCUS_DATA``).
    """
    check_options(k, perturbation, random_orders, lds_samples)
    started = time.perf_counter()
    names = list(methods) if methods is not None else attribution.methods
    for name in names:
        attribution.scores(name)  # an unknown method: one clear error
    check_not_contrastive(attribution, attribution.task_id or "prompt")
    words = attribution.words
    count = len(words)
    if count == 0:
        raise InvalidArgumentError(
            f"{attribution.task_id or 'prompt'}: no words to leave out (scope "
            f"{attribution.settings.get('scope', '?')})"
        )
    prompt = attribution.prompt
    suffix = attribution.model_input[len(prompt) :]
    substitutes = _substitutes(model, attribution) if perturbation == "substitute" else None
    template = WordTemplate(prompt, words, substitutes)
    ks = list(range(1, min(k, count) + 1))
    rng = np.random.default_rng(seed)

    wanted: dict[str, None] = {prompt: None}  # every variant, once, in first-seen order

    def variant(mask: np.ndarray) -> str:
        text = template.render(mask)
        wanted.setdefault(text, None)
        return text

    def curves(order: np.ndarray, lowest: bool) -> dict[str, list[str]]:
        chosen = {
            "deletion": [variant(_absent(count, order[:j])) for j in ks],
            "insertion": [variant(_kept(count, order[:j])) for j in ks],
        }
        if lowest:
            chosen["lowest_deletion"] = [variant(_absent(count, order[::-1][:j])) for j in ks]
        return chosen

    orders = {name: _order(attribution.scores(name)) for name in names}
    planned = {name: curves(order, lowest=True) for name, order in orders.items()}
    random_ranks = [rng.permutation(count) for _ in range(random_orders)]
    planned_random = [curves(order, lowest=False) for order in random_ranks]
    ablations = np.random.default_rng(seed + 1).integers(0, 2, size=(lds_samples, count))
    ablated = [variant(mask) for mask in ablations]

    completion_ids = None
    code_tokens = None
    if hasattr(model, "tokenizer"):
        completion_ids = tuple(
            model.tokenizer(attribution.generated, add_special_tokens=False)["input_ids"]
        )
        code_tokens = len(completion_ids)
    elif hasattr(model, "completion_token_count"):  # an endpoint that can tell
        code_tokens = int(model.completion_token_count(attribution.generated))
    scorer = CompletionScorer(
        model, attribution.generated, completion_ids, suffix, prompt, max_memory=max_memory
    )
    texts = list(wanted)
    values = dict(zip(texts, scorer(texts).tolist(), strict=True))

    def looked_up(chosen: dict[str, list[str]]) -> dict[str, list[float]]:
        return {key: [values[t] for t in variants] for key, variants in chosen.items()}

    changed = {}
    random_changed = None
    if code_change:
        top = {name: _absent(count, order[: ks[-1]]) for name, order in orders.items()}
        control = _absent(count, random_ranks[0][: ks[-1]])
        budget = budget or _budget(model, attribution, data_dir)
        outcome = _code_changed(
            model, attribution, template, [*top.values(), control], suffix, budget
        )
        changed = dict(zip(top, outcome[:-1], strict=True))
        random_changed = outcome[-1]

    measured = {name: np.array([values[t] for t in ablated]) for name in names}
    results = {}
    for name in names:
        scores = np.nan_to_num(np.asarray(attribution.scores(name), dtype=float))
        results[name] = MethodFaithfulness(
            method=name,
            ks=ks,
            **looked_up(planned[name]),
            code_changed=changed.get(name),
            lds=_lds(ablations, scores, measured[name]) if lds_samples else None,
        )
    random_curves = [looked_up(chosen) for chosen in planned_random]
    random = MethodFaithfulness(
        method="random",
        ks=ks,
        deletion=np.mean([c["deletion"] for c in random_curves], axis=0).tolist(),
        insertion=np.mean([c["insertion"] for c in random_curves], axis=0).tolist(),
        code_changed=random_changed,
    )
    return Faithfulness(
        model=attribution.model,
        task_id=attribution.task_id,
        k=k,
        perturbation=perturbation,
        full=values[prompt],
        code_tokens=code_tokens,
        words=count,
        methods=results,
        random=random,
        settings={
            "random_orders": random_orders,
            "lds_samples": lds_samples,
            "seed": seed,
            "variants_scored": len(texts),
            "target": "log p(code | prompt variant), nats summed over the code's tokens",
            "substitutes": attribution.settings.get("protocol", {}).get("substitutes")
            if perturbation == "substitute"
            else None,
        },
        seconds=time.perf_counter() - started,
    )


def _lds(masks: np.ndarray, scores: np.ndarray, measured: np.ndarray) -> float | None:
    """Spearman correlation between the scores read as a linear surrogate (the sum of the kept
    words' scores) and the measured log-probabilities; None where either is constant."""
    from scipy.stats import spearmanr

    predicted = masks @ scores
    if len(masks) < 3 or np.ptp(predicted) == 0 or np.ptp(measured) == 0:
        return None
    return float(spearmanr(predicted, measured).statistic)


def _substitutes(model, attribution: Attribution) -> list[str]:
    from codefocus.methods.substitutes import get_provider, substitute_word

    provider_name = attribution.settings.get("protocol", {}).get("substitutes", "embedding")
    provider = get_provider(provider_name, model)
    return [substitute_word(provider, attribution.prompt, w) for w in attribution.words]


def _budget(model, attribution: Attribution, data_dir: str | Path | None) -> int:
    """The original generation's budget: the recorded one, else the study's rule."""
    from codefocus.models.base import study_budget
    from codefocus.protocols import get_protocol

    given = attribution.settings.get("generation", {}).get("max_new_tokens")
    if given:
        return int(given)
    protocol = get_protocol(attribution.settings.get("protocol"))
    reference = None
    if attribution.task_id:
        from codefocus.data.tasks import get_task

        reference = get_task(attribution.task_id, data_dir).reference_solution
    return study_budget(model, reference, protocol.budget_extra)


def _code_changed(
    model,
    attribution: Attribution,
    template: WordTemplate,
    masks: list[np.ndarray],
    suffix: str,
    budget: int,
) -> list[bool]:
    """Whether greedy regeneration from each masked prompt differs from the attributed code."""
    from codefocus.generation.generator import CachedGenerator
    from codefocus.generation.records import GenerationSettings

    settings = GenerationSettings.from_dict(attribution.settings.get("generation", {}))
    generator = CachedGenerator(model, cache=None)
    original = attribution.model_input
    if hasattr(model, "tokenizer"):  # the attributed code as the exact engine's draft
        ids = model.tokenizer(attribution.generated, add_special_tokens=False)["input_ids"]
        generator.suggest_draft(original, budget, settings, ids)
    inputs = [template.render(mask) + suffix for mask in masks]
    outputs = generator(inputs, budget, settings, original=original)
    return [output != attribution.generated for output in outputs]
