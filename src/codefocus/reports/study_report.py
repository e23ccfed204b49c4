"""The study report: one self-contained, offline HTML file (no external assets; the only script
is the explorer's, and every table and chart reads without it), drawn in the one page shell.

The headline first (``reports.study_headline``); per model pass@1 and the alignment section;
the automated error explanation of the study's RQ2; a section per task
(``reports.study_sections``). Everything that came from a model, a user or the data is escaped.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from codefocus.faithfulness.study import load_faithfulness
from codefocus.reports.charts import bar_chart
from codefocus.reports.faithfulness_section import faithfulness_section
from codefocus.reports.page import escaped_fragment, render_page
from codefocus.reports.study_headline import headline_section, study_headline
from codefocus.reports.study_sections import KS, alignment_section, error_section, task_section
from codefocus.storage import write_text_atomic
from codefocus.studies.results import TaskResult, load_results
from codefocus.studies.runner import SECOND_VIEW, STORE_NAME
from codefocus.studies.store import StudyStore

REPORT_NAME = "report.html"
__all__ = ["KS", "REPORT_NAME", "TaskResult", "load_results", "scope_description", "write_report"]


# what a study that tested only some tasks says beside its pass@1
VERDICT_NOTES = {
    "attributed": " (only the tasks whose attributed generation is itself testable: "
    "HumanEval; MBPP needs a second, testable generation, which this study did not ask for: "
    "--verdicts all)",
    "none": " (this study asked for no verdicts: --verdicts all)",
}


def scope_description(directory: Path) -> str:
    """The protocol the study ran under and which words were scored, as its settings say."""
    from codefocus.errors import CodefocusError
    from codefocus.studies.runner import StudyConfig

    store = StudyStore(directory / STORE_NAME)
    try:
        raw = store.meta("config", {}) or {}
    finally:
        store.close()
    try:
        protocol = StudyConfig.from_dict(raw).declared_protocol() if raw else None
    except (CodefocusError, TypeError, ValueError, KeyError):
        protocol = None
    if protocol is None:
        return "scored scope: the whole prompt (a store from before scopes were recorded)"
    comparable = (
        "comparable with the study's Table 2"
        if protocol.labels == "stored" and protocol.units == "tokens"
        else "not comparable with the study's Table 2"
    )
    where = f"protocol: {protocol.name} ({comparable}); "
    if protocol.scope == "study":
        where += (
            "scored scope: the study's (Kou et al.) — HumanEval from the signature's def to the "
            "first >>> (no imports, no doctest examples), MBPP the whole task text"
        )
    else:
        where += "scored scope: the whole prompt (not comparable with the study's figures)"
    where += "; attention sink (first input position) " + (
        "not scored by attention methods" if protocol.exclude_sink else "scored"
    )
    where += f"; units ranked: {'model tokens' if protocol.units == 'tokens' else 'words'}"
    where += f"; labels: {protocol.labels}"
    where += f"; perturbation similarity: {protocol.similarity}"
    where += f"; substitutes: {protocol.substitutes}"
    return where


def second_view_section(directory: Path, data_dir: str | Path | None = None) -> str:
    """The alignment tables of the study kept in ``directory`` (``codefocus demo --second-view``:
    another protocol on some of the prompts), labelled with its protocol, as a second view."""
    config, results = load_results(directory, data_dir)
    methods = [m for m in dict.fromkeys(m for r in results for m in r.attribution.word_scores)]
    protocol = config.declared_protocol().name
    sections = "".join(
        alignment_section(model, [r for r in results if r.model == model], methods)[0]
        for model in config.models
    )
    return (
        f"<h2>Second view: protocol {html.escape(protocol)} on {len(results)} prompts</h2>"
        f"<p class='scope'>{html.escape(scope_description(directory))}</p>"
        "<p>These tables rank and score as this protocol says, not as the study's released "
        "code did: read them beside the headline, never against the study's Table 2.</p>" + sections
    )


def write_report(directory: str | Path, data_dir: str | Path | None = None) -> Path:
    """Write ``directory/report.html`` for the study stored there."""
    directory = Path(directory)
    if not (directory / STORE_NAME).is_file():
        from codefocus.errors import DataError

        raise DataError(f"no study in {directory} (missing {STORE_NAME})")
    config, results = load_results(directory, data_dir)
    methods = [m for m in dict.fromkeys(m for r in results for m in r.attribution.word_scores)]
    body = [
        f"<p>models: {html.escape(', '.join(config.models))}; "
        f"benchmarks: {html.escape(', '.join(config.benchmarks))}; tasks analysed: {len(results)}</p>",
        f"<p class='scope'>{html.escape(scope_description(directory))}</p>",
    ]
    headline, figures = study_headline(directory, data_dir)
    if headline:
        write_text_atomic(directory / "headline.json", json.dumps(figures, indent=1))
        body.append(headline)
    else:
        body.append(headline_section(results, methods))
    pass_rates = {}
    for model in config.models:
        own = [r for r in results if r.model == model]
        verdicts = [r.verdict for r in own if r.verdict]
        pass_rates[model] = (
            sum(v["passed"] for v in verdicts) / len(verdicts) if verdicts else float("nan")
        )
        section, _ = alignment_section(model, own, methods)
        body.append(
            f"<h2>{html.escape(model)}</h2><p>pass@1 (greedy): "
            + (f"{pass_rates[model]:.3f} over {len(verdicts)} tasks" if verdicts else "no verdicts")
            + f"{VERDICT_NOTES.get(config.verdicts, '')}</p>{section}"
        )
    if len(pass_rates) > 1:  # a chart of one bar says nothing the text does not
        body.append(
            "<div class='charts'>" + bar_chart("pass@1 per model", pass_rates, "pass@1") + "</div>"
        )
    measured = load_faithfulness(directory)
    if measured:
        body.append(
            "<h2>Which attribution can you trust? Alignment and faithfulness</h2>"
            + "".join(faithfulness_section(m, results, measured) for m in config.models)
        )
    second = directory / SECOND_VIEW
    if (second / STORE_NAME).is_file():
        body.append(second_view_section(second, data_dir))
    body.append(
        "<h2>Why generations fail: missing attention (RQ2)</h2>" + error_section(results, methods)
    )
    body.append("<h2>Tasks</h2>" + "".join(task_section(r, methods) for r in results))
    page = render_page(
        "study_report.html",
        title="codefocus study report",
        content=escaped_fragment("".join(body)),
    )
    path = directory / REPORT_NAME
    write_text_atomic(path, page)
    return path
