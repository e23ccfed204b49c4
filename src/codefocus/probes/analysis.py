"""Break rates of the probes: per (ranking, K) with bootstrap intervals over tasks and a paired
test against random words; per label category of the substituted words; per provider the
share of substitutes WordNet calls synonyms; the breaking probes as records and a report."""

from __future__ import annotations

import difflib
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codefocus.metrics.stats import bootstrap_mean, paired_mean_test
from codefocus.probes.rankings import Ranking
from codefocus.probes.runner import ProbeConfig, ProbeRecord, load_probes
from codefocus.serialization import JsonRecord
from codefocus.storage import write_text_atomic


@dataclass(frozen=True)
class BreakRate(JsonRecord):
    ranking: str
    k: int
    tasks: int  # tasks with a counted probe
    broken: int
    rate: float
    low: float  # 95% bootstrap interval over tasks
    high: float
    flipped: int  # probes left out: a substitute flips meaning
    vs_random: float | None  # mean per-task difference from the random rankings
    p_value: float | None  # paired sign-flip permutation test of that difference


@dataclass(frozen=True)
class ProbeAnalysis(JsonRecord):
    tasks: int
    passing: int
    rates: tuple[BreakRate, ...]
    categories: dict[str, dict[str, float]]  # category -> {probes, broken, rate}
    synonym_share: float  # of the substitutions, how many WordNet calls synonyms
    substitutions: int
    provider: str

    def rate(self, ranking: str | Ranking, k: int) -> BreakRate:
        return next(r for r in self.rates if r.ranking == str(ranking) and r.k == k)


BOOTSTRAP_RESAMPLES = 2000
PERMUTATIONS = 9999


def _interval(values: np.ndarray) -> tuple[float, float]:
    """95% bootstrap interval of the break rate over tasks (``metrics.stats.bootstrap_mean``)."""
    if len(values) == 0:
        return math.nan, math.nan
    interval = bootstrap_mean(values, resamples=BOOTSTRAP_RESAMPLES, seed=0)
    return interval.low, interval.high


def _paired_p(ranking: np.ndarray, random: np.ndarray) -> float | None:
    """Two-sided paired permutation test that a ranking breaks tasks as often as the random
    rankings (``metrics.stats.paired_mean_test``); none with fewer than two tasks."""
    if len(ranking) < 2:
        return None
    return paired_mean_test(ranking, random, permutations=PERMUTATIONS, seed=0).p_value


def analyze_probes(
    config: ProbeConfig, records: list[ProbeRecord], originals: dict[str, bool]
) -> ProbeAnalysis:
    counted = [r for r in records if r.counted]
    broke: dict[tuple[str, int, str], bool] = {
        (r.ranking, r.k, r.task_id): r.broke for r in counted
    }
    randoms = sorted({r.ranking for r in records if r.rank.kind == "random"})
    rankings = list(dict.fromkeys(r.ranking for r in records))
    rates = []
    for ranking in rankings:
        for k in config.ks:
            tasks = sorted({t for (rk, kk, t) in broke if rk == ranking and kk == k})
            values = np.array([float(broke[(ranking, k, t)]) for t in tasks])
            flipped = sum(1 for r in records if r.ranking == ranking and r.k == k and not r.counted)
            difference, p_value = None, None
            if Ranking.parse(ranking).kind != "random" and randoms:
                own, base = [], []  # per task: this ranking, and the mean of the random ones
                for t in tasks:
                    draws = [broke[(rr, k, t)] for rr in randoms if (rr, k, t) in broke]
                    if draws:
                        own.append(float(broke[(ranking, k, t)]))
                        base.append(float(np.mean(draws)))
                if own:
                    pairs = np.array(own) - np.array(base)
                    difference = float(np.mean(pairs))
                    p_value = _paired_p(np.array(own), np.array(base))
            low, high = _interval(values)
            rates.append(
                BreakRate(
                    ranking,
                    k,
                    len(tasks),
                    int(values.sum()),
                    float(values.mean()) if len(values) else math.nan,
                    low,
                    high,
                    flipped,
                    difference,
                    p_value,
                )
            )
    categories: dict[str, dict[str, float]] = {}
    for record in counted:
        for category in sorted(set(record.categories)):
            entry = categories.setdefault(category, {"probes": 0, "broken": 0})
            entry["probes"] += 1
            entry["broken"] += record.broke
    for entry in categories.values():
        entry["rate"] = entry["broken"] / entry["probes"]
    substitutions = sum(len(r.changed) for r in records)
    synonyms = sum(r.synonyms for r in records)
    return ProbeAnalysis(
        tasks=len(originals),
        passing=sum(originals.values()),
        rates=tuple(rates),
        categories=categories,
        synonym_share=synonyms / substitutions if substitutions else math.nan,
        substitutions=substitutions,
        provider=config.substitutes,
    )


