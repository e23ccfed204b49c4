"""Plots (PNG, matplotlib) and a self-contained HTML page for a memorization study."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from codefocus.lab.memorization import MemorizationResult, reading


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    return plt, figure, axes


def _colours(count: int):
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / max(1, count - 1) * 0.9) for i in range(count)]


def write_plots(result: MemorizationResult, out: str | Path) -> dict[str, Path]:
    """f1.png (train solid, test dashed), scores.png, gini.png, csr.png; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    colours = _colours(len(result.levels))
    epochs = list(range(1, result.config.epochs + 1))
    kind = result.config.noise_kind
    paths = {}

    plt, figure, axes = _figure()
    for colour, level in zip(colours, result.levels, strict=True):
        train = [result.primary_f1(e, "train") for e in level.epochs]
        test = [result.primary_f1(e, "test") for e in level.epochs]
        axes.plot(epochs, train, "-", color=colour, label=f"{level.noise}% train")
        axes.plot(epochs, test, "--", color=colour, label=f"{level.noise}% test")
    axes.set(xlabel="epoch", ylabel="F1", ylim=(0, 1.02), title=f"F1 under {kind} noise")
    axes.legend(fontsize=7, ncol=2)
    paths["f1"] = _save(plt, figure, out / "f1.png")

    plt, figure, axes = _figure()
    for colour, level in zip(colours, result.levels, strict=True):
        scores = sorted(level.epochs[-1].test_scores, reverse=True)
        axes.plot(np.arange(1, len(scores) + 1), scores, color=colour, label=f"{level.noise}%")
    axes.set(
        xlabel="test program (sorted)",
        ylabel="predicted score",
        ylim=(0, 1.02),
        title="Predicted-label probability, last epoch",
    )
    axes.legend(fontsize=8)
    paths["scores"] = _save(plt, figure, out / "scores.png")

    for name, title in (("gini", "Gini of per-sample training loss"), ("csr", "Critical ratio")):
        plt, figure, axes = _figure()
        for colour, level in zip(colours, result.levels, strict=True):
            axes.plot(
                epochs, [getattr(e, name) for e in level.epochs], color=colour,
                label=f"{level.noise}%",
            )  # fmt: skip
        axes.set(xlabel="epoch", ylabel=name, ylim=(0, 1.02), title=title)
        axes.legend(fontsize=8)
        paths[name] = _save(plt, figure, out / f"{name}.png")
    return paths


def _save(plt, figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def write_report(result: MemorizationResult, out: str | Path) -> Path:
    """``report.html``: the reading, a table of last-epoch figures and the plots inline."""
    out = Path(out)
    plots = write_plots(result, out)
    config = result.config
    rows = []
    for level in result.levels:
        last = level.epochs[-1]
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{v}</td>"
                for v in (
                    f"{level.noise}%",
                    level.noised_samples,
                    f"{last.train_accuracy:.3f}",
                    f"{last.train_accuracy_clean:.3f}",
                    f"{result.primary_f1(last, 'train'):.3f}",
                    f"{result.primary_f1(last, 'test'):.3f}",
                    f"{last.test_accuracy:.3f}",
                    f"{last.gini:.3f}",
                    f"{last.csr:.3f}",
                )
            )
            + "</tr>"
        )
    statements = "".join(f"<li>{html.escape(line)}</li>" for line in reading(result))
    images = "".join(
        f"<figure>{_image(path, name)}<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, path in plots.items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>codefocus memorization study</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #bbb; padding: .3em .6em; }}
figure {{ display: inline-block; margin: .5em; }} img {{ max-width: 34em; }}
</style></head><body>
<h1>Memorization vs generalization</h1>
<p>Dataset <b>{html.escape(config.dataset)}</b> ({len(result.classes)} classes; train
{result.sizes["train"]}, test {result.sizes["test"]}), model <b>{html.escape(config.model)}</b>,
{html.escape(config.noise_kind)} noise, {config.epochs} epochs, seed {config.seed}.</p>
<h2>Reading</h2><ul>{statements}</ul>
<h2>Last epoch</h2>
<table><tr><th>noise</th><th>noised samples</th><th>train acc (fit)</th>
<th>train acc (true labels)</th><th>train F1</th><th>test F1</th><th>test acc</th>
<th>Gini</th><th>CSR</th></tr>{"".join(rows)}</table>
<h2>Plots</h2>{images}
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
