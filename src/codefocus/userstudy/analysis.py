"""The user study's analysis, as the paper did it and a little more.

Per method and question: n, mean, sd, median and the distribution over the 7 levels. Per
question, every pair of methods: Welch's t-test (scipy, unequal variances, as Kou et al.),
Cohen's d with the two variances averaged, and Holm's correction over the pairs of that
question. Like the paper, each rating counts as one observation (a participant rates each
method once per task), which the report says. Outputs: ``analysis.json``, ``summary.csv``,
``tests.csv`` and ``report.html`` (diverging stacked bars like the paper's Figure 5, drawn by
matplotlib; the open answers listed per question, escaped).
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from codefocus.serialization import JsonRecord
from codefocus.storage import write_text_atomic
from codefocus.userstudy.design import LIKERT, StudyDesign
from codefocus.userstudy.responses import OpenAnswer, Rating, ResponseStore


@dataclass(frozen=True)
class MethodSummary(JsonRecord):
    method: str
    question: str
    n: int
    mean: float
    sd: float
    median: float
    counts: tuple[int, ...]  # answers per level 1..7


@dataclass(frozen=True)
class PairTest(JsonRecord):
    question: str
    a: str
    b: str
    mean_a: float
    mean_b: float
    t: float
    df: float
    p: float
    p_holm: float
    cohen_d: float


@dataclass(frozen=True)
class Analysis(JsonRecord):
    participants: int
    finished: int
    summaries: tuple[MethodSummary, ...]
    tests: tuple[PairTest, ...]
    answers: dict[str, list[str]]

    def summary(self, method: str, question: str) -> MethodSummary:
        return next(s for s in self.summaries if s.method == method and s.question == question)

    def test(self, question: str, a: str, b: str) -> PairTest:
        return next(t for t in self.tests if t.question == question and {t.a, t.b} == {a, b})


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        value = pvalues[index]
        running = max(running, min(1.0, (m - rank) * value) if not math.isnan(value) else 1.0)
        adjusted[index] = running
    return adjusted


def welch(a: list[int], b: list[int]) -> tuple[float, float, float, float]:
    """(t, df, p, Cohen's d) of Welch's two-sample t-test; NaN where it is undefined."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return (math.nan,) * 4
    result = stats.ttest_ind(a, b, equal_var=False)
    va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
    na, nb = len(a), len(b)
    denominator = (va / na + vb / nb) ** 2
    df = (
        denominator / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        if denominator
        else math.nan
    )
    spread = math.sqrt((va + vb) / 2)
    d = (np.mean(a) - np.mean(b)) / spread if spread else math.nan
    return float(result.statistic), float(df), float(result.pvalue), float(d)


def analyze_responses(
    design: StudyDesign,
    ratings: list[Rating],
    answers: list[OpenAnswer],
    participants: int,
    finished: int,
) -> Analysis:
    questions = list(design.rating_questions)
    values: dict[tuple[str, str], list[int]] = {
        (m, q): [] for m in design.methods for q in questions
    }
    for rating in ratings:
        if (rating.method, rating.question) in values:
            values[(rating.method, rating.question)].append(rating.value)
    summaries = []
    for q in questions:
        for m in design.methods:
            own = values[(m, q)]
            summaries.append(
                MethodSummary(
                    method=m,
                    question=q,
                    n=len(own),
                    mean=float(np.mean(own)) if own else math.nan,
                    sd=float(np.std(own, ddof=1)) if len(own) > 1 else math.nan,
                    median=float(np.median(own)) if own else math.nan,
                    counts=tuple(own.count(level) for level in range(1, 8)),
                )
            )
    tests = []
    for q in questions:
        pairs = list(combinations(design.methods, 2))
        raw = [welch(values[(a, q)], values[(b, q)]) for a, b in pairs]
        adjusted = holm([r[2] for r in raw])
        for (a, b), (t, df, p, d), p_holm in zip(pairs, raw, adjusted, strict=True):
            tests.append(
                PairTest(
                    question=q,
                    a=a,
                    b=b,
                    mean_a=float(np.mean(values[(a, q)])) if values[(a, q)] else math.nan,
                    mean_b=float(np.mean(values[(b, q)])) if values[(b, q)] else math.nan,
                    t=t,
                    df=df,
                    p=p,
                    p_holm=p_holm,
                    cohen_d=d,
                )
            )
    open_answers: dict[str, list[str]] = {q: [] for q in design.open_questions}
    for answer in answers:
        if answer.question in open_answers:
            open_answers[answer.question].append(answer.text)
    return Analysis(participants, finished, tuple(summaries), tuple(tests), open_answers)


def analyze(directory: str | Path) -> tuple[Analysis, list[Path]]:
    """Analyze the responses stored in ``directory``; write JSON, CSV and HTML beside them."""
    directory = Path(directory)
    design = StudyDesign.load(directory)
    store = ResponseStore(directory)
    exported = store.export()
    analysis = analyze_responses(
        design,
        store.ratings(),
        store.answers(),
        participants=len(exported["participants"]),
        finished=sum(p["finished"] is not None for p in exported["participants"]),
    )
    paths = [
        write_text_atomic(directory / "analysis.json", json.dumps(analysis.to_dict(), indent=1)),
        write_text_atomic(directory / "summary.csv", _csv(analysis.summaries, "counts")),
        write_text_atomic(directory / "tests.csv", _csv(analysis.tests)),
        write_text_atomic(directory / "report.html", report_html(design, analysis)),
    ]
    return analysis, paths


def _csv(rows, *skip: str) -> str:
    buffer = io.StringIO()
    records = [{k: v for k, v in r.to_dict().items() if k not in skip} for r in rows]
    if records:
        writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return buffer.getvalue()


def _num(value: float, digits: int = 2) -> str:
    return (
        "–"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.{digits}f}"
    )


