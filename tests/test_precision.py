"""Half precision keeps results meaningful (issue 29): in bfloat16 greedy regeneration is exact
with respect to the same model in the same precision — the draft engine gives plain greedy
decoding's tokens — and the attention and gradient methods sum and norm in float32, so their
scores are finite and close to float32's. On the CPU, with the tiny models."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from codefocus.data.units import word_spans
from codefocus.generation.draft import DraftVerifier
from codefocus.generation.records import GenerationSettings
from codefocus.generation.ties import default_tie_margin, near_ties
from codefocus.methods import STUDY_WHITEBOX, MethodInputs, resolve_methods
from codefocus.methods.context import AttributionContext
from codefocus.methods.setup import rebuild
from codefocus.models.hf import HFModel
from codefocus.models.tiny import build_chaotic_model, build_tiny_model

PROMPT = 'def is_even(n: int) -> bool:\n    """Check if n is even."""\n'
COMPLETION = "    return n % 2 == 0\n"
SETTINGS = GenerationSettings()


def chaotic(architecture: str, dtype: torch.dtype) -> HFModel:
    """A tiny model with large random weights (as in ``test_engine.py``: its greedy output
    varies from prompt to prompt, so drafts diverge), in ``dtype``."""
    net, tokenizer = build_chaotic_model(architecture)
    return HFModel(net.to(dtype), tokenizer, f"tiny-{architecture}-{dtype}", device="cpu")


@pytest.fixture(scope="module", params=["qwen2", "gpt2"])
def bf16(request):
    return chaotic(request.param, torch.bfloat16)


def perturbations(prompt: str, count: int = 8) -> list[str]:
    words = word_spans(prompt)
    deleted = [rebuild(prompt, words, {i: ""}) for i in range(len(words))]
    replaced = [rebuild(prompt, words, {i: "value"}) for i in range(len(words))]
    far = rebuild(prompt, words, {i: "" for i in range(len(words)) if i % 3})  # most words gone
    return [*deleted[: count // 2], *replaced[: count // 2], far]


def plain(model: HFModel, inputs: list[str], budget: int) -> list[tuple[int, ...] | None]:
    """Plain greedy decoding, one input at a time, to the full budget, cut afterwards."""
    model.early_stop = False
    try:
        return [model.generate([t], SETTINGS, max_new_tokens=budget)[0].token_ids for t in inputs]
    finally:
        model.early_stop = True


# ---------------------------------------------------------------- exact greedy regeneration


@pytest.mark.slow
def test_draft_engine_equals_plain_greedy_in_bfloat16(bf16):
    """bfloat16 on the CPU: the engine's regenerations (drafts verified and diverging, inputs
    decoded without a draft, the original itself) are plain greedy decoding's, token for
    token — with the near-tie check off, from the engine's own forwards alone, and with it on
    (the default in half precision), where near ties are left to plain decoding."""
    assert bf16.model.dtype == torch.bfloat16
    budget = 12
    inputs = [*perturbations(PROMPT), PROMPT]
    expected = plain(bf16, inputs, budget)
    unguarded = DraftVerifier(bf16, tie_margin=0.0)
    assert [g.token_ids for g in unguarded.regenerate(inputs, PROMPT, budget, SETTINGS)] == expected
    assert unguarded.diverged > 0 and unguarded.decoded > 0 and unguarded.tied == 0
    guarded = DraftVerifier(bf16)
    assert guarded.tie_margin == 4 * torch.finfo(torch.bfloat16).eps
    assert [g.token_ids for g in guarded.regenerate(inputs, PROMPT, budget, SETTINGS)] == expected


def test_unrelated_prompts_decode_as_one_at_a_time_in_bfloat16():
    """``generate_many`` (the studies' batched generation) in bfloat16, own budget per input."""
    model = chaotic("qwen2", torch.bfloat16)
    inputs = [PROMPT, "def add(a, b):\n", "Write a function to sort a list.\ndef function():"]
    budgets = [6, 9, 4]
    out = DraftVerifier(model).generate_many(inputs, budgets, SETTINGS)
    assert [g.token_ids for g in out] == [
        plain(model, [text], budget)[0] for text, budget in zip(inputs, budgets, strict=True)
    ]


def test_near_ties_are_left_to_plain_decoding():
    """The tie check's own path, forced on in float32 (where it is off by default): with a
    margin nothing clears, every input the engine would settle is decoded plainly — the same
    tokens; with a moderate one, some are."""
    model = chaotic("qwen2", torch.float32)
    assert DraftVerifier(model).tie_margin == 0.0  # float32: as it always was
    budget = 8
    inputs = [*perturbations(PROMPT, 4), PROMPT]
    expected = plain(model, inputs, budget)
    always = DraftVerifier(model, tie_margin=1e9)
    assert [g.token_ids for g in always.regenerate(inputs, PROMPT, budget, SETTINGS)] == expected
    assert always.tied == len(inputs) - 1  # all but the original itself (no forward for it)
    some = DraftVerifier(model, tie_margin=0.05)
    assert [g.token_ids for g in some.regenerate(inputs, PROMPT, budget, SETTINGS)] == expected


def test_tie_margins_by_dtype():
    logits = torch.tensor([[3.0, 2.99, 0.0], [3.0, 1.0, 0.0], [0.1, 0.09, 0.0]])
    assert near_ties(logits, 0.01) == [True, False, True]  # relative to max(|best|, 1)
    assert near_ties(logits, 0.001) == [False, False, False]
    net, tokenizer = build_tiny_model("qwen2")
    margins = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        model = HFModel(net.to(dtype), tokenizer, "tiny", device="cpu")
        margins[dtype] = default_tie_margin(model)
    assert margins == {torch.float32: 0.0, torch.bfloat16: 4 / 128, torch.float16: 4 / 1024}


# ---------------------------------------------------------------- float32 accumulation


@pytest.fixture(scope="module", params=["qwen2", "gpt2"])
def pair(request):
    """The same tiny weights in float32 and in bfloat16."""
    net, tokenizer = build_tiny_model(request.param, seed=3)
    half, _ = build_tiny_model(request.param, seed=3)
    return (
        HFModel(net, tokenizer, "tiny-float32", device="cpu"),
        HFModel(half.to(torch.bfloat16), tokenizer, "tiny-bfloat16", device="cpu"),
    )


def contexts(pair):
    return [AttributionContext(m, PROMPT, COMPLETION, gradient_chunk=3) for m in pair]


def test_attention_heads_are_summed_in_float32(pair):
    """Captured attention is float32, and equals the float32 sum of the model's own bfloat16
    weights (``output_attentions``), not their bfloat16 sum."""
    _, half = pair
    context = AttributionContext(half, PROMPT, COMPLETION)
    captured = context.attention(set(range(half.num_layers)))
    ids = context._ids()
    with torch.no_grad():
        weights = half.model(ids, output_attentions=True).attentions
    rounded = False
    for layer, matrix in captured.items():
        assert matrix.dtype == np.float32
        heads = weights[layer][0][:, :, : context.P]
        assert np.array_equal(matrix, heads.float().sum(0).numpy())
        rounded |= not np.array_equal(matrix, heads.sum(0).float().numpy())
    assert rounded  # summing in bfloat16 would have given other numbers


def test_target_logits_and_gradient_norms_are_float32(pair):
    _, half = pair
    context = AttributionContext(half, PROMPT, COMPLETION)
    embeds = half.model.get_input_embeddings()(context._ids())
    logits = context._target_logits(embeds, [context.completion_ids[0]], [context.P - 1])
    assert logits.dtype == torch.float32
    saliency, input_x_gradient = context.gradients()
    for rows in (saliency, input_x_gradient):
        assert rows.dtype == np.float64 and np.isfinite(rows).all()
        np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-9)


