"""Charts for the offline HTML reports, drawn by matplotlib and inlined as SVG.

Why matplotlib and not Vega-Lite: it is already a dependency (the memorization plots), it renders
without JavaScript (so a report still reads with scripts off, and in a mail attachment), and its
SVG needs no runtime embedded in every page (Vega + Vega-Lite + vega-embed are ~800 kB minified).
Text stays text (``svg.fonttype = none``), so charts are searchable and small; ids are seeded so
the same figures give the same page.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence

# Okabe & Ito's colour-blind-safe palette (black last: it is also the axis colour)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p"]
LINESTYLES = ["-", "--", "-.", ":"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def _to_svg(fig, title: str) -> str:
    """The figure as an inline ``<svg>`` element with an accessible name."""
    plt = _pyplot()
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "codefocus"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    svg = text[text.index("<svg") :]
    # the RDF metadata block names five external vocabularies; a report needs none of them
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, count=1, flags=re.S)
    from html import escape

    return svg.replace(
        "<svg ", f'<svg class="chart" role="img" aria-label="{escape(title, quote=True)}" ', 1
    )


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and math.isfinite(v)]


def line_chart(
    title: str,
    xs: Sequence,
    series: Mapping[str, Sequence[float]],
    y_label: str,
    x_label: str = "",
) -> str:
    """One line per series. Series with equal values would hide each other, so each is shifted a
    little sideways and has its own marker (and dash pattern past the palette), and the legend
    sits outside the plot, never over the lines."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 3.4))
    dodge = 0.12 / max(1, len(series) - 1) if len(series) > 1 else 0.0
    for n, (name, values) in enumerate(series.items()):
        shift = (n - (len(series) - 1) / 2) * dodge  # equal series side by side, not stacked
        ax.plot(
            [i + shift for i in range(len(xs))],
            [v if v is not None else math.nan for v in values],
            label=name,
            color=PALETTE[n % len(PALETTE)],
            marker=MARKERS[n % len(MARKERS)],
            linestyle=LINESTYLES[(n // len(PALETTE)) % len(LINESTYLES)],
            markersize=6 if n < len(PALETTE) else 5,
            markerfacecolor="none" if n % 2 else None,
            gid=f"series-{n}",
        )
    ax.set_xticks(list(range(len(xs))), [str(x) for x in xs])
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylabel(y_label)
    ax.set_xlabel(x_label)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _to_svg(fig, title)


def bar_chart(title: str, bars: Mapping[str, float], y_label: str) -> str:
    """Horizontal bars (long method names stay readable), the value printed at each bar; a
    missing value is drawn as no bar and labelled "–"."""
    plt = _pyplot()
    names = list(bars)
    fig, ax = plt.subplots(figsize=(7.2, 0.7 + 0.32 * max(1, len(names))))
    values = [bars[n] for n in names]
    drawn = [v if isinstance(v, int | float) and math.isfinite(v) else 0.0 for v in values]
    positions = list(range(len(names)))[::-1]  # the first name on top
    rects = ax.barh(positions, drawn, color=PALETTE[0], height=0.6)
    for n, (rect, value) in enumerate(zip(rects, values, strict=True)):
        rect.set_gid(f"bar-{n}")
        finite = isinstance(value, int | float) and math.isfinite(value)
        ax.annotate(
            f"{value:.3f}" if finite else "–",
            (rect.get_width(), rect.get_y() + rect.get_height() / 2),
            xytext=(3 if rect.get_width() >= 0 else -3, 0),
            textcoords="offset points",
            va="center",
            ha="left" if rect.get_width() >= 0 else "right",
            fontsize=8,
        )
    ax.set_yticks(positions, names, fontsize=8)
    finite_values = _finite(values) or [0.0]
    low, high = min(0.0, *finite_values), max(0.0, *finite_values)
    span = (high - low) or 1.0
    ax.set_xlim(low - 0.12 * span * (low < 0), high + 0.18 * span)
    ax.axvline(0, color="#333", linewidth=0.8)
    ax.set_xlabel(y_label)
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(axis="x", alpha=0.3)
    return _to_svg(fig, title)


def interval_scatter(
    title: str,
    points: Mapping[str, tuple[float, float, float, float, float, float]],
    x_label: str,
    y_label: str,
    reference_y: float | None = None,
    reference_label: str = "",
) -> str:
    """One point per name at (x, y) with its intervals as error bars: ``points[name] = (x,
    x_low, x_high, y, y_low, y_high)``; an optional horizontal reference line (a control)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    for n, (name, (x, x_low, x_high, y, y_low, y_high)) in enumerate(points.items()):
        if not all(math.isfinite(v) for v in (x, x_low, x_high, y, y_low, y_high)):
            continue
        ax.errorbar(
            [x],
            [y],
            xerr=[[x - x_low], [x_high - x]],
            yerr=[[y - y_low], [y_high - y]],
            fmt=MARKERS[n % len(MARKERS)],
            color=PALETTE[n % len(PALETTE)],
            markersize=6,
            capsize=2,
            linewidth=0.8,
            label=name,
            gid=f"point-{n}",
        )
    if reference_y is not None and math.isfinite(reference_y):
        ax.axhline(reference_y, color="#333", linewidth=0.8, linestyle=":", label=reference_label)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(alpha=0.3)
    if points:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return _to_svg(fig, title)


def histogram(title: str, values: Sequence[float], x_label: str, bins: int = 10) -> str:
    """A histogram of the finite values (AutoFocus's correlations per program, for example)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.0))
    finite = _finite(values)
    ax.hist(finite, bins=bins, color=PALETTE[0], edgecolor="white")
    ax.set_xlabel(x_label)
    ax.set_ylabel("count")
    ax.set_title(f"{title} (n = {len(finite)})", fontsize=11, loc="left")
    return _to_svg(fig, title)


def diverging_likert(
    title: str, distributions: Mapping[str, Sequence[int]], levels: Sequence[str]
) -> str:
    """Diverging stacked bars of Likert ratings (the study's Figure 5): one bar per row, the
    disagreeing levels left of zero, the agreeing ones right, the neutral one split across it.
    ``distributions[row]`` counts the answers per level, lowest level first."""
    plt = _pyplot()
    rows = list(distributions)
    n_levels = len(levels)
    middle = n_levels // 2 if n_levels % 2 else None
    cmap = plt.get_cmap("RdBu", n_levels)  # diverging and colour-blind-safe
    fig, ax = plt.subplots(figsize=(7.6, 0.9 + 0.45 * max(1, len(rows))))
    for y, row in zip(range(len(rows))[::-1], rows, strict=True):
        counts = list(distributions[row])
        total = sum(counts) or 1
        shares = [100.0 * c / total for c in counts]
        negative = sum(shares[: n_levels // 2]) + (shares[middle] / 2 if middle is not None else 0)
        left = -negative
        for level, share in enumerate(shares):
            ax.barh(
                y,
                share,
                left=left,
                color=cmap(level),
                edgecolor="white",
                height=0.6,
                label=levels[level] if y == len(rows) - 1 else None,
            )
            if share >= 8:
                dark = level in (0, n_levels - 1)
                ax.text(
                    left + share / 2,
                    y,
                    f"{share:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "black",
                )
            left += share
    ax.axvline(0, color="#333", linewidth=0.8)
    ax.set_yticks(list(range(len(rows)))[::-1], rows, fontsize=8)
    ax.set_xlim(-100, 100)
    ax.set_xlabel("% of ratings (left: disagree, right: agree)")
    ax.set_title(title, fontsize=11, loc="left")
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.28),
        ncol=min(n_levels, 7),
        fontsize=7,
        frameon=False,
    )
    return _to_svg(fig, title)