def _p(value: float) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def report_html(design: StudyDesign, analysis: Analysis) -> str:
    """One offline page: summaries, tests, Figure 5-style distributions, open answers."""
    from codefocus.reports.charts import diverging_likert
    from codefocus.reports.page import escaped_fragment, render_page

    parts = [
        f"<p>{analysis.participants} participants ({analysis.finished} finished), "
        f"{len(design.tasks)} tasks, methods: {html.escape(', '.join(design.methods))}, top "
        f"{design.k} words, seed {design.seed}. Ratings 1 (strongly disagree) to 7 (strongly "
        "agree). Welch's t-tests treat each rating as one observation, as Kou et al. did; p "
        "values are Holm-corrected over the method pairs of each question.</p>",
    ]
    for q, text in design.rating_questions.items():
        rows = "".join(
            f"<tr><th>{html.escape(s.method)}</th><td>{s.n}</td><td>{_num(s.mean)}</td>"
            f"<td>{_num(s.sd)}</td><td>{_num(s.median, 1)}</td></tr>"
            for s in analysis.summaries
            if s.question == q
        )
        tests = "".join(
            f"<tr><th>{html.escape(t.a)} vs {html.escape(t.b)}</th><td>{_num(t.mean_a)} vs "
            f"{_num(t.mean_b)}</td><td>{_num(t.t)}</td><td>{_num(t.df, 1)}</td><td>{_p(t.p)}</td>"
            f"<td>{_p(t.p_holm)}</td><td>{_num(t.cohen_d)}</td></tr>"
            for t in analysis.tests
            if t.question == q
        )
        chart = diverging_likert(
            f"{q}: {text}",
            {s.method: s.counts for s in analysis.summaries if s.question == q},
            LIKERT,
        )
        parts.append(
            f"<h2>{q}. {html.escape(text)}</h2><table class='summary'><tr><th>method</th><th>n</th>"
            f"<th>mean</th><th>sd</th><th>median</th></tr>{rows}</table>"
            "<table class='tests'><tr><th>pair</th><th>means</th><th>t</th><th>df</th><th>p</th>"
            f"<th>p (Holm)</th><th>Cohen's d</th></tr>{tests}</table>{chart}"
        )
    parts.append("<h2>Open answers</h2>")
    for q, text in design.open_questions.items():
        quotes = "".join(
            f"<blockquote>{html.escape(a)}</blockquote>" for a in analysis.answers.get(q, [])
        )
        parts.append(f"<h3>{q}. {html.escape(text)}</h3>{quotes or '<p>no answers</p>'}")
    return render_page(
        "userstudy_analysis.html",
        title="user study analysis",
        heading="User study: which attention do programmers prefer?",
        content=escaped_fragment("".join(parts)),
    )
