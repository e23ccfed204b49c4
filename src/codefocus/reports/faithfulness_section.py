"""The study report's faithfulness section: per model, alignment with programmers (F1@10) against
faithfulness to the model (AOPC) for each method, with 95% bootstrap intervals over tasks, the
random and lowest-ranked controls, code change and LDS. Present only when ``codefocus
faithfulness --study`` has measured it."""

from __future__ import annotations

import html
import math

from codefocus.faithfulness import Faithfulness, MethodSummary, summarize
from codefocus.reports.charts import interval_scatter
from codefocus.studies.results import TaskResult


def _cell(interval, digits: int = 3) -> str:
    if interval is None or not math.isfinite(interval.estimate):
        return "<td>–</td>"
    return (
        f"<td>{interval.estimate:.{digits}f} <small>[{interval.low:.{digits}f}, "
        f"{interval.high:.{digits}f}]</small></td>"
    )


def _share(value: float | None) -> str:
    return "<td>–</td>" if value is None else f"<td>{100 * value:.0f}%</td>"


def faithfulness_table(rows: list[MethodSummary]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(r.method)}</th>{_cell(r.f1)}{_cell(r.aopc, 4)}"
        f"{_cell(r.aopc_sufficiency, 4)}{_cell(r.lowest_aopc, 4)}{_cell(r.lds)}"
        f"{_share(r.code_changed)}<td>{r.tasks}</td></tr>"
        for r in rows
    )
    return (
        "<table class='faithfulness'><tr><th>method</th><th>F1@10 (programmers)</th>"
        "<th>AOPC (comprehensiveness)</th><th>AOPC (sufficiency)</th>"
        "<th>AOPC, lowest-ranked words</th><th>LDS</th><th>code changed</th><th>tasks</th></tr>"
        f"{body}</table>"
    )


def faithfulness_section(
    model: str, results: list[TaskResult], measured: dict[tuple[str, str], Faithfulness]
) -> str:
    """The section for one model, or "" when none of its tasks was measured."""
    own = [
        found
        for r in results
        if r.model == model and (found := measured.get((model, r.attribution.task_id or "")))
    ]
    if not own:
        return ""
    attributions = [r.attribution for r in results if r.model == model]
    rows = summarize(own, attributions, k=10)
    points = {
        r.method: (
            r.f1.estimate,
            r.f1.low,
            r.f1.high,
            r.aopc.estimate,
            r.aopc.low,
            r.aopc.high,
        )
        for r in rows
        if r.f1 is not None
    }
    random = next(r for r in rows if r.method == "random")
    chart = interval_scatter(
        f"Alignment vs faithfulness — {model}",
        points,
        "F1@10 against the programmers",
        "AOPC (nats per code token)",
        reference_y=random.aopc.estimate,
        reference_label="random words left out",
    )
    first = own[0]
    return (
        f"<h3>Faithfulness — {html.escape(model)}</h3>"
        "<p>Does the model's belief in its own code depend on the words a method ranks "
        "highest? AOPC is the mean drop of log p(code | prompt), per code token, as each "
        f"method's top 1…{first.k} words are left out ({html.escape(first.perturbation)}); "
        "higher is more faithful. Sufficiency keeps only those words (lower is more "
        "faithful). The controls leave out random words and each method's lowest-ranked "
        "words. LDS: Spearman correlation of the scores read as a linear surrogate with the "
        "log-probability of held-out random ablations. Code changed: greedy code differs "
        f"once the top {first.k} words are left out. {len(own)} tasks; 95% bootstrap "
        "intervals over tasks.</p>"
        + faithfulness_table(rows)
        + f"<div class='charts'>{chart}</div>"
    )