def test_whitebox_scores_in_bfloat16_are_finite_and_near_float32(pair):
    """The ten white-box methods and integrated gradients: finite scores, held in float32 or
    wider, ranking the tokens as float32 does (Spearman >= 0.95 on these tiny models)."""
    methods = resolve_methods([*STUDY_WHITEBOX, "integrated_gradients_reading"])
    full, half = (
        {m.name: m.compute(MethodInputs(white_box=c)) for m in methods} for c in contexts(pair)
    )
    for name in full:
        scores = half[name].scores
        assert scores.dtype in (np.float32, np.float64), name
        assert np.isfinite(scores).all(), name
        if half[name].per_step is not None:
            assert np.isfinite(half[name].per_step).all(), name
        correlation = spearmanr(full[name].scores, scores)[0]
        assert correlation >= 0.95, (name, correlation)


# ---------------------------------------------------------------- the prepared GPU check


@pytest.fixture(scope="module")
def gpu_check():
    """``benchmarks/gpu_check.py`` as a module."""
    import sys

    from benchmark_modules import load_benchmark

    try:  # its dataclasses look their module up in sys.modules
        yield load_benchmark("gpu_check", register=True)
    finally:
        sys.modules.pop("gpu_check", None)


def test_gpu_check_pieces_on_the_cpu(gpu_check):
    """The check's own parts, on the CPU branch of each: its comparison against the stated
    tolerances, the padded tokenizer of the default-configuration model, and the memory meter
    (``torch.cuda`` statistics on a GPU)."""
    cpu = {"0:m": np.array([1.0, 2.0, 3.0])}
    assert gpu_check.compare(cpu, cpu, "float32")["0:m"]["ok"]
    off = {"0:m": np.array([1.0, 2.0, 3.0003])}
    assert not gpu_check.compare(off, cpu, "float32")["0:m"]["ok"]  # 1e-4 of the largest
    assert gpu_check.compare(off, cpu, "bfloat16")["0:m"]["ok"]
    swapped = {"0:m": np.array([3.0, 2.0, 1.0])}
    assert not gpu_check.compare(swapped, cpu, "bfloat16")["0:m"]["ok"]
    _, tokenizer = build_tiny_model("qwen2")
    padded = gpu_check.padded(tokenizer, 1000)
    assert len(padded) == 1000 and padded.decode([999]) == "<x999>"
    assert padded("def f(x):")["input_ids"] == tokenizer("def f(x):")["input_ids"]
    _, used = gpu_check.peak_bytes(torch.device("cpu"), lambda: torch.ones(10**7).sum())
    assert used is None or used >= 35 * 10**6


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu(gpu_check, tmp_path, monkeypatch):
    """``--device cpu --quick``: every check runs and passes, and the results file is written
    where ``OUT`` says (the same code as on a GPU, but for synchronisation and the memory
    meter)."""
    import json

    monkeypatch.setenv("OUT", str(tmp_path))
    assert gpu_check.main(["--device", "cpu", "--quick"]) == 0
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["passed"] and result["device"] == "cpu" and result["quick"]
    assert len(result["models"]) == 3 and result["memory"]["ok"]
    for record in result["models"].values():
        assert set(gpu_check.DTYPES) <= set(record)
