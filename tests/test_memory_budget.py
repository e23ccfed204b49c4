"""Memory-bounded methods (issue 29): a budget ``max_memory`` (bytes) chooses the rows of every
batch — the coding-stage gradients' backward passes, integrated gradients' steps, the engine's
prefill and decoding batches, ``generate``'s batches, the likelihood forwards — from the
estimates of ``generation/memory.py``, and never changes a result. A 2,000-token prompt on a tiny
model runs within a stated budget, by measured peak memory.

How memory is measured: ``tracemalloc`` only sees Python's own allocator, not the storage of a
torch CPU tensor (``test_the_meter_sees_tensor_memory`` checks both), and torch keeps no CPU
allocation statistics. So ``peak_memory`` measures the peak resident set size of the process
(Linux: ``/proc/self/clear_refs`` resets the high-water mark ``VmHWM``; free heap memory is first
handed back with ``malloc_trim``, so that freed pages cannot hide new allocations) and subtracts
the resident size before the work: what the work added at its peak, tensors included.
"""

import ctypes
import dataclasses
import logging
import math
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from codefocus.data.units import word_spans
from codefocus.errors import InvalidArgumentError
from codefocus.generation.draft import DraftVerifier
from codefocus.generation.generator import CachedGenerator
from codefocus.generation.memory import ModelShape, memory_budget, rows_within
from codefocus.generation.records import GenerationSettings
from codefocus.methods import STUDY_WHITEBOX, MethodInputs, resolve_methods
from codefocus.methods.context import AttributionContext
from codefocus.methods.likelihood import completion_logprobs
from codefocus.methods.perturbation import prefetch
from codefocus.methods.setup import PerturbationSetup, rebuild
from codefocus.models.hf import HFModel
from codefocus.models.tiny import build_chaotic_model, build_tiny_model

PROMPT = 'def is_even(n: int) -> bool:\n    """Check if n is even."""\n'
COMPLETION = "    return n % 2 == 0 and n > 0\n"
SETTINGS = GenerationSettings()
MB = 10**6


# ---------------------------------------------------------------- measuring memory


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) * 1024


def peak_memory(work):
    """``work()``'s result and the peak resident memory it added, in bytes (module doc)."""
    clear_refs = Path("/proc/self/clear_refs")
    # Linux only (this project's machines and CI); elsewhere the test fails saying why
    assert clear_refs.exists(), "peak resident memory is measured through /proc/self/clear_refs"
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    clear_refs.write_text("5")  # reset the high-water mark to the present resident size
    before = _status("VmRSS")
    result = work()
    return result, _status("VmHWM") - before


def test_the_meter_sees_tensor_memory():
    """tracemalloc misses a tensor's storage; the resident-memory meter sees it, freed or not,
    and sees nothing where nothing is allocated."""
    tracemalloc.start()
    try:
        tensor = torch.ones(25 * MB)  # 100 MB
        assert tracemalloc.get_traced_memory()[1] < MB
        del tensor
    finally:
        tracemalloc.stop()

    def allocate_and_free():
        torch.ones(25 * MB).sum()

    _, seen = peak_memory(allocate_and_free)
    assert 95 * MB <= seen < 140 * MB
    _, idle = peak_memory(lambda: None)
    assert idle < 10 * MB


# ---------------------------------------------------------------- estimates


def test_model_shapes_and_rows():
    from transformers import GPT2Config, Qwen2Config

    qwen2 = Qwen2Config(
        vocab_size=400,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    gpt2 = GPT2Config(vocab_size=400, n_embd=32, n_layer=2, n_head=4)
    assert ModelShape.of(qwen2) == ModelShape(2, 32, 4, 2, 8, 64, 400, 4)
    assert ModelShape.of(gpt2, element=2) == ModelShape(2, 32, 4, 4, 8, 128, 400, 2)
    shape = ModelShape.of(qwen2)
    assert shape.attention(10, 20) == 4 * 10 * 20 * 4
    assert ModelShape.of(qwen2, element=2).attention(10, 20) == 4 * 10 * 20 * 6
    assert shape.cache(100) == 2 * 2 * 2 * 8 * 100 * 4
    assert rows_within(None, 10**9, most=16) == 16  # no budget: as many as asked
    assert rows_within(1000, 100, fixed=350, most=16) == 6
    assert rows_within(10**9, 100, most=16) == 16


def test_a_budget_below_one_row_gives_one_row_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="codefocus.generation.memory"):
        assert rows_within(1000, 5000, fixed=100, most=16) == 1
    assert "below the estimated" in caplog.text


def test_methods_take_a_memory_budget_and_do_not_record_it():
    names = "saliency_coding,integrated_gradients_reading,shap,bert_masking,loo_logprob"
    methods = resolve_methods(f"{names},reading_first", max_memory=10**9)
    budgeted, first = methods[:-1], methods[-1]
    assert all(m.max_memory == 10**9 for m in budgeted)
    assert not hasattr(first, "max_memory")  # attention reads one forward: nothing to batch
    assert all("max_memory" not in m.options() for m in methods)  # it changes no score
    for bad in (0, -5, 1.5, "1GB", True):
        with pytest.raises(InvalidArgumentError, match="max_memory"):
            resolve_methods("saliency_coding", max_memory=bad)


