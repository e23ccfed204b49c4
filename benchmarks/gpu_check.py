"""A prepared GPU check (issue 29): correctness and speed on one device, models built in code.

Models (no weights travel): the tiny Qwen2 and GPT-2 models (``models/tiny.py``) with large
random weights, so that greedy outputs vary from prompt to prompt and drafts diverge (as in
``tests/test_engine.py``), and a randomly initialised model with the default model's
configuration (Qwen2.5-Coder-0.5B: read from the converted copy in the codefocus cache where there
is one, else the values below), with the tiny byte-level tokenizer padded to its vocabulary.
``--quick`` keeps one of its 24 layers and 4,096 of its 151,936 vocabulary entries, and shrinks
every workload.

For each model, in float32 and in bfloat16, on the device and on the CPU:

1. the draft engine's regenerations of a prompt's perturbations (one-word substitutions, as BERT
   masking makes, and coalitions that drop most words, as SHAP makes) equal plain greedy decoding
   (one ``generate`` per input), token for token, on the device;
2. the ten white-box methods' scores on the device equal the CPU's: float32 within
   ``max |device - cpu| <= 1e-4 * max |cpu|`` per method; bfloat16 within ``5e-2 * max |cpu|``
   and a Spearman correlation of at least 0.9 (the CPU's and the GPU's bfloat16 kernels round
   differently);
3. the seconds per prompt of the ten methods (each, in order, sharing their forward and backward
   passes as in a run) and of the engine, against sequential regeneration (one ``generate`` per
   input) — the engine's speed-up, whose goal on a GPU is 10x — on the device and on the CPU;
4. a 2,000-token prompt (``--quick``: 400) on the tiny Qwen2 model runs the ten methods within a
   memory budget of 1 GB (300 MB), measured with ``torch.cuda.max_memory_allocated`` on CUDA and
   the peak resident memory on the CPU (``tests/test_memory_budget.py``).

It prints one line per model and dtype and the engine's speed-up, writes everything to
``$OUT/gpu_check.json`` (``OUT`` set) or ``benchmarks/results/gpu_check.json``, and exits 1 when
a check fails. The CPU runs the same code (``--device cpu``, ``tests/test_precision.py``).

    python benchmarks/gpu_check.py [--device cuda|cpu] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from codefocus.data.units import word_spans
from codefocus.generation.draft import DraftVerifier
from codefocus.generation.records import GenerationSettings
from codefocus.methods import STUDY_WHITEBOX, MethodInputs, resolve_methods
from codefocus.methods.context import AttributionContext
from codefocus.methods.setup import rebuild
from codefocus.models.hf import HFModel
from codefocus.models.tiny import build_chaotic_model, build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float32", "bfloat16")
TOLERANCES = {"float32": {"relative": 1e-4}, "bfloat16": {"relative": 5e-2, "spearman": 0.9}}
ENGINE_GOAL = 10.0
SETTINGS = GenerationSettings()

# Qwen2.5-Coder-0.5B-Instruct's configuration (its config.json on the Hugging Face hub), used
# where the codefocus cache holds no converted copy of the default model
DEFAULT_CONFIG = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_theta": 1000000.0, "rope_type": "default"},
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "initializer_range": 0.02,
}

PROMPTS = [
    (
        "from typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: "
        'float) -> bool:\n    """ Check if in given list of numbers, are any two numbers closer '
        'to each other than\n    given threshold.\n    """\n',
        "    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n"
        "            if idx != idx2:\n                distance = abs(elem - elem2)\n"
        "                if distance < threshold:\n                    return True\n\n"
        "    return False\n",
    ),
    (
        'def is_palindrome(text: str):\n    """\n    Checks if given string is a palindrome\n'
        '    >>> is_palindrome(\'aba\')\n    True\n    """\n',
        "    for i in range(len(text)):\n        if text[i] != text[len(text) - 1 - i]:\n"
        "            return False\n    return True\n",
    ),
]


