"""Does batching the gradient methods across prompts pay, and does it change a score?

The study's gradient methods under ``kou2024`` cost one forward and one backward per prompt and
stage (READING: over the prompt, for the first generated token's logit; CODING: over prompt +
code, for the last token's logit). They run one prompt at a time. This measures the other way:
several prompts in one padded batch, one forward and one backward for all of them.

For ``--prompts`` HumanEval and as many MBPP prompts (the ``kou2024_live`` floor sample, code =
the reference solution, teacher-forced), each stage is timed

* one prompt at a time, and
* in batches of each ``--batch-sizes`` size, prompts sorted by length (least padding), padded on
  the right. A causal model never attends to a later position, so a row's real positions see
  no padding and need no attention mask; the targets of the rows are summed into one backward
  (rows do not interact, so each row's gradient is its own).

Both use the same path (the decoder's last hidden state at the target position, the output
layer on that one row), so the comparison isolates batching. One at a time runs before the
batches and again after them; the faster of the two is the baseline. Per batch size it reports
the seconds against that baseline (``ratio``), the largest absolute difference of any gradient
entry, how many prompts' gradients are bit-identical, and how many prompts' top-10 tokens by
Saliency (the gradient's L2 norm per token) change.

    CODEFOCUS_DATA=../shared/data .venv/bin/python benchmarks/cross_prompt_batching.py \\
        [--model default --prompts 8 --batch-sizes 2,4,8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kou2024_live import floor_sample  # noqa: E402  (this folder, not a package)
from provenance import provenance, write_json  # noqa: E402

sys.path.pop(0)

STAGES = ("reading", "coding")


def stage_inputs(model, cases) -> dict[str, list[tuple[list[int], int]]]:
    """Per stage, each prompt's token ids and target token: READING feeds the prompt and
    targets the code's first token; CODING feeds prompt + code but its last token, and targets
    that token."""
    inputs: dict[str, list[tuple[list[int], int]]] = {stage: [] for stage in STAGES}
    for case in cases:
        prompt = model.encode(case.model_input).ids
        code = model.tokenizer(case.task.reference_solution, add_special_tokens=False)["input_ids"]
        inputs["reading"].append((list(prompt), int(code[0])))
        inputs["coding"].append((list(prompt) + list(code[:-1]), int(code[-1])))
    return inputs


def gradients(model, rows: list[tuple[list[int], int]]) -> list[np.ndarray]:
    """One forward and one backward over ``rows`` padded on the right into one batch: each
    row's gradient of its target's logit with respect to its input embeddings."""
    import torch

    network = model.model
    width = max(len(ids) for ids, _ in rows)
    pad = int(model.tokenizer.eos_token_id or 0)
    tensor = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    tensor = tensor.to(model.device)
    with torch.no_grad():
        embeds = network.get_input_embeddings()(tensor).detach()
    embeds.requires_grad_(True)
    hidden = network.base_model(inputs_embeds=embeds, use_cache=False).last_hidden_state
    last = torch.tensor([len(ids) - 1 for ids, _ in rows], device=model.device)
    logits = network.get_output_embeddings()(hidden[torch.arange(len(rows)), last])
    targets = torch.tensor([target for _, target in rows], device=model.device)
    logits[torch.arange(len(rows)), targets].sum().backward()
    assert embeds.grad is not None
    grad = embeds.grad.float().cpu().numpy()
    return [grad[r, : len(ids)] for r, (ids, _) in enumerate(rows)]


def _sync(model) -> None:
    import torch

    if model.device.type == "cuda":
        torch.cuda.synchronize(model.device)


def run_stage(model, rows, batch_size: int) -> tuple[float, list[np.ndarray]]:
    """Seconds for every row in batches of ``batch_size`` (sorted by length), and the rows'
    gradients in their original order."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    found: dict[int, np.ndarray] = {}
    _sync(model)
    started = time.perf_counter()
    for at in range(0, len(order), batch_size):
        chunk = order[at : at + batch_size]
        for index, grad in zip(chunk, gradients(model, [rows[i] for i in chunk]), strict=True):
            found[index] = grad
    _sync(model)
    return time.perf_counter() - started, [found[i] for i in range(len(rows))]


