"""Train the attention-pooled classifier on the Java algorithm data, then run AutoFocus on the
test programs. Prints test accuracy and a line ``pearson mean ... sd ...``.

    CODEFOCUS_DATA=../shared/data python benchmarks/autofocus_run.py [--epochs 30 --limit 0]
        [--layers 2]
"""

from __future__ import annotations

import argparse
import time

from codefocus.lab.autofocus import analyse, summary
from codefocus.lab.classifier import CodeClassifier, Vocabulary
from codefocus.lab.datasets import load_algorithms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--limit", type=int, default=0, help="test programs to analyse (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--layers", type=int, default=2, help="transformer layers (0: attention over embeddings)"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    dataset = load_algorithms(seed=args.seed)
    sizes = f"train {len(dataset.train)} valid {len(dataset.valid)} test {len(dataset.test)}"
    print(f"data {dataset.report}; {sizes}")
    model = CodeClassifier(
        Vocabulary.build(dataset.train, "java"),
        dataset.classes,
        "java",
        layers=args.layers,
        seed=args.seed,
    )
    result = model.fit(dataset, args.epochs)
    print(
        f"epochs {len(result['history'])}, best valid accuracy {result['best_valid_accuracy']:.3f}"
    )
    accuracy = model.accuracy(dataset.test)
    print(f"test accuracy {accuracy:.3f} (training {time.perf_counter() - start:.0f} s)")
    programs = dataset.test[: args.limit or None]
    start = time.perf_counter()
    analyses = [analyse(s.code, s.label, model) for s in programs]
    figures = summary(analyses)
    print(
        f"programs analysed {figures['programs']}, with a correlation {figures['with_correlation']}"
    )
    print(f"pearson mean {figures['pearson_mean']:.3f} sd {figures['pearson_sd']:.3f}")
    print(f"spearman mean {figures['spearman_mean']:.3f}")
    print(f"histogram of pearson (-1..1, 10 bins): {figures['histogram']['counts']}")
    kept = [len(a.kept_statements) / max(1, len(a.statements)) for a in analyses]
    print(f"minimal programs keep {sum(kept) / max(1, len(kept)):.2f} of the statements on average")
    print(f"analysis {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
