"""The new likelihood methods beside BERT masking: time, agreement, alignment with programmers.

For N labelled HumanEval tasks of 40-100 scored words (the shortest reference solutions first;
the study's budget) on
the packaged model: the model's greedy code once, then ``bert_masking`` (regenerates every
perturbed prompt), ``loo_logprob`` and ``contextcite`` (teacher-forced passes only). Printed per
method: seconds per task; Spearman correlation of its word scores with BERT masking's (mean over
tasks); overlap of their top-10 words; and pooled precision / recall / F1 at K = 10 against the
programmer labels (the study's San Martino measure, ``metrics/alignment.py``).

    CODEFOCUS_DATA=../shared/data python benchmarks/likelihood_agreement.py [--tasks 3]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import spearmanr

from codefocus import attribute, load_model, load_tasks
from codefocus.data.units import scoped_word_spans
from codefocus.metrics.alignment import PromptUnits, align, top_k_indices

METHODS = ["bert_masking", "loo_logprob", "contextcite"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--min-words", type=int, default=40, help="scored words per task, at least")
    parser.add_argument("--max-words", type=int, default=100)
    args = parser.parse_args()
    model = load_model("default")
    tasks = [
        t
        for t in load_tasks("humaneval")
        if t.human_spans and args.min_words <= len(scoped_word_spans(t.prompt)) <= args.max_words
    ]
    tasks.sort(key=lambda t: model.count_tokens(t.reference_solution or ""))
    tasks = tasks[: args.tasks]
    seconds = dict.fromkeys(METHODS, 0.0)
    rho: dict[str, list[float]] = {m: [] for m in METHODS[1:]}
    overlap: dict[str, list[float]] = {m: [] for m in METHODS[1:]}
    units: dict[str, list[PromptUnits]] = {m: [] for m in METHODS}
    for task in tasks:
        result = attribute(model, task, METHODS, cache=None)
        print(f"{task.task_id}: {len(result.words)} words, {result.timings}", flush=True)
        for name in METHODS:
            seconds[name] += result.timings.get(name, float("nan"))
            units[name].append(
                PromptUnits.build(
                    task.task_id,
                    [(w.start, w.end) for w in result.words],
                    result.word_scores[name],
                    [(s.start, s.end) for s in task.human_spans],
                    [s.category for s in task.human_spans],
                )
            )
        bert = np.array(result.word_scores["bert_masking"])
        for name in METHODS[1:]:
            scores = np.array(result.word_scores[name])
            rho[name].append(float(spearmanr(bert, scores).statistic))
            top_bert = set(top_k_indices(bert, args.k).tolist())
            top_own = set(top_k_indices(scores, args.k).tolist())
            overlap[name].append(len(top_bert & top_own) / max(1, min(args.k, len(bert))))
    n = len(tasks)
    print(f"model {model.name}, {n} HumanEval tasks: {', '.join(t.task_id for t in tasks)}")
    for name in METHODS:
        (scores,) = align(units[name], [args.k])
        line = (
            f"{name}: {seconds[name] / n:.1f} s per task; K={args.k} precision "
            f"{scores.precision:.3f} recall {scores.recall:.3f} F1 {scores.f1:.3f}"
        )
        if name in rho:
            line += (
                f"; Spearman with bert_masking {np.nanmean(rho[name]):.3f}, "
                f"top-{args.k} overlap {np.mean(overlap[name]):.2f}"
            )
        print(line)


if __name__ == "__main__":
    main()