def top_tokens(grad: np.ndarray, k: int = 10) -> list[int]:
    """Saliency's top-k tokens: the largest L2 norms, ties to the earlier token."""
    norms = np.linalg.norm(grad.astype(np.float64), axis=1)
    return sorted(np.argsort(-norms, kind="stable")[:k].tolist())


def compare(single: list[np.ndarray], batched: list[np.ndarray]) -> dict:
    """How far the batched gradients are from the one-at-a-time ones."""
    largest = max(float(np.max(np.abs(a - b))) for a, b in zip(single, batched, strict=True))
    scale = max(float(np.max(np.abs(a))) for a in single)
    return {
        "max_abs_difference": largest,
        "max_abs_gradient": scale,
        "bit_identical_prompts": sum(
            bool(np.array_equal(a, b)) for a, b in zip(single, batched, strict=True)
        ),
        "top10_changed_prompts": sum(
            top_tokens(a) != top_tokens(b) for a, b in zip(single, batched, strict=True)
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default", help="default, tiny, a hub id, a directory")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per benchmark")
    parser.add_argument("--batch-sizes", default="2,4,8")
    parser.add_argument("--out", default="benchmarks/results/cross_prompt_batching.json")
    parser.add_argument("--data", default=None, help="the data directory (default CODEFOCUS_DATA)")
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.batch_sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--batch-sizes {args.batch_sizes!r}: comma-separated positive integers")
    if args.prompts < 1 or not sizes or min(sizes) < 2:
        parser.error("--prompts must be positive and every --batch-sizes size at least 2")

    from codefocus.errors import CodefocusError
    from codefocus.models.loading import load_model

    try:
        model = load_model(args.model)
        cases, _ = floor_sample(model, args.prompts, args.data)
    except CodefocusError as error:
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    inputs = stage_inputs(model, cases)
    gradients(model, inputs["reading"][:1])  # warm-up, not timed
    record = {
        "benchmark": "cross_prompt_batching",
        **provenance(),
        "command": " ".join(["python", "benchmarks/cross_prompt_batching.py", *(argv or [])]),
        "model": model.name,
        "device": str(model.device),
        "dtype": str(next(model.model.parameters()).dtype),
        "task_ids": [case.task.task_id for case in cases],
        "stages": {},
    }
    for stage in STAGES:
        rows = inputs[stage]
        before, single = run_stage(model, rows, 1)
        measured = {size: run_stage(model, rows, size) for size in sizes}
        after, _ = run_stage(model, rows, 1)  # again: the order of the runs does not decide
        seconds = min(before, after)
        tokens = sum(len(ids) for ids, _ in rows)
        entry: dict = {
            "prompts": len(rows),
            "tokens": tokens,
            "one_at_a_time_seconds": seconds,
            "one_at_a_time_runs": [before, after],
        }
        print(
            f"{stage}: {len(rows)} prompts, {tokens} tokens, one at a time {before:.1f} s "
            f"before the batches and {after:.1f} s after"
        )
        for size, (batched_seconds, batched) in measured.items():
            figures = {"seconds": batched_seconds, "ratio": batched_seconds / seconds}
            figures.update(compare(single, batched))
            entry[f"batch_{size}"] = figures
            print(
                f"{stage} batch {size}: {batched_seconds:.1f} s, ratio {figures['ratio']:.2f}, "
                f"max |difference| {figures['max_abs_difference']:.2e} "
                f"(largest |gradient| {figures['max_abs_gradient']:.2e}), bit-identical "
                f"{figures['bit_identical_prompts']}/{len(rows)}, top-10 changed "
                f"{figures['top10_changed_prompts']}/{len(rows)}",
                flush=True,
            )
        record["stages"][stage] = entry
    write_json(Path(args.out), record)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
