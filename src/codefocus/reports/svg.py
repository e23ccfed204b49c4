"""Tiny self-contained SVG charts (no JavaScript, no external files): lines and bars."""

from __future__ import annotations

import html

PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
]


def line_chart(title: str, xs: list, series: dict[str, list[float]], y_label: str) -> str:
    width, height, left, bottom, top, right = 640, 300, 50, 40, 30, 200
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for vs in series.values() for v in vs if v == v] or [0.0, 1.0]
    low, high = min(0.0, min(values)), max(values) or 1.0
    if high == low:
        high = low + 1

    def x_at(i):
        return left + (plot_w * i / max(1, len(xs) - 1))

    def y_at(v):
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [
        *_header(width, height, title, left, top + plot_h / 2, y_label),
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333"/>',
    ]
    for i, x in enumerate(xs):
        parts.append(
            f'<text x="{x_at(i) - 8}" y="{top + plot_h + 16}" font-size="11">{html.escape(str(x))}</text>'
        )
    for tick in (low, (low + high) / 2, high):
        parts.append(f'<text x="{left - 40}" y="{y_at(tick) + 4}" font-size="10">{tick:.2f}</text>')
    for n, (name, vs) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        points = " ".join(f"{x_at(i):.1f},{y_at(v):.1f}" for i, v in enumerate(vs) if v == v)
        parts.append(
            f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        parts.append(
            f'<text x="{left + plot_w + 10}" y="{top + 12 * n + 8}" font-size="11" fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _header(width: int, height: int, title: str, left: int, label_y: float, y_label: str):
    """The opening tag, the title and the y-axis label of a chart."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="18" font-size="14">{html.escape(title)}</text>',
        f'<text x="6" y="{label_y}" font-size="11">{html.escape(y_label)}</text>',
    ]


def bar_chart(title: str, bars: dict[str, float], y_label: str) -> str:
    width, height, left, bottom, top = 640, 300, 50, 110, 30
    plot_w, plot_h = width - left - 20, height - top - bottom
    values = [v for v in bars.values() if v == v] or [0.0]
    low, high = min(0.0, min(values)), max(max(values), 1e-9)
    step = plot_w / max(1, len(bars))

    def y_at(v):
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [
        *_header(width, height, title, left, top + plot_h / 2, y_label),
        f'<line x1="{left}" y1="{y_at(0)}" x2="{left + plot_w}" y2="{y_at(0)}" stroke="#333"/>',
    ]
    for i, (name, value) in enumerate(bars.items()):
        value = value if value == value else 0.0
        x = left + i * step + step * 0.15
        y0, y1 = sorted((y_at(0), y_at(value)))
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y0:.1f}" width="{step * 0.7:.1f}" height="{max(y1 - y0, 0.5):.1f}" fill="{PALETTE[i % len(PALETTE)]}"><title>{html.escape(name)}: {value:.3f}</title></rect>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 12}" font-size="10" transform="rotate(35 {x:.1f},{top + plot_h + 12})">{html.escape(name)}</text>'
        )
        parts.append(f'<text x="{x:.1f}" y="{y0 - 3:.1f}" font-size="10">{value:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)
