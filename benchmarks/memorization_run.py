"""The memorization study on the Java algorithm data: 5 label-noise levels, CPU.

Prints, per noise level, the last epoch's Gini of per-sample training loss (lines containing
``gini``), train accuracy against the noised labels, test F1 and the critical sample ratio, then
the automatic reading; CSVs, JSON, PNG plots and report.html go to --out. Re-running with the
same --out resumes (finished levels are reused).

    CODEFOCUS_DATA=../shared/data python benchmarks/memorization_run.py [--epochs 40]
"""

from __future__ import annotations

import argparse
import time

from codefocus.lab.memorization import MemorizationConfig, run_memorization
from codefocus.reports.memorization import reading, write_report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-kind", default="label", choices=["label", "input"])
    parser.add_argument("--model", default="transformer")
    parser.add_argument("--out", default="out/memorization-algorithms")
    args = parser.parse_args()
    config = MemorizationConfig(
        dataset="algorithms",
        model=args.model,
        noise_kind=args.noise_kind,
        epochs=args.epochs,
        seed=args.seed,
    )

    def on_epoch(level: int, record) -> None:
        print(
            f"  {level:3d}% epoch {record.epoch:3d}: train acc {record.train_accuracy:.3f} "
            f"test F1 {record.test_f1:.3f} gini {record.gini:.3f} csr {record.csr:.3f}",
            flush=True,
        )

    begin = time.perf_counter()
    result = run_memorization(config, args.out, on_epoch=on_epoch)
    total = time.perf_counter() - begin
    print(
        f"data: train {result.sizes['train']} test {result.sizes['test']}; "
        f"{result.sizes['csr_programs_with_variables']} test programs have a variable to rename"
    )
    for level in result.levels:
        last = level.epochs[-1]
        best = max(e.test_f1 for e in level.epochs)
        print(
            f"{level.noise:3d}% {config.noise_kind} noise: gini {last.gini:.3f}  "
            f"train acc {last.train_accuracy:.3f} (true labels {last.train_accuracy_clean:.3f})  "
            f"test F1 {last.test_f1:.3f} (best epoch {best:.3f})  csr {last.csr:.3f}"
        )
    for line in reading(result):
        print(line)
    report = write_report(result, args.out)
    print(f"total {total:.0f} s; report {report}")


if __name__ == "__main__":
    main()
