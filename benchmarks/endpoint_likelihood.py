"""The likelihood methods behind an endpoint against the white-box computation: how far
``log p(code | input)`` read from an OpenAI-compatible server's echoed prompt log-probabilities
(``EndpointModel.completion_logprobs``) is from the teacher-forced one on the white-box model.

It starts llama-cpp-python's server (``python -m llama_cpp.server``) on the packaged GGUF, on
127.0.0.1, with every prompt led by BOS (llama-cpp-python 0.3.36 reports the echoed
log-probabilities of a model without BOS a token late, which codefocus refuses), and loads the
default model (the float32 copy of the same GGUF) white-box. Per task: the white-box model's
greedy code (``--max-new-tokens``), then the task's model input and ``--prompts`` single-word
deletions of it (words evenly spread over the scored ones), each scored both ways with the same
code, the white-box inputs led by the same BOS. Recorded: the largest absolute difference per
sequence (the sum over the code's tokens) and per token (tokens both sides split alike), the
leave-one-out scores' largest difference and the Spearman correlation of their rankings, the
same against the white-box inputs without BOS (what the BOS itself changes), the GGUF's
quantization, the commit; written to ``benchmarks/results/endpoint_likelihood.json``. It ends
with ``endpoint likelihood: max |diff| X nats per sequence (Y per token), spearman Z`` (Z: the
lowest over the tasks), then the same without BOS on the white-box side.

    CODEFOCUS_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python \\
        benchmarks/endpoint_likelihood.py [--tasks Mbpp/257,HumanEval/53 --prompts 6]

``compare(tasks, url, model, lead=...)`` is the measurement itself, for other benchmarks to
import.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import provenance, write_json  # noqa: E402  (this folder, not a package)

sys.path.pop(0)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "endpoint_likelihood.json"
DEFAULT_TASKS = "Mbpp/257,HumanEval/53,HumanEval/23"
BOS_TEXT = "<|endoftext|>"  # the packaged model's BOS, which the server puts before every prompt


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def gguf_quantization(path: Path) -> dict:
    """The GGUF's declared file type and how many tensors of each type it holds."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    field = reader.fields["general.file_type"]
    file_type = gguf.LlamaFileType(int(field.parts[field.data[0]][0])).name
    counts = collections.Counter(t.tensor_type.name for t in reader.tensors)
    return {"file_type": file_type, "tensor_types": dict(counts.most_common())}


def white_box_token_logprobs(model, text: str, completion_ids: list[int]) -> np.ndarray:
    """Each code token's log-probability after ``text``: one forward, float64 log-softmax."""
    import torch

    prompt = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model.model(torch.tensor([prompt + completion_ids])).logits[0].double()
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1], -1)
    return logp.gather(1, torch.tensor(completion_ids)[:, None])[:, 0].numpy()


