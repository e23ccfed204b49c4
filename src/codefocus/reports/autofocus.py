"""AutoFocus analyses drawn as grey-scale code: darker statements carry more attention (or more
deletion effect), as a self-contained HTML page or in the terminal."""

from __future__ import annotations

import html

import numpy as np

from codefocus.lab.autofocus import ProgramAnalysis, grey_levels
from codefocus.lab.parsing import Parsed, parse


def _grey(code: bytes, parsed: Parsed, scores: list[float], scale: str = "program") -> str:
    levels = grey_levels(scores, scale)  # 0 white .. 1 black
    level = np.zeros(len(code))
    for statement, value in sorted(
        zip(parsed.statements, levels, strict=True), key=lambda x: x[0].start - x[0].end
    ):
        level[statement.start : statement.end] = value  # innermost statement wins (drawn last)
    out, cursor = [], 0
    while cursor < len(code):
        end = cursor
        while end < len(code) and level[end] == level[cursor]:
            end += 1
        shade = int(255 - 200 * level[cursor])
        text = html.escape(code[cursor:end].decode("utf-8", errors="replace"))
        out.append(
            f'<span style="background:rgb({shade},{shade},{shade});color:{"#fff" if shade < 140 else "#000"}">{text}</span>'
        )
        cursor = end
    return "".join(out)


def analysis_html(
    analysis: ProgramAnalysis, language: str, classes: list[str], scale: str = "program"
) -> str:
    """One program's analysis as a page: attention and deletion effect per statement, drawn as
    grey-scale code side by side (``scale``: ``program`` or ``absolute`` grey levels, see
    ``grey_levels``), and the minimal program that keeps the class."""
    from codefocus.reports.page import escaped_fragment, render_page

    parsed = parse(analysis.source, language)
    return render_page(
        "autofocus.html",
        title="AutoFocus",
        heading=f"{classes[analysis.label]} (predicted {classes[analysis.predicted]}, "
        f"confidence {analysis.confidence:.2f})",
        analysis=analysis,
        attention=escaped_fragment(_grey(parsed.source, parsed, analysis.attention, scale)),
        deletion=escaped_fragment(
            _grey(parsed.source, parsed, [-d for d in analysis.delta], scale)
        ),
    )


def print_analysis(
    analysis: ProgramAnalysis, language: str, console=None, scale: str = "program"
) -> None:
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    parsed = parse(analysis.source, language)
    for name, scores in (
        ("attention a(s)", analysis.attention),
        ("deletion effect -δ(s)", [-d for d in analysis.delta]),
    ):
        levels = grey_levels(scores, scale)
        text = Text(analysis.source)
        for statement, value in sorted(
            zip(parsed.statements, levels, strict=True), key=lambda x: x[0].start - x[0].end
        ):
            grey = int(232 + 23 * (1 - value))
            start = len(parsed.source[: statement.start].decode(errors="replace"))
            end = len(parsed.source[: statement.end].decode(errors="replace"))
            text.stylize(f"on color({max(232, min(255, grey))})", start, end)
        console.rule(name)
        console.print(text)
