"""Seconds per white-box method on the default model, and ratios against captum in the same run.

For N HumanEval prompts (default 5): generate once (greedy, the study's budget), then time
  * each of the ten methods alone (a fresh context each, so shared work is counted in full),
  * all ten together (shared forward / backward passes),
  * captum computing the same gradient scores the usual way: Saliency / InputXGradient with one
    forward + backward per generated token on its own prefix (as captum's LLM attribution and
    inseq do),
  * the attention sums from ``output_attentions=True`` over all layers (the usual way),
  * each method's floor: one teacher-forced forward over prompt + completion for the attention
    methods; one forward plus one backward (of one logit) for the reading-stage gradients; one
    forward plus one backward per generated token for the coding-stage gradients — timed the
    plainest way, and each method's time divided by it (``floor ratio``; 1.0 is the floor).
Each ratio is printed on its own line starting with ``ratio``.

    CODEFOCUS_DATA=../shared/data python benchmarks/attribution_speed.py [--prompts 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from captum.attr import InputXGradient, Saliency

from codefocus.data.tasks import load_tasks
from codefocus.methods import STUDY_WHITEBOX, MethodInputs, resolve_methods
from codefocus.methods.context import AttributionContext
from codefocus.models.base import model_input_for
from codefocus.models.loading import load_model


def captum_coding(model, context: AttributionContext, cls) -> np.ndarray:
    net = model.model
    ids = context.prompt_ids + context.completion_ids
    embed = net.get_input_embeddings()
    rows = []
    for step, target in enumerate(context.completion_ids):
        inputs = embed(torch.tensor([ids[: context.P + step]])).detach()
        method = cls(lambda x, t=target: net(inputs_embeds=x).logits[:, -1, t])
        kwargs = {"abs": True} if cls is Saliency else {}
        vector = method.attribute(inputs, **kwargs)[0].detach().norm(dim=-1).double().numpy()
        rows.append((vector / vector.sum())[: context.P])
    return np.array(rows).sum(0)


def attentions_the_usual_way(model, context: AttributionContext) -> np.ndarray:
    """CODING attention summed over all layers: the queries P-1 .. S-2 wrote the generated
    tokens; the first position (an attention sink) and unscored columns are not scored."""
    ids = torch.tensor([context.prompt_ids + context.completion_ids])
    with torch.no_grad():
        attentions = model.model(ids, output_attentions=True).attentions
    rows = slice(context.P - 1, context.P - 1 + context.G)
    summed = sum(a[0].sum(0)[rows, : context.P] for a in attentions).sum(0).numpy()
    return np.where(context.attention_scored, summed, 0.0)


def floors(model, context: AttributionContext) -> dict[str, float]:
    """Seconds of the least work each kind of method needs, done the plainest way."""
    ids = torch.tensor([context.prompt_ids + context.completion_ids])
    start = time.perf_counter()
    with torch.no_grad():
        model.model(ids)
    forward = time.perf_counter() - start
    net = model.model
    embeds = net.get_input_embeddings()(ids).detach().requires_grad_(True)
    start = time.perf_counter()
    logits = net(inputs_embeds=embeds).logits[0]
    targets = context.completion_ids or [int(logits[-1].argmax())]
    chosen = [logits[context.P - 1 + s, t] for s, t in enumerate(targets)]
    forward_grad = time.perf_counter() - start
    backward = []
    for value in chosen:
        start = time.perf_counter()
        torch.autograd.grad(value, embeds, retain_graph=True)
        backward.append(time.perf_counter() - start)
    return {
        "attention": forward,
        "reading": forward_grad + backward[0],
        "coding": forward_grad + sum(backward),
    }


def floor_of(name: str) -> str:
    if name.startswith(("reading_", "coding_")):
        return "attention"
    return "reading" if name.endswith("_reading") else "coding"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=5)
    parser.add_argument("--model", default="default")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the study's")
    parser.add_argument(
        "--skip-captum", action="store_true", help="only the methods and their floors (fast)"
    )
    args = parser.parse_args()
    model = load_model(args.model)
    tasks = load_tasks("humaneval")[: args.prompts]
    totals: dict[str, float] = {name: 0.0 for name in STUDY_WHITEBOX}
    totals |= {"all ten together": 0.0, "captum saliency_coding": 0.0}
    totals |= {"captum inputxgradient_coding": 0.0, "output_attentions coding_all": 0.0}
    worst = 0.0
    floor_totals = {"attention": 0.0, "reading": 0.0, "coding": 0.0}
    for task in tasks:
        text = model_input_for(task)
        budget = args.max_new_tokens or model.default_max_new_tokens(task.reference_solution)
        completion = model.generate([text], max_new_tokens=budget)[0].completion
        print(f"{task.task_id}: {len(completion)} characters generated", flush=True)
        for method in resolve_methods(list(STUDY_WHITEBOX)):
            context = AttributionContext(model, text, completion)
            start = time.perf_counter()
            scores = method.compute(MethodInputs(context)).scores
            totals[method.name] += time.perf_counter() - start
            if method.name in ("saliency_coding", "inputxgradient_coding") and not args.skip_captum:
                cls = Saliency if method.name == "saliency_coding" else InputXGradient
                start = time.perf_counter()
                reference = captum_coding(model, context, cls)
                totals[f"captum {method.name}"] += time.perf_counter() - start
                relative = np.abs(scores - reference) / np.maximum(np.abs(reference), 1e-12)
                worst = max(worst, float(relative.max()))
            if method.name == "coding_all":
                start = time.perf_counter()
                reference = attentions_the_usual_way(model, context)
                totals["output_attentions coding_all"] += time.perf_counter() - start
                np.testing.assert_allclose(scores, reference, rtol=1e-4, atol=1e-6)
        for kind, seconds in floors(model, AttributionContext(model, text, completion)).items():
            floor_totals[kind] += seconds
        context = AttributionContext(model, text, completion)
        start = time.perf_counter()
        for method in resolve_methods(list(STUDY_WHITEBOX)):
            method.compute(MethodInputs(context))
        totals["all ten together"] += time.perf_counter() - start
    n = len(tasks)
    print(f"model {model.name}, {n} HumanEval prompts, {torch.get_num_threads()} threads")
    for name, seconds in totals.items():
        print(f"seconds per prompt {name}: {seconds / n:.2f}")
    if not args.skip_captum:
        print(f"max relative difference vs captum: {worst:.2e}")
        for name in ("saliency_coding", "inputxgradient_coding"):
            print(f"ratio {name} vs captum: {totals['captum ' + name] / totals[name]:.2f}")
    print(
        "ratio coding_all vs output_attentions: "
        f"{totals['output_attentions coding_all'] / totals['coding_all']:.2f}"
    )
    for kind, seconds in floor_totals.items():
        print(f"seconds per prompt floor {kind}: {seconds / n:.2f}")
    for name in STUDY_WHITEBOX:
        kind = floor_of(name)
        print(f"floor ratio {name}: {totals[name] / floor_totals[kind]:.2f} (floor: {kind})")
    print(f"all ten methods for one task: {totals['all ten together'] / n:.1f} s (goal < 60 s)")


if __name__ == "__main__":
    main()