@dataclass(frozen=True)
class Workload:
    prompts: int  # prompts per tiny model (the default-configuration model takes one)
    budget: int  # new tokens per regeneration, and completion tokens scored
    near: int  # one-word substitutions per prompt
    far: int  # coalitions dropping most words
    layers: int | None  # layers of the default-configuration model (None: all)
    vocab: int | None  # its vocabulary (None: all 151,936 entries)
    memory_tokens: int  # prompt length of the memory check
    memory_budget: int  # bytes


FULL = Workload(2, 24, 16, 4, None, None, 2000, 10**9)
QUICK = Workload(1, 4, 3, 1, 1, 4096, 400, 3 * 10**8)


# ---------------------------------------------------------------- the device


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work):
    """``work()`` and its seconds, the device's queued work included."""
    synchronize(device)
    started = time.perf_counter()
    result = work()
    synchronize(device)
    return result, time.perf_counter() - started


def _status(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) * 1024


def peak_bytes(device: torch.device, work):
    """``work()`` and the peak memory it added on ``device``: CUDA's allocator statistics, or
    the CPU's peak resident memory (Linux; None elsewhere)."""
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = work()
        synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - before
    clear_refs = Path("/proc/self/clear_refs")
    if not clear_refs.exists():
        return work(), None
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    clear_refs.write_text("5")  # the high-water mark restarts from the present resident size
    before = _status("VmRSS")
    result = work()
    return result, _status("VmHWM") - before


# ---------------------------------------------------------------- models built in code


def chaotic(architecture: str):
    """A tiny model with large random weights (its greedy output varies with the prompt)."""
    net, tokenizer = build_chaotic_model(architecture)
    return net, tokenizer


