"""Write the README's measured figures from ``benchmarks/results/*.json`` (never by hand).

Each block of the README between ``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->`` is
replaced by the table this script renders from ``benchmarks/results/NAME.json``. Run it after a
benchmark writes its results:

    .venv/bin/python scripts/readme_figures.py            # rewrite README.md
    .venv/bin/python scripts/readme_figures.py --check    # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from codefocus.reproduce.kou2024 import METHOD_LABELS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LABELS = METHOD_LABELS  # the study's names for its methods, as the reproduction prints them


def _cell(interval: dict, scale: float, digits: int) -> str:
    return (
        f"{scale * interval['estimate']:.{digits}f} "
        f"[{scale * interval['low']:.{digits}f}, {scale * interval['high']:.{digits}f}]"
    )


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
        "| five models α K=10 (mean) |",
        "|---|---|---|---|---|---|---|",
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
        lines.append(
            f"| {label} | {' | '.join(f1s)} | {alpha} | {spread} | {mean['alpha']:.2f} |"
            if mean
            else f"| {label} | {' | '.join(f1s)} | {alpha} | {spread} | – |"
        )
    gaps = disagreements(
        [
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
    )
    if gaps:
        lines += ["", "Where the study's mean lies outside the live interval:", "", *gaps]
    for ranking in run.get("rankings", []):
        if ranking.get("spearman") is not None:
            lines += [
                "",
                f"Spearman ρ between this ranking of the {len(ranking['methods'])} methods and "
                f"the study's (F1, K = {ranking['k']}): {ranking['spearman']:.2f} "
                f"[{ranking['spearman_low']:.2f}, {ranking['spearman_high']:.2f}].",
            ]
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
    return "\n".join(lines + speed)


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


def demo(record: dict) -> str:
    """The main job's wall time and headline, as ``benchmarks/demo_time.py`` measured them."""
    text = (
        f"On {_machine(record)}, with the model already converted, the whole command took "
        f"{record['seconds'] / 60:.1f} min: {record['prompts']} prompts, "
        f"{record['perturbation_prompts']} of them with BERT masking and SHAP "
        f"({record['units']}; {record['date'][:10]}, commit {str(record['commit'])[:8]})."
    )
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
            f"({100 * figures['study_mean_f1_k10']:.1f}) |"
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
        "range (mean) |",
        "|---|---|---|---|---|---|---|",
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


RENDERERS = {"kou2024_live": kou2024_live, "demo": demo}


def _machine(record: dict) -> str:
    machine = record.get("machine", {})
    device = machine.get("device", "cpu")
    cores = f"{machine.get('cpu_count', '?')} CPU cores"
    return cores if device == "cpu" else f"{cores} and {device}"


def render(text: str) -> str:
    for name, renderer in RENDERERS.items():
        path = RESULTS / f"{name}.json"
        pattern = re.compile(
            rf"(<!-- figures:{name} -->\n)(?:.*?\n)?(<!-- /figures:{name} -->)", flags=re.DOTALL
        )
        if not path.is_file() or not pattern.search(text):
            continue
        block = renderer(json.loads(path.read_text(encoding="utf-8")))
        text = pattern.sub(lambda m, b=block: m.group(1) + b + "\n" + m.group(2), text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    current = readme.read_text(encoding="utf-8")
    updated = render(current)
    if args.check:
        if updated != current:
            print("README.md figures are out of date: run scripts/readme_figures.py")
            return 1
        return 0
    readme.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