def write_outputs(out: str | Path) -> tuple[ProbeAnalysis, list[Path]]:
    """summary.json, breaking.jsonl (every breaking probe) and report.html in ``out``."""
    out = Path(out)
    config, records, originals = load_probes(out)
    analysis = analyze_probes(config, records, originals)
    breaking = [r for r in records if r.broke]
    paths = [
        write_text_atomic(out / "summary.json", json.dumps(analysis.to_dict(), indent=1)),
        write_text_atomic(
            out / "breaking.jsonl", "".join(json.dumps(r.to_dict()) + "\n" for r in breaking)
        ),
        write_text_atomic(out / "report.html", report_html(config, analysis, records)),
    ]
    return analysis, paths


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def section_html(config: ProbeConfig, analysis: ProbeAnalysis, records: list[ProbeRecord]) -> str:
    """The probes as a report section: the break-rate table, categories, broken examples."""
    rows = "".join(
        f"<tr><th>{html.escape(r.ranking)}</th><td>{r.k}</td><td>{r.tasks}</td><td>{r.broken}</td>"
        f"<td>{_num(r.rate)} <small>[{_num(r.low)}, {_num(r.high)}]</small></td>"
        f"<td>{_num(r.vs_random)}</td><td>{_num(r.p_value)}</td><td>{r.flipped}</td></tr>"
        for r in analysis.rates
    )
    categories = "".join(
        f"<tr><th>{html.escape(c)}</th><td>{int(e['probes'])}</td><td>{int(e['broken'])}</td>"
        f"<td>{_num(e['rate'])}</td></tr>"
        for c, e in sorted(analysis.categories.items())
    )
    examples = []
    chosen = sorted(
        (r for r in records if r.broke and r.counted and r.rank.kind != "random"),
        key=lambda r: (r.k, len(r.changed), r.task_id, r.ranking),
    )[:8]  # the most informative: the fewest words changed
    for r in chosen:
        diff = "\n".join(
            difflib.unified_diff(
                r.original_code.splitlines(), r.new_code.splitlines(), "original", "probe",
                lineterm="",
            )
        )  # fmt: skip
        changes = ", ".join(f"{w} → {s}" for w, s in zip(r.words, r.substitutes, strict=True))
        examples.append(
            f"<section class='probe'><h4>{html.escape(r.task_id)} — {html.escape(r.ranking)}, "
            f"k = {r.k}: {html.escape(changes)}</h4>"
            f"<div class='pair'><pre>{html.escape(r.prompt)}</pre><pre>{html.escape(r.perturbed)}</pre></div>"
            f"<pre class='diff'>{html.escape(diff)}</pre>"
            f"<p>new code: {html.escape(r.verdict)}</p></section>"
        )
    return (
        f"<p>{analysis.tasks} tasks, {analysis.passing} whose original code passes (only those "
        f"are probed); substitutes by {html.escape(analysis.provider)}: "
        f"{_num(100 * analysis.synonym_share, 1)}% of {analysis.substitutions} substitutions "
        "are WordNet synonyms of their word. A probe whose substitute is an antonym or another "
        "number is left out (last column).</p>"
        "<table class='probes'><tr><th>ranking</th><th>k</th><th>tasks</th><th>broken</th>"
        "<th>break rate [95% CI]</th><th>vs random</th><th>p (paired)</th><th>left out</th></tr>"
        f"{rows}</table><h3>By label category of the substituted words</h3>"
        "<table class='categories'><tr><th>category</th><th>probes</th><th>broken</th>"
        f"<th>rate</th></tr>{categories}</table><h3>Broken examples</h3>{''.join(examples)}"
    )


def report_html(config: ProbeConfig, analysis: ProbeAnalysis, records: list[ProbeRecord]) -> str:
    from codefocus.reports.page import escaped_fragment, render_page

    return render_page(
        "probes.html",
        title="robustness probes",
        heading=f"Attention-guided robustness probes — {config.model}, {config.benchmark}",
        content=escaped_fragment(section_html(config, analysis, records)),
    )
