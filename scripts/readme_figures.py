"""Write the measured figures of the README and the docs from ``benchmarks/results/*.json``.

No figure is typed by hand: each block between ``<!-- figures:NAME -->`` and
``<!-- /figures:NAME -->`` in ``README.md`` or any ``docs/**/*.md`` page is replaced by what this
script renders from ``benchmarks/results/NAME.json``. ``NAME:VIEW`` renders a shorter view of the
same results (``kou2024_live:headline``, ``demo:summary``: the README's front page). A block whose
name no renderer knows, or whose results file is missing, is an error. Run it after a benchmark
writes its results:

    .venv/bin/python scripts/readme_figures.py            # rewrite every file with blocks
    .venv/bin/python scripts/readme_figures.py --check    # exit 1 if any of them is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from codefocus.protocols import STUDY_METHOD_NAMES
from codefocus.reproduce.kou2024 import METHOD_LABELS, PRINTED_TABLE3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_figures import (  # noqa: E402  (this folder, not a package)
    autofocus,
    cross_prompt_batching,
    endpoint_likelihood,
    faithfulness,
    faithfulness_likelihood,
    faithfulness_regeneration,
    memorization,
    precision,
)

sys.path.pop(0)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LABELS = METHOD_LABELS  # the study's names for its methods, as the reproduction prints them


def _cell(interval: dict, scale: float, digits: int) -> str:
    return (
        f"{scale * interval['estimate']:.{digits}f} "
        f"[{scale * interval['low']:.{digits}f}, {scale * interval['high']:.{digits}f}]"
    )


def printed_f1(method: str, k: int = 10) -> str:
    """Table 3 as printed (``reproduce.kou2024.PRINTED_TABLE3``), for a study or codefocus name."""
    printed = PRINTED_TABLE3.get(STUDY_METHOD_NAMES.get(method, method), {}).get(k)
    return "–" if printed is None else f"{100 * printed[0]:.1f}"


def kou2024_live(record: dict) -> str:
    """The default model's Table 2 rows beside the five study models, and the speed figures."""
    run = record["run"]
    live = {(r["row"]["method"], r["row"]["k"]): r for r in run["table2"]}
    study = run["study_rows"]
    means = {(r["method"], r["k"]): r for r in run["study_means"]}
    lines = [
        f"{record['model']}, protocol kou2024, {run['prompts_scored']} prompts "
        f"({sum(t.startswith('HumanEval') for t in run['task_ids'])} HumanEval, "
        f"{sum(t.startswith('Mbpp') for t in run['task_ids'])} MBPP); F1 in %, 95% bootstrap "
        "intervals over prompts; five models = the study's Table 2 recomputed, mean = Table 3 "
        f"as their mean ({record['date'][:10]}, commit {str(record['commit'])[:8]}):",
        "",
        "| method | F1 K=5 | F1 K=10 | F1 K=20 | α K=10 | five models F1 K=10: range (mean) "
        "| five models α K=10 (mean) | printed Table 3 F1 K=10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, label in LABELS.items():
        if (method, 10) not in live:
            continue
        f1s = [_cell(live[(method, k)]["f1_interval"], 100, 1) for k in (5, 10, 20)]
        alpha = _cell(live[(method, 10)]["alpha_interval"], 1, 2)
        theirs = [r["f1"] for r in study if r["method"] == method and r["k"] == 10]
        mean = means.get((method, 10))
        spread = (
            f"{100 * min(theirs):.1f}–{100 * max(theirs):.1f} ({100 * mean['f1']:.1f})"
            if theirs and mean
            else "–"
        )
        study_alpha = f"{mean['alpha']:.2f}" if mean else "–"
        lines.append(
            f"| {label} | {' | '.join(f1s)} | {alpha} | {spread} | {study_alpha} "
            f"| {printed_f1(method)} |"
        )
    gaps = disagreements(_live_against_means(run))
    if gaps:
        lines += ["", "Where the study's mean lies outside the live interval:", "", *gaps]
    lines += _spearman(run)
    speed = ["", "Speed on this machine (" + _machine(record) + "):", ""]
    generation = record.get("generation")
    if generation:
        speed.append(
            f"- generation, {generation['prompts']} prompts: "
            f"{generation['seconds_per_prompt_batched']:.2f} s per prompt batched across "
            f"prompts vs {generation['seconds_per_prompt_one_at_a_time']:.2f} s one at a time "
            f"(ratio {generation['batched_over_one_ratio']:.2f}); completions that differ: "
            f"{generation['completions_differ']}"
        )
    methods = (record.get("methods") or {}).get("methods", {})
    if methods:
        ratios = ", ".join(
            f"{name} {figures['floor_ratio']:.2f}" for name, figures in methods.items()
        )
        speed.append(f"- each method's time over its floor: {ratios}")
    speed.append(
        f"- measured run: {run['prompts']} prompts (generation, verdicts, the ten white-box "
        f"methods) in {run['seconds'] / 60:.1f} min; projected for all 1,134: "
        f"{run['projected_full_run_minutes']:.0f} min"
    )
    bound = _gradient_floor_minutes(record)
    if bound is not None:
        speed.append(
            "- the two gradient floors alone (one forward and one backward per prompt for "
            "READING and for CODING, at the sample's seconds per prompt), over the study's 164 "
            f"HumanEval and 970 MBPP prompts: about {bound:.0f} min, before any generation"
        )
    return "\n".join(lines + speed)


STUDY_PROMPTS = {"humaneval": 164, "mbpp": 970}


def _gradient_floor_minutes(record: dict) -> float | None:
    """Minutes the gradient floors would take over the study's prompts, at the floor sample's
    seconds per prompt: an estimate of what the gradient methods alone cost one prompt at a
    time (they run at 0.9-1.0 of their floors)."""
    floors = (record.get("methods") or {}).get("floors", {})
    try:
        seconds = sum(
            floors[stage][f"seconds_per_prompt_{benchmark}"] * count
            for stage in ("gradient_reading", "gradient_coding")
            for benchmark, count in STUDY_PROMPTS.items()
        )
    except (KeyError, TypeError):
        return None
    return seconds / 60


def _live_against_means(run: dict) -> list[tuple[str, list[float], float, list[float], float]]:
    """Per method at K = 10: (label, live F1 [estimate, low, high], the five models' mean F1,
    live α [...], their mean α), in the study's order of methods."""
    live = {(r["row"]["method"], r["row"]["k"]): r for r in run["table2"]}
    means = {(r["method"], r["k"]): r for r in run["study_means"]}
    return [
        (
            label,
            [live[(method, 10)]["f1_interval"][key] for key in ("estimate", "low", "high")],
            means[(method, 10)]["f1"],
            [live[(method, 10)]["alpha_interval"][key] for key in ("estimate", "low", "high")],
            means[(method, 10)]["alpha"],
        )
        for method, label in LABELS.items()
        if (method, 10) in live and (method, 10) in means
    ]


def _spearman(run: dict) -> list[str]:
    lines = []
    for ranking in run.get("rankings", []):
        if ranking.get("spearman") is not None:
            lines += [
                "",
                f"Spearman ρ between this ranking of the {len(ranking['methods'])} methods and "
                f"the study's (F1, K = {ranking['k']}): {ranking['spearman']:.2f} "
                f"[{ranking['spearman_low']:.2f}, {ranking['spearman_high']:.2f}].",
            ]
    return lines


def kou2024_live_headline(record: dict) -> str:
    """The front page's view of ``kou2024_live``: F1 and α at K = 10 beside the five models, and
    where the default model disagrees with the study, summed up in three plain lines."""
    run = record["run"]
    rows = _live_against_means(run)
    study = run["study_rows"]
    lines = [
        f"{record['model']} under protocol kou2024 on {run['prompts_scored']} prompts "
        f"({sum(t.startswith('HumanEval') for t in run['task_ids'])} HumanEval, "
        f"{sum(t.startswith('Mbpp') for t in run['task_ids'])} MBPP), beside the study's five "
        "models (their Table 2 recomputed; mean = Table 3); F1 in %, 95% bootstrap intervals "
        f"over prompts ({record['date'][:10]}, commit {str(record['commit'])[:8]}):",
        "",
        "| method | F1 K=10 | five models F1 K=10: range (mean) | α K=10 | five models α (mean) |",
        "|---|---|---|---|---|",
    ]
    methods = {label: method for method, label in LABELS.items()}
    for label, f1, study_f1, alpha, study_alpha in rows:
        theirs = [r["f1"] for r in study if r["method"] == methods[label] and r["k"] == 10]
        spread = f"{100 * min(theirs):.1f}–{100 * max(theirs):.1f} " if theirs else ""
        lines.append(
            f"| {label} | {100 * f1[0]:.1f} [{100 * f1[1]:.1f}, {100 * f1[2]:.1f}] "
            f"| {spread}({100 * study_f1:.1f}) "
            f"| {alpha[0]:.2f} [{alpha[1]:.2f}, {alpha[2]:.2f}] | {study_alpha:.2f} |"
        )
    lines += [
        "",
        "Where the default model disagrees with the study (the five models' mean outside the "
        "live 95% interval):",
        "",
        *summarise_disagreements(rows),
    ]
    return "\n".join(lines + _spearman(run))


def summarise_disagreements(
    rows: list[tuple[str, list[float], float, list[float], float]],
) -> list[str]:
    """``disagreements`` in a few lines: per measure, how many methods fall below and above
    the study's mean, by how much, and the largest gap; then the methods that agree on both."""
    lines = []
    agree = {label for label, *_ in rows}
    for name, index, scale, digits, unit in (("F1", 1, 100, 1, " points"), ("α", 3, 1, 2, "")):
        sides: dict[str, list[tuple[float, str, float, float]]] = {"below": [], "above": []}
        for row in rows:
            label, live, theirs = row[0], row[index], row[index + 1]
            estimate, low, high = live
            if low <= theirs <= high:
                continue
            agree.discard(label)
            side = "below" if high < theirs else "above"
            sides[side].append((abs(scale * (estimate - theirs)), label, estimate, theirs))
        parts = []
        for side, found in sides.items():
            if not found:
                parts.append(f"{side} the mean for none")
                continue
            gaps = sorted(found)
            gap, label, estimate, theirs = gaps[-1]
            parts.append(
                f"{side} the mean for {len(found)} of the {len(rows)} methods, by "
                f"{gaps[0][0]:.{digits}f} to {gap:.{digits}f}{unit} (most: {label}, "
                f"{scale * estimate:.{digits}f} against {scale * theirs:.{digits}f})"
            )
        lines.append(f"- {name} at K = 10: " + "; ".join(parts) + ".")
    kept = [label for label, *_ in rows if label in agree]
    lines.append(
        "- Within the interval on both: " + (", ".join(kept) if kept else "no method") + "."
    )
    return lines


def disagreements(rows: list[tuple[str, list[float], float, list[float], float]]) -> list[str]:
    """Where the study's mean (F1 or α at K = 10) lies outside the live 95% interval, said
    plainly with the gap. ``rows``: (method label, live F1 [estimate, low, high], study mean F1,
    live α [...], study mean α)."""
    lines = []
    for label, f1, study_f1, alpha, study_alpha in rows:
        for name, live, theirs, scale, unit in (
            ("F1", f1, study_f1, 100, " points"),
            ("α", alpha, study_alpha, 1, ""),
        ):
            estimate, low, high = live
            if low <= theirs <= high:
                continue
            side = "below" if high < theirs else "above"
            lines.append(
                f"- {label}: {name} at K = 10 is {scale * estimate:.{1 if scale == 100 else 2}f} "
                f"[{scale * low:.{1 if scale == 100 else 2}f}, "
                f"{scale * high:.{1 if scale == 100 else 2}f}], {side} the five models' mean "
                f"{scale * theirs:.{1 if scale == 100 else 2}f} by "
                f"{abs(scale * (estimate - theirs)):.{1 if scale == 100 else 2}f}{unit}"
            )
    return lines


def demo_summary(record: dict) -> str:
    """The main job's wall time alone (the README's front page)."""
    return (
        f"On {_machine(record)}, with the model already converted"
        + (
            ", and the study files' scores kept from an earlier run"
            if record.get("study_scores_cached")
            else ""
        )
        + ", the whole command took "
        f"{record['seconds'] / 60:.1f} min: {record['prompts']} prompts, "
        f"{record['perturbation_prompts']} of them with BERT masking and SHAP"
        + (f", verdicts: {record['verdicts']}" if record.get("verdicts") else "")
        + f" ({record['units']}; {record['date'][:10]}, commit {str(record['commit'])[:8]})."
    )


def demo(record: dict) -> str:
    """The main job's wall time and headline, as ``benchmarks/demo_time.py`` measured them."""
    text = demo_summary(record)
    headline = record.get("headline") or {}
    own = next(iter(headline.get("models", {}).values()), None)
    if not own:
        return text
    rows = []
    found = []
    marked = " (substitute: embedding)" if headline.get("substitutes") == "embedding" else ""
    for method, figures in own.items():
        if method.startswith("_"):
            continue
        perturbation = method in ("bert_masking", "shap")
        label = method + (marked if perturbation else "")
        f1 = " | ".join(
            f"{100 * figures[f'f1_k{k}'][0]:.1f} [{100 * figures[f'f1_k{k}'][1]:.1f}, "
            f"{100 * figures[f'f1_k{k}'][2]:.1f}]"
            for k in (5, 10, 20)
        )
        alpha = figures["alpha_k10"]
        low, high = figures["study_range_f1_k10"]
        rows.append(
            f"| {label} | {figures['prompts']} | {f1} | {alpha[0]:.2f} [{alpha[1]:.2f}, "
            f"{alpha[2]:.2f}] | {100 * low:.1f}–{100 * high:.1f} "
            f"({100 * figures['study_mean_f1_k10']:.1f}) | {printed_f1(method)} |"
        )
        study_alpha = figures.get("study_mean_alpha_k10")
        if study_alpha is not None:
            found.append(
                (label, figures["f1_k10"], figures["study_mean_f1_k10"], alpha, study_alpha)
            )
    table = [
        "",
        "The demo's headline (the report's first table; F1 in %, 95% bootstrap intervals over "
        "prompts):",
        "",
        "| method | prompts | F1 K=5 | F1 K=10 | F1 K=20 | α K=10 | five models F1 K=10: "
        "range (mean) | printed Table 3 F1 K=10 |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    spearman = own.get("_spearman")
    if spearman:
        table += [
            "",
            f"Spearman ρ of the twelve methods' ranking against the study's: {spearman[0]:.2f} "
            f"[{spearman[1]:.2f}, {spearman[2]:.2f}].",
        ]
    gaps = disagreements(found)
    if gaps:
        table += ["", "Where the study's mean lies outside the live interval:", "", *gaps]
    return text + "\n" + "\n".join(table)


# block name -> (results file in benchmarks/results, renderer)
RENDERERS = {
    "kou2024_live": ("kou2024_live", kou2024_live),
    "kou2024_live:headline": ("kou2024_live", kou2024_live_headline),
    "demo": ("demo", demo),
    "demo:summary": ("demo", demo_summary),
    "memorization": ("memorization", memorization),
    "autofocus": ("autofocus", autofocus),
    "precision": ("precision", precision),
    "faithfulness": ("faithfulness", faithfulness),
    "faithfulness:likelihood": ("faithfulness", faithfulness_likelihood),
    "faithfulness_regeneration": ("faithfulness_regeneration", faithfulness_regeneration),
    "endpoint_likelihood": ("endpoint_likelihood", endpoint_likelihood),
    "cross_prompt_batching": ("cross_prompt_batching", cross_prompt_batching),
}
# a block: its opening and closing comments each on a line of their own
BLOCK = re.compile(
    r"^(<!-- figures:([\w:.-]+) -->\n)(?:.*?\n)?(<!-- /figures:\2 -->)$", re.DOTALL | re.MULTILINE
)


def _machine(record: dict) -> str:
    machine = record.get("machine", {})
    device = machine.get("device", "cpu")
    cores = f"{machine.get('cpu_count', '?')} CPU cores"
    return cores if device == "cpu" else f"{cores} and {device}"


def render(text: str) -> str:
    """``text`` with every figures block rendered again from its results file."""

    def block(match: re.Match) -> str:
        name = match.group(2)
        if name not in RENDERERS:
            raise ValueError(f"unknown figures block {name!r}: known are {', '.join(RENDERERS)}")
        results, renderer = RENDERERS[name]
        path = RESULTS / f"{results}.json"
        if not path.is_file():
            raise ValueError(f"figures block {name!r} needs {path.relative_to(ROOT)}")
        rendered = renderer(json.loads(path.read_text(encoding="utf-8")))
        return match.group(1) + rendered + "\n" + match.group(3)

    return BLOCK.sub(block, text)


def pages() -> list[Path]:
    """Every file that may hold figures blocks: the README and each docs page."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail if any file's figures are out of date"
    )
    args = parser.parse_args()
    stale = []
    for page in pages():
        current = page.read_text(encoding="utf-8")
        if not BLOCK.search(current):
            continue
        try:
            updated = render(current)
        except ValueError as error:
            print(f"{page.relative_to(ROOT)}: {error}")
            return 1
        if updated == current:
            continue
        stale.append(str(page.relative_to(ROOT)))
        if not args.check:
            page.write_text(updated, encoding="utf-8")
    if args.check and stale:
        print(f"figures out of date in {', '.join(stale)}: run scripts/readme_figures.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
