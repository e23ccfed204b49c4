"""Time the full reproduction of Kou et al. Tables 2 and 3: 62 stored files x K = 5, 10, 20.

Prints the seconds of a single-process run (the baseline) and of the default parallel run, and
their ratio. Goal: under 60 s on a 2-core machine.

    CODEFOCUS_DATA=../shared/data python benchmarks/reproduce_speed.py
"""

from __future__ import annotations

import sys
import time

from codefocus.reproduce import kou2024


def timed(workers: int | None) -> tuple[float, int]:
    start = time.perf_counter()
    rows = kou2024.reproduce(workers=workers)
    return time.perf_counter() - start, len(rows)


def main() -> None:
    files = len(kou2024.available_pairs(kou2024.MODELS, kou2024.METHODS))
    serial, n_rows = timed(1)
    parallel, _ = timed(None)
    print(f"files {files}, rows {n_rows} (Table 2 and Table 3, K = 5, 10, 20)")
    print(f"seconds single-process: {serial:.1f}")
    print(f"seconds default (parallel): {parallel:.1f}")
    print(f"ratio parallel vs single-process: {serial / parallel:.2f}")
    print(f"goal under 60 s: {'met' if parallel < 60 else 'missed'}")


if __name__ == "__main__":
    sys.exit(main())