def compare(
    tasks,
    url: str,
    model,
    prompts: int = 6,
    max_new_tokens: int = 24,
    lead: str = "",
    log=print,
) -> dict:
    """Per task: its model input and ``prompts`` single-word deletions, ``log p(code | input)``
    through the endpoint at ``url`` and white-box on ``model`` (the same code: the white-box
    model's greedy completion); the differences per sequence, per token and of the leave-one-out
    scores, and the Spearman correlation of the two leave-one-out rankings. ``lead``: what the
    server reads before every prompt (its BOS, as text), put before the white-box inputs too;
    with one, the ``*_without_lead`` figures compare with the white-box inputs as given (what
    the lead itself changes)."""
    from codefocus.data.units import scoped_word_spans
    from codefocus.methods.likelihood import completion_logprobs
    from codefocus.methods.setup import rebuild
    from codefocus.models.base import model_input_for
    from codefocus.models.endpoint import EndpointModel, completion_logprob

    endpoint = EndpointModel(url, concurrency=1)
    rows = []
    seconds = {"endpoint": 0.0, "white_box": 0.0}
    for task in tasks:
        original = model_input_for(task)
        suffix = original[len(task.prompt) :]
        words = scoped_word_spans(task.prompt)
        chosen = sorted({int(i) for i in np.linspace(0, len(words) - 1, min(prompts, len(words)))})
        texts = [original] + [rebuild(task.prompt, words, {i: ""}) + suffix for i in chosen]
        (generation,) = model.generate([original], max_new_tokens=max_new_tokens)
        code, ids = generation.completion, list(generation.token_ids)
        # the code's tokens' spans, relative to its start, for matching them token by token
        ends = [len(model.tokenizer.decode(ids[: j + 1])) for j in range(len(ids))]
        spans = list(zip([0, *ends[:-1]], ends, strict=True))

        started = time.perf_counter()
        plain = completion_logprobs(model, texts, ids)  # as the likelihood methods compute it
        seconds["white_box"] += time.perf_counter() - started
        led = [lead + text for text in texts]
        white = completion_logprobs(model, led, ids) if lead else plain
        white_tokens = [white_box_token_logprobs(model, text, ids) for text in led]
        started = time.perf_counter()
        echoed = [endpoint.prompt_logprobs(text + code) for text in texts]
        seconds["endpoint"] += time.perf_counter() - started

        remote = np.array(
            [
                completion_logprob(offsets, values, len(text), len(text + code), "no logprobs")
                for (offsets, values), text in zip(echoed, texts, strict=True)
            ]
        )
        token_diffs, unmatched = [], 0
        for (offsets, values), text, white_values in zip(echoed, texts, white_tokens, strict=True):
            bounds = [*offsets, len(text + code)]
            served = {
                (bounds[i] - len(text), bounds[i + 1] - len(text)): values[i]
                for i in range(len(offsets))
                if bounds[i] >= len(text)
            }
            for span, value in zip(spans, white_values, strict=True):
                if span in served and served[span] is not None:
                    token_diffs.append(abs(float(served[span]) - float(value)))
                else:
                    unmatched += 1
        loo_white, loo_remote = white[0] - white[1:], remote[0] - remote[1:]
        row = {
            "task": task.task_id,
            "prompts": len(texts),
            "code_tokens": len(ids),
            "logprob_white_box": white.tolist(),
            "logprob_endpoint": remote.tolist(),
            "max_abs_diff_sequence": float(np.max(np.abs(white - remote))),
            "max_abs_diff_token": float(max(token_diffs, default=float("nan"))),
            "mean_abs_diff_token": float(np.mean(token_diffs)) if token_diffs else float("nan"),
            "tokens_split_differently": unmatched,
            "max_abs_diff_loo": float(np.max(np.abs(loo_white - loo_remote))),
            "spearman_loo": spearman(loo_white, loo_remote),
            "max_abs_diff_sequence_without_lead": float(np.max(np.abs(plain - remote))),
            "spearman_loo_without_lead": spearman(plain[0] - plain[1:], loo_remote),
        }
        rows.append(row)
        log(
            f"{task.task_id}: {len(texts)} prompts, {len(ids)} code tokens, max |diff| "
            f"{row['max_abs_diff_sequence']:.3f} per sequence, {row['max_abs_diff_token']:.3f} "
            f"per token, spearman {row['spearman_loo']:.3f}; "
            f"{seconds['endpoint']:.0f} s endpoint so far"
        )
    return {
        "late_echo": bool(endpoint._late),
        "seconds": seconds,
        "tasks": rows,
        "max_abs_diff_sequence": max(r["max_abs_diff_sequence"] for r in rows),
        "max_abs_diff_token": max(r["max_abs_diff_token"] for r in rows),
        "mean_abs_diff_token": float(np.mean([r["mean_abs_diff_token"] for r in rows])),
        "max_abs_diff_loo": max(r["max_abs_diff_loo"] for r in rows),
        "spearman_loo_min": float(np.nanmin([r["spearman_loo"] for r in rows])),
        "spearman_loo_mean": float(np.nanmean([r["spearman_loo"] for r in rows])),
        "lead": lead,
        "max_abs_diff_sequence_without_lead": max(
            r["max_abs_diff_sequence_without_lead"] for r in rows
        ),
        "spearman_loo_without_lead_mean": float(
            np.nanmean([r["spearman_loo_without_lead"] for r in rows])
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--prompts", type=int, default=6, help="word deletions per task")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import llama_cpp

    from codefocus.data.tasks import get_task
    from codefocus.models.llama_server import BOS_LED, PROMPT_LOGPROBS, llama_server
    from codefocus.models.loading import load_model
    from codefocus.models.packaged import ensure_gguf

    began = time.perf_counter()
    tasks = [get_task(ref) for ref in args.tasks.split(",")]
    gguf = ensure_gguf()
    model = load_model("default", device="cpu", dtype="float32")
    options = (*PROMPT_LOGPROBS, *BOS_LED)
    with llama_server(gguf, *options, threads=args.threads) as url:
        figures = compare(tasks, url, model, args.prompts, args.max_new_tokens, BOS_TEXT)
    record = {
        "benchmark": "endpoint_likelihood",
        **provenance(),
        "server": f"llama-cpp-python {llama_cpp.__version__}, {args.threads} threads",
        "white_box": "default (float32 copy of the same GGUF), cpu",
        "gguf": gguf_quantization(gguf),
        "prompts_per_task": args.prompts,
        "max_new_tokens": args.max_new_tokens,
        "total_seconds": time.perf_counter() - began,
        **figures,
    }
    record["versions"]["llama-cpp-python"] = llama_cpp.__version__
    write_json(args.out, record)
    print(
        f"endpoint likelihood: max |diff| {figures['max_abs_diff_sequence']:.3f} nats per "
        f"sequence ({figures['max_abs_diff_token']:.3f} per token), spearman "
        f"{figures['spearman_loo_min']:.3f}"
    )
    print(
        f"without the BOS on the white-box side: max |diff| "
        f"{figures['max_abs_diff_sequence_without_lead']:.3f} nats per sequence, spearman "
        f"{figures['spearman_loo_without_lead_mean']:.3f} (mean)"
    )
    return 0


if __name__ == "__main__":
    from codefocus.errors import CodefocusError

    try:
        raise SystemExit(main())
    except CodefocusError as error:  # e.g. the server did not start: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
