"""Prefix reuse on an OpenAI-compatible server: perturbed prompts sent in sorted order (what
``EndpointModel.generate`` does) against the same prompts in random order.

It starts llama-cpp-python's server (``python -m llama_cpp.server``) on the packaged GGUF, on
127.0.0.1, and sends every single-word deletion of the scoped words of a few HumanEval prompts
(the shape of BERT masking's inputs: one word changed), greedy, at the study's budget:

* shuffled — one request at a time in random order: neighbours share little more than the
  prompt's first line, so the server evaluates almost every prompt from the start;
* sorted — one request at a time in sorted order: the server keeps the last prompt's keys and
  values and evaluates only from the first changed token (llama.cpp's ``cache_prompt``;
  llama-cpp-python does it on its own);
* generate — ``EndpointModel.generate`` as the methods call it (sorted, 4 requests in flight).

It prints the seconds of each way, ``ratio shuffled/sorted: X``, and how many completions differ
from the shuffled way's (llama.cpp's kernels may round differently when part of a prompt comes
from the cache, so greedy output can change at near ties).

    CODEFOCUS_DATA=../shared/data python benchmarks/endpoint_prefix.py [--tasks 2]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from codefocus.data.tasks import load_tasks
from codefocus.data.units import scoped_word_spans
from codefocus.generation.records import GenerationSettings
from codefocus.methods.setup import rebuild
from codefocus.models.base import model_input_for
from codefocus.models.endpoint import EndpointModel
from codefocus.models.llama_server import llama_server
from codefocus.models.packaged import assemble_gguf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    tasks = sorted(
        (t for t in load_tasks("humaneval") if t.human_spans),
        key=lambda t: len(t.reference_solution),
    )[: args.tasks]
    settings = GenerationSettings()
    with tempfile.TemporaryDirectory() as folder:
        gguf = assemble_gguf(Path(folder) / "model.gguf")
        with llama_server(gguf, threads=args.threads) as url:
            model = EndpointModel(url)
            seconds = {"shuffled": 0.0, "sorted": 0.0, "generate": 0.0}
            differ = {"sorted": 0, "generate": 0}
            total = 0
            for task in tasks:
                original = model_input_for(task)
                suffix = original[len(task.prompt) :]
                words = scoped_word_spans(task.prompt)
                inputs = [rebuild(task.prompt, words, {i: ""}) + suffix for i in range(len(words))]
                budget = model.default_max_new_tokens(task.reference_solution)
                model._complete(original, budget, settings)  # warm: the server's first request
                answers = {}
                for way in ("shuffled", "sorted"):
                    order = list(range(len(inputs)))
                    if way == "shuffled":
                        random.Random(0).shuffle(order)
                    else:
                        order.sort(key=lambda i: inputs[i])
                    model._complete(task.prompt[:20], 1, settings)  # leave no useful prefix
                    start = time.perf_counter()
                    texts = {i: model._complete(inputs[i], budget, settings) for i in order}
                    seconds[way] += time.perf_counter() - start
                    answers[way] = [texts[i] for i in range(len(inputs))]
                model._complete(task.prompt[:20], 1, settings)
                plain = GenerationSettings(stop_at_function_end=False)
                start = time.perf_counter()
                generated = model.generate(inputs, plain, budget)
                seconds["generate"] += time.perf_counter() - start
                answers["generate"] = [g.completion for g in generated]
                for way in differ:
                    differ[way] += sum(
                        a != b for a, b in zip(answers[way], answers["shuffled"], strict=True)
                    )
                total += len(inputs)
                print(f"{task.task_id}: {len(inputs)} prompts, budget {budget}", flush=True)
    print(f"llama-cpp-python server, packaged GGUF, {args.threads} threads, {len(tasks)} tasks")
    for way, value in seconds.items():
        print(f"seconds per prompt {way}: {value / total:.2f}")
    for way, count in differ.items():
        print(f"{way}: {count} of {total} completions differ from the shuffled way's")
    print(f"ratio shuffled/sorted: {seconds['shuffled'] / seconds['sorted']:.2f}")
    print(f"ratio shuffled/generate: {seconds['shuffled'] / seconds['generate']:.2f}")


if __name__ == "__main__":
    import sys

    from codefocus.errors import CodefocusError

    try:
        main()
    except CodefocusError as error:  # e.g. the server did not start: one line, exit 2
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
