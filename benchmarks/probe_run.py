"""Attention-guided robustness probes on the embedded default: MBPP labelled tasks whose greedy
code passes, as many as fit in the time box. Rankings: bert_masking, saliency_coding and
coding_all vs the programmers' words vs random words (3 seeds), with the lowest-ranked words of
each method as a second control; k = 1 and 3. Prints the table, ending with one line per ranking
and k: ``RANKING k=K break rate R``.

    CODEFOCUS_DATA=../shared/data python benchmarks/probe_run.py [--minutes 30 --out probes/]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from codefocus.probes.analysis import write_outputs
from codefocus.probes.runner import ProbeConfig, ProbeRun


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", default=None, help="keep the run here (default: a temp dir)")
    parser.add_argument("--benchmark", default="mbpp")
    parser.add_argument("--rank-by", default="bert_masking,saliency_coding,coding_all,programmers")
    args = parser.parse_args()
    config = ProbeConfig(
        model="default",
        benchmark=args.benchmark,
        rank_by=tuple(args.rank_by.split(",")),
        ks=(1, 3),
        random_seeds=(0, 1, 2),
    )
    out = args.out or tempfile.mkdtemp(prefix="codefocus-probes-")
    started = time.perf_counter()

    def progress(done, total, task_id):
        print(f"[{time.perf_counter() - started:.0f} s] {done}/{total} {task_id}", flush=True)

    summary = ProbeRun(config, out).run(progress, stop_after=args.minutes * 60)
    analysis, _ = write_outputs(out)
    print(
        f"{summary.tasks} MBPP tasks tried in {summary.seconds:.0f} s, {analysis.passing} passing "
        f"and probed; {summary.probes} probes; {len(summary.failed_units)} failed units; "
        f"substitutes WordNet synonyms: {100 * analysis.synonym_share:.1f}% of "
        f"{analysis.substitutions}; results in {out}"
    )
    for failure in summary.failed_units[:10]:
        print(f"  failed: {failure}")
    for rate in analysis.rates:
        versus = (
            ""
            if rate.p_value is None
            else f", vs random {rate.vs_random:+.3f} (paired p {rate.p_value:.3f})"
        )
        print(
            f"  {rate.ranking} k={rate.k}: {rate.broken}/{rate.tasks} broken, 95% CI "
            f"[{rate.low:.3f}, {rate.high:.3f}], {rate.flipped} left out (meaning flips){versus}"
        )
    for category, entry in sorted(analysis.categories.items()):
        print(f"  category {category}: {int(entry['broken'])}/{int(entry['probes'])} probes broke")
    for rate in analysis.rates:
        print(f"{rate.ranking} k={rate.k} break rate {rate.rate:.3f}")


if __name__ == "__main__":
    main()