def padded(tokenizer, size: int):
    """The tiny tokenizer with placeholder tokens up to ``size`` ids (each decodes to its own
    name), so that every id a large random model writes can be decoded."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    for index in range(max(vocab.values()) + 1, size):
        vocab[f"<x{index}>"] = index
    backend = Tokenizer.from_str(json.dumps(data))
    special = tokenizer.eos_token
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=special, pad_token=special)


def default_configuration(layers: int | None, vocab: int | None):
    """A random model with the default model's configuration (``layers`` of its layers and
    ``vocab`` entries of its vocabulary where given: ``--quick``)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from codefocus.models.packaged import model_dir

    cached = model_dir() / "safetensors" / "config.json"
    values = json.loads(cached.read_text()) if cached.is_file() else dict(DEFAULT_CONFIG)
    if vocab is not None:
        values["vocab_size"] = vocab
    _, small = build_tiny_model("qwen2")
    tokenizer = padded(small, values["vocab_size"])
    eos = tokenizer.eos_token_id
    values.update(bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    if layers is not None:
        values["num_hidden_layers"] = layers
        values.pop("layer_types", None)
    config = Qwen2Config.from_dict(values)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    net = Qwen2ForCausalLM(config).eval()
    source = str(cached) if cached.is_file() else "hard-coded Qwen2.5-Coder-0.5B values"
    return net, tokenizer, source


# ---------------------------------------------------------------- one side (device or CPU)


def perturbations(prompt: str, near: int, far: int) -> list[str]:
    words = word_spans(prompt)
    step = max(len(words) // max(near, 1), 1)
    substituted = [rebuild(prompt, words, {i: "value"}) for i in range(0, len(words), step)]
    dropped = [
        rebuild(prompt, words, {i: "" for i in range(len(words)) if i % (far + 2) != r})
        for r in range(far)
    ]
    return [*substituted[:near], *dropped]


def run_side(model: HFModel, prompts, work: Workload) -> dict:
    """The ten methods' scores and seconds, and the engine against sequential regeneration,
    per prompt, on the model's device."""
    device = model.device
    methods = resolve_methods(list(STUDY_WHITEBOX))
    side: dict = {"methods_seconds": {m.name: 0.0 for m in methods}, "scores": {}}
    side.update(engine_seconds=0.0, sequential_seconds=0.0, mismatches=0, inputs=0)
    counters = {"accepted": 0, "diverged": 0, "decoded": 0, "tied": 0}
    with torch.no_grad():  # kernels loaded and memory pools warmed before anything is timed
        model.model(torch.tensor([model.encode(prompts[0][0]).ids], device=device))
    for number, (prompt, solution) in enumerate(prompts):
        completion = model.decode(model.encode(solution).ids[: work.budget])
        inputs = MethodInputs(AttributionContext(model, prompt, completion))
        for method in methods:
            scores, seconds = timed(device, lambda m=method, i=inputs: m.compute(i))
            side["methods_seconds"][method.name] += seconds / len(prompts)
            side["scores"][f"{number}:{method.name}"] = np.asarray(scores.scores, dtype=float)
        perturbed = perturbations(prompt, work.near, work.far)
        model.raw_ids(prompt, SETTINGS, work.budget)  # the original's tokens, the draft
        plain, sequential = timed(
            device, lambda i=perturbed: [model.generate([t], SETTINGS, work.budget)[0] for t in i]
        )
        verifier = DraftVerifier(model)
        engine, seconds = timed(
            device,
            lambda i=perturbed, p=prompt, v=verifier: v.regenerate(i, p, work.budget, SETTINGS),
        )
        side["sequential_seconds"] += sequential / len(prompts)
        side["engine_seconds"] += seconds / len(prompts)
        side["inputs"] += len(perturbed)
        side["mismatches"] += sum(
            a.token_ids != b.token_ids for a, b in zip(engine, plain, strict=True)
        )
        for name in counters:
            counters[name] += getattr(verifier, name)
    side["methods_total_seconds"] = sum(side["methods_seconds"].values())
    side["engine_speedup"] = side["sequential_seconds"] / max(side["engine_seconds"], 1e-9)
    side["engine"] = counters
    return side


def compare(device_scores: dict, cpu_scores: dict, dtype: str) -> dict:
    """Per method, the device's scores against the CPU's, and whether they are within the
    tolerance (module doc)."""
    tolerance = TOLERANCES[dtype]
    found = {}
    for key, cpu in cpu_scores.items():
        got = device_scores[key]
        scale = float(np.max(np.abs(cpu))) or 1.0
        relative = float(np.max(np.abs(got - cpu))) / scale if cpu.size else 0.0
        correlation = 1.0
        if cpu.size > 1 and np.std(cpu) > 0 and np.std(got) > 0:
            correlation = float(spearmanr(cpu, got)[0])
        ok = relative <= tolerance["relative"] and correlation >= tolerance.get("spearman", -1)
        found[key] = {"relative_difference": relative, "spearman": correlation, "ok": ok}
    return found


def check_model(name: str, net, tokenizer, prompts, device: torch.device, work: Workload) -> dict:
    record: dict = {}
    for dtype in DTYPES:
        cast = getattr(torch, dtype)
        cpu = HFModel(copy.deepcopy(net).to(cast), tokenizer, name, device="cpu")
        cpu_side = run_side(cpu, prompts, work)
        if device.type == "cpu":
            device_side = cpu_side  # the same run: the comparison exercises its own code
        else:
            placed = HFModel(copy.deepcopy(net).to(cast), tokenizer, name, device=str(device))
            device_side = run_side(placed, prompts, work)
            del placed
        cpu_scores = cpu_side.pop("scores")
        device_scores = cpu_scores if device_side is cpu_side else device_side.pop("scores")
        agreement = compare(device_scores, cpu_scores, dtype)
        record[dtype] = {
            "device": device_side if device_side is not cpu_side else "the CPU run",
            "cpu": cpu_side,
            "scores_vs_cpu": agreement,
            "engine_equals_plain": device_side["mismatches"] == 0,
            "scores_within_tolerance": all(a["ok"] for a in agreement.values()),
        }
        worst = max((a["relative_difference"] for a in agreement.values()), default=0.0)
        print(
            f"{name} {dtype} on {device}: ten methods {device_side['methods_total_seconds']:.3f} "
            f"s/prompt (CPU {cpu_side['methods_total_seconds']:.3f}); engine "
            f"{device_side['engine_seconds']:.3f} s vs sequential "
            f"{device_side['sequential_seconds']:.3f} s ({device_side['engine_speedup']:.1f}x; "
            f"CPU {cpu_side['engine_speedup']:.1f}x); engine == plain greedy: "
            f"{'yes' if device_side['mismatches'] == 0 else 'NO'} "
            f"({device_side['inputs']} inputs, {device_side['engine']['tied']} near ties); "
            f"scores vs CPU: worst relative difference {worst:.1e} "
            f"(tolerance {TOLERANCES[dtype]['relative']:.0e}) "
            f"{'ok' if record[dtype]['scores_within_tolerance'] else 'NOT OK'}",
            flush=True,
        )
    return record


def memory_check(device: torch.device, work: Workload) -> dict:
    """The ten methods on a long prompt of the tiny Qwen2 model, within the memory budget."""
    net, tokenizer = build_tiny_model("qwen2")
    net.config.max_position_embeddings = 4 * work.memory_tokens  # rotary: any length runs
    model = HFModel(net, tokenizer, "tiny-long", device=str(device))
    sentence = "Return the sum of a list of numbers, and check whether a string reads the same. "
    prompt = ""
    while model.count_tokens(prompt) < work.memory_tokens:
        prompt += sentence
    context = AttributionContext(model, prompt + "def f(xs):\n", "    return sum(xs)\n")
    methods = resolve_methods(list(STUDY_WHITEBOX), max_memory=work.memory_budget)
    inputs = MethodInputs(white_box=context)
    _, used = peak_bytes(device, lambda: [m.compute(inputs) for m in methods])
    within = used is None or used <= work.memory_budget
    print(
        f"memory: ten methods on a {context.P}-token prompt used "
        f"{'unmeasured' if used is None else f'{used / 1e6:.0f} MB'} of a "
        f"{work.memory_budget / 1e6:.0f} MB budget: {'ok' if within else 'OVER'}",
        flush=True,
    )
    return {"prompt_tokens": context.P, "budget": work.memory_budget, "peak": used, "ok": within}


# ---------------------------------------------------------------- the run


def _commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", choices=("cuda", "cpu"), default=default)
    parser.add_argument("--quick", action="store_true", help="the smallest workloads")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (use --device cpu)")
    device = torch.device(args.device)
    work = QUICK if args.quick else FULL
    started = time.perf_counter()
    models: dict = {}
    for architecture in ("qwen2", "gpt2"):
        net, tokenizer = chaotic(architecture)
        prompts = PROMPTS[: work.prompts]
        models[f"tiny-{architecture}"] = check_model(
            f"tiny-{architecture}", net, tokenizer, prompts, device, work
        )
    net, tokenizer, source = default_configuration(work.layers, work.vocab)
    shrunk = [f"{work.layers} layers"] if work.layers else []
    shrunk += [f"vocabulary {work.vocab}"] if work.vocab else []
    name = "default-configuration" + (f" ({', '.join(shrunk)})" if shrunk else "")
    models[name] = check_model(name, net, tokenizer, PROMPTS[:1], device, work)
    models[name]["configuration"] = source
    del net
    memory = memory_check(device, work)
    speedups = {
        f"{model} {dtype}": record[dtype]["device"]["engine_speedup"]
        if isinstance(record[dtype]["device"], dict)
        else record[dtype]["cpu"]["engine_speedup"]
        for model, record in models.items()
        for dtype in DTYPES
    }
    passed = memory["ok"] and all(
        record[dtype]["engine_equals_plain"] and record[dtype]["scores_within_tolerance"]
        for record in models.values()
        for dtype in DTYPES
    )
    seconds = time.perf_counter() - started
    print(
        "engine speed-up over sequential regeneration on "
        f"{device}: {', '.join(f'{k} {v:.1f}x' for k, v in speedups.items())} "
        f"(goal on a GPU: {ENGINE_GOAL:.0f}x)"
    )
    print(f"checks {'passed' if passed else 'FAILED'} in {seconds:.0f} s")
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "commit": _commit(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
        "quick": args.quick,
        "workload": asdict(work),
        "tolerances": TOLERANCES,
        "engine_goal": ENGINE_GOAL,
        "models": models,
        "memory": memory,
        "engine_speedups": speedups,
        "passed": passed,
        "seconds": seconds,
    }
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out / 'gpu_check.json'}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
