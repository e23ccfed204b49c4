"""The main job's wall time: ``codefocus demo`` run as a user runs it, into a fresh directory.

Runs the installed command (the model already converted, so conversion is not timed), then
writes ``benchmarks/results/demo.json`` (seconds, units, the demo's headline figures, commit,
versions, machine) and keeps the report in ``--out``.

    CODEFOCUS_DATA=../shared/data .venv/bin/python benchmarks/demo_time.py [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git  # noqa: E402  (this folder, not a package)

sys.path.pop(0)

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/codefocus-demo-timed")
    parser.add_argument("--result", default=str(ROOT / "benchmarks" / "results" / "demo.json"))
    args, extra = parser.parse_known_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    command = [str(Path(sys.executable).with_name("codefocus")), "demo", "--out", str(out), *extra]
    from codefocus.reproduce.score_cache import cache_folder

    # the study files' scores kept from an earlier run (reproduce.score_cache) save ~30 s
    cached_before = len(list(cache_folder().glob("*.json"))) if cache_folder().is_dir() else 0
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr[-4000:])
    if done.returncode != 0:
        print(f"codefocus demo exited {done.returncode}")
        return done.returncode
    units = next(
        (line for line in done.stdout.splitlines() if "units done" in line), "units: unknown"
    )
    sample = re.search(r"demo: (\d+) prompts.*?on (\d+)", done.stdout.replace("\n", " "))
    verdicts = re.search(r"verdicts: (\w+)", done.stdout)
    headline_path = out / "headline.json"
    record = {
        "benchmark": "demo",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": git("rev-parse", "HEAD"),
        "command": " ".join(["codefocus", *command[1:]]),
        "seconds": seconds,
        "units": units.strip(),
        "prompts": int(sample.group(1)) if sample else None,
        "perturbation_prompts": int(sample.group(2)) if sample else None,
        "verdicts": verdicts.group(1) if verdicts else None,
        "headline": json.loads(headline_path.read_text()) if headline_path.is_file() else None,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "device": "cpu"},
        # scores of the study's stored files found kept (0: scored during this run)
        "study_scores_cached": cached_before,
    }
    target = Path(args.result)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(temporary, target)
    print(f"demo: {seconds:.0f} s ({seconds / 60:.1f} min); {units.strip()}")
    print(f"results written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