# ---------------------------------------------------------------- results do not depend on it


@pytest.fixture(scope="module", params=["qwen2", "gpt2", "qwen2-bfloat16"])
def model(request):
    architecture, _, dtype = request.param.partition("-")
    net, tokenizer = build_tiny_model(architecture, seed=3)
    if dtype:
        net = net.to(getattr(torch, dtype))
    return HFModel(net, tokenizer, f"tiny-{request.param}", device="cpu")


class Backwards:
    """Counts the backward passes (calls of ``torch.autograd.grad``)."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = torch.autograd.grad

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(torch.autograd, "grad", counted)


def test_gradient_scores_do_not_depend_on_the_budget(model, monkeypatch):
    """Budgets that choose 1, 3 and all rows per backward give the default chunk's scores, bit
    for bit (each row's backward is computed on its own), in float32 and bfloat16."""
    reference = AttributionContext(model, PROMPT, COMPLETION).gradients()
    context = AttributionContext(model, PROMPT, COMPLETION)
    steps = context.G
    length = context.P + steps - 1
    shape = ModelShape.of_model(model)
    backwards = Backwards(monkeypatch)
    assert steps > 3
    for rows in (1, 3, steps):
        budget = shape.gradient_graph(length) + rows * shape.gradient_row(length)
        backwards.calls = 0
        scores = context.gradients(keep=False, max_memory=budget)
        assert backwards.calls == math.ceil(steps / rows)
        for got, expected in zip(scores, reference, strict=True):
            assert np.array_equal(got, expected)


def test_integrated_gradients_do_not_depend_on_the_budget(model, monkeypatch):
    """Integrated gradients' interpolation steps in batches of 1, 4 and all: the same scores
    (to float rounding: a batch's forward may round a row differently than a lone one)."""
    context = AttributionContext(model, PROMPT, COMPLETION)
    reference = context.integrated_gradients(8)
    shape = ModelShape.of_model(model)
    per_row = shape.gradient_graph(context.P) + shape.gradient_row(context.P)
    backwards = Backwards(monkeypatch)
    for rows in (1, 4, 8):
        backwards.calls = 0
        scores = context.integrated_gradients(8, max_memory=rows * per_row)
        assert backwards.calls == math.ceil(8 / rows)
        np.testing.assert_allclose(scores, reference, rtol=1e-5, atol=1e-7)


def test_likelihood_batches_within_the_budget(tiny_qwen2):
    texts = [PROMPT, PROMPT.replace("even", "odd"), "def f(n):\n", PROMPT[:20]]
    ids = tiny_qwen2.encode(COMPLETION).ids
    reference = completion_logprobs(tiny_qwen2, texts, ids, original=PROMPT)
    one_row = completion_logprobs(tiny_qwen2, texts, ids, original=PROMPT, max_memory=1)
    np.testing.assert_allclose(one_row, reference, rtol=1e-6)


# ---------------------------------------------------------------- the engine and generate


def chaotic(architecture: str = "qwen2") -> HFModel:
    """A tiny model whose greedy output varies from prompt to prompt (``test_engine.py``)."""
    net, tokenizer = build_chaotic_model(architecture)
    return HFModel(net, tokenizer, f"tiny-{architecture}-chaotic", device="cpu")


def perturbed(prompt: str) -> list[str]:
    words = word_spans(prompt)
    near = [rebuild(prompt, words, {i: "value"}) for i in range(0, len(words), 2)]
    far = [rebuild(prompt, words, {i: "" for i in range(len(words)) if i % 3 != r}) for r in (0, 1)]
    return [*near, *far, prompt]


def test_engine_regenerations_do_not_depend_on_the_budget():
    """A budget too small for anything (prefill, waves and decoding batches of one row) and
    one for a few rows: the regenerations of the engine without a budget, which are plain
    greedy's (``test_engine.py``)."""
    model = chaotic()
    inputs = perturbed(PROMPT)
    budget = 10
    free = DraftVerifier(model)
    expected = free.regenerate(inputs, PROMPT, budget, SETTINGS)
    waves: list[int] = []
    one_row = DraftVerifier(model, max_memory=1)
    decode_rest = one_row._decode_rest
    one_row._decode_rest = lambda waiting, *a, **k: (  # type: ignore[method-assign]
        waves.append(sum(len(b.rows) for b in waiting)),
        decode_rest(waiting, *a, **k),
    )
    assert one_row.regenerate(inputs, PROMPT, budget, SETTINGS) == expected
    assert len(waves) > 2 and max(waves) == 1  # one row prefilled, then decoded, at a time
    assert one_row.steps > free.steps
    shape = ModelShape.of_model(model)
    longest = max(model.count_tokens(text) for text in inputs)
    few = DraftVerifier(model, max_memory=3 * shape.forward_row(longest + budget, 0, budget))
    assert few.regenerate(inputs, PROMPT, budget, SETTINGS) == expected
    many = DraftVerifier(model).generate_many(inputs[:4], [6, 8, 5, 7], SETTINGS)
    one_row = DraftVerifier(model, max_memory=1).generate_many(inputs[:4], [6, 8, 5, 7], SETTINGS)
    assert one_row == many


def test_generate_batches_within_the_budget(monkeypatch):
    """The plain engine and a generator's own ``generate`` calls take as many rows as fit."""
    model = chaotic()
    sizes = []
    generate = model.generate

    def recorded(inputs, settings=None, max_new_tokens=None, batch_size=8):
        sizes.append(batch_size)
        return generate(inputs, settings, max_new_tokens=max_new_tokens, batch_size=batch_size)

    monkeypatch.setattr(model, "generate", recorded)
    inputs = perturbed(PROMPT)[:4]
    plain = CachedGenerator(model, None, batch_size=8, engine="plain")
    expected = plain(inputs, 6, SETTINGS, original=PROMPT)
    bounded = CachedGenerator(model, None, batch_size=8, engine="plain", max_memory=1)
    assert bounded(inputs, 6, SETTINGS, original=PROMPT) == expected
    assert sizes == [8, 1]
    sizes.clear()
    CachedGenerator(model, None, batch_size=8, max_memory=1)(inputs, 6, SETTINGS)  # no original
    assert sizes == [1]


class BudgetRecorder:
    """A generator that remembers, has a memory budget, and notes it at every call."""

    remembers = True

    def __init__(self):
        self.max_memory = None
        self.seen: list[int | None] = []

    def __call__(self, inputs, budget, settings=None, original=None):
        self.seen.append(self.max_memory)
        return ["    return x\n"] * len(inputs)

    def engine_used(self):
        return "recorder"


def test_perturbation_methods_hand_their_budget_to_the_generator():
    generator = BudgetRecorder()
    setup = PerturbationSetup(
        prompt="Return the largest even number in a list.",
        suffix="",
        completion="    return x\n",
        generator=generator,
        budget=8,
        settings=SETTINGS,
        scope="prompt",
    )
    (occlusion,) = resolve_methods("occlusion", max_memory=500)
    larger = dataclasses.replace(occlusion, name="occlusion_700", max_memory=700)
    (unbounded,) = resolve_methods("occlusion")
    prefetch([larger, occlusion, unbounded], setup)  # the smallest budget of the methods
    assert generator.seen == [500]
    occlusion.compute(MethodInputs(perturbation=setup))
    assert set(generator.seen) == {500} and generator.max_memory is None  # set, then restored
    generator.max_memory = 300  # the generator's own budget is kept where it is smaller
    with memory_budget(generator, 400):
        assert generator.max_memory == 300
    with memory_budget(generator, 200):
        assert generator.max_memory == 200
    assert generator.max_memory == 300


# ---------------------------------------------------------------- a 2,000-token prompt


def long_prompt(tokenizer, tokens: int = 2000) -> str:
    sentence = "Return the sum of a list of numbers, and check whether a string reads the same. "
    text = ""
    while len(tokenizer(text)["input_ids"]) < tokens:
        text += sentence
    return text + "def f(xs):\n"


@pytest.mark.slow
def test_a_2000_token_prompt_runs_within_its_budget():
    """The ten white-box methods on a 2,000-token prompt within 1 GB, and the engine's
    regenerations of its perturbations (two that drop words throughout, fed whole, and three
    that change its end) within 500 MB, by measured peak memory. Without a budget the
    coding-stage gradients would batch every generated token's backward: by the same estimate,
    more than 1 GB here."""
    net, tokenizer = build_tiny_model("qwen2")
    net.config.max_position_embeddings = 4096  # rotary positions: any length runs
    model = HFModel(net, tokenizer, "tiny-long", device="cpu")
    prompt = long_prompt(tokenizer)
    context = AttributionContext(model, prompt, "    return sum(xs)\n")
    assert context.P >= 2000 and context.G >= 4
    budget = 10**9
    shape = ModelShape.of_model(model)
    length = context.P + context.G - 1
    assert shape.gradient_graph(length) + context.G * shape.gradient_row(length) > budget
    methods = resolve_methods(list(STUDY_WHITEBOX), max_memory=budget)
    inputs = MethodInputs(white_box=context)
    scores, used = peak_memory(lambda: {m.name: m.compute(inputs) for m in methods})
    assert used <= budget, f"{used / MB:.0f} MB"
    assert all(np.isfinite(s.scores).all() for s in scores.values())

    words = word_spans(prompt)
    perturbations = [
        *(rebuild(prompt, words, {i: "" for i in range(len(words)) if i % 4 == r}) for r in (0, 1)),
        *(rebuild(prompt, words, {i: "value"}) for i in range(len(words) - 3, len(words))),
    ]
    model.raw_ids(prompt, SETTINGS, 6)  # the original's completion, outside the measurement
    engine_budget = 500 * MB
    verifier = DraftVerifier(model, max_memory=engine_budget)
    _, used = peak_memory(lambda: verifier.regenerate(perturbations, prompt, 6, SETTINGS))
    assert used <= engine_budget, f"{used / MB:.0f} MB"
