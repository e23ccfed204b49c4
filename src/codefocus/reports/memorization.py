"""A memorization study's outputs: one CSV per metric, the written reading of the numbers,
plots (PNG, matplotlib) and a self-contained HTML page."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from codefocus.lab.memorization import MemorizationResult
from codefocus.reports.page import render_page
from codefocus.storage import write_text_atomic

CSV_METRICS = {
    "train_f1": lambda r, e: r.primary_f1(e, "train"),
    "test_f1": lambda r, e: r.primary_f1(e, "test"),
    "train_accuracy": lambda r, e: e.train_accuracy,
    "train_accuracy_clean": lambda r, e: e.train_accuracy_clean,
    "test_accuracy": lambda r, e: e.test_accuracy,
    "train_loss": lambda r, e: e.train_loss,
    "gini": lambda r, e: e.gini,
    "csr": lambda r, e: e.csr,
}


def write_csvs(result: MemorizationResult, out: str | Path) -> list[Path]:
    """One CSV per metric, ``epoch,0_percent,25_percent,...``; scores ranked per level."""
    out = Path(out)
    header = ["epoch", *[f"{level.noise}_percent" for level in result.levels]]
    written = []
    for name, value in CSV_METRICS.items():
        lines = [",".join(header)]
        for epoch in range(result.config.epochs):
            row = [str(epoch + 1)]
            for level in result.levels:
                row.append(f"{value(result, level.epochs[epoch]):.6f}")
            lines.append(",".join(row))
        path = out / f"{name}.csv"
        write_text_atomic(path, "\n".join(lines) + "\n")
        written.append(path)
    # the paper's view (sorted, averaged over all epochs) and the last epoch's snapshot
    for name, view in (
        ("test_scores_over_epochs", lambda level: level.scores_over_epochs()),
        ("test_scores_final", lambda level: level.scores_last_epoch()),
    ):
        lines = [",".join(["rank", *header[1:]])]
        ranked = [view(level) for level in result.levels]
        for rank in range(len(ranked[0]) if ranked else 0):
            lines.append(",".join([str(rank + 1), *(f"{scores[rank]:.6f}" for scores in ranked)]))
        path = out / f"{name}.csv"
        write_text_atomic(path, "\n".join(lines) + "\n")
        written.append(path)
    return written


def reading(result: MemorizationResult) -> list[str]:
    """Plain statements with the numbers behind them, for the terminal and the report."""
    lines = []
    finals = {level.noise: level.epochs[-1] for level in result.levels}
    epochs = result.config.epochs
    clean = finals.get(0)
    noisiest = max(finals)
    if clean is not None and noisiest > 0:
        last = finals[noisiest]
        ratio = last.train_accuracy / clean.train_accuracy if clean.train_accuracy else float("nan")
        lines.append(
            f"Memorization capacity: after {epochs} epochs the model fits "
            f"{last.train_accuracy:.1%} of its training labels under {noisiest}% label noise, "
            f"against {clean.train_accuracy:.1%} with clean labels (ratio {ratio:.2f})."
            if result.config.noise_kind == "label"
            else f"Input noise: after {epochs} epochs train accuracy is {last.train_accuracy:.1%} "
            f"with {noisiest}% of training programs damaged, {clean.train_accuracy:.1%} without."
        )
    ordered = sorted(finals)
    ginis = [finals[n].gini for n in ordered]
    if len(ordered) > 1:
        falls = all(b <= a for a, b in zip(ginis, ginis[1:], strict=False))
        rises = all(b >= a for a, b in zip(ginis, ginis[1:], strict=False))
        trend = "falls" if falls else "rises" if rises else "is not monotonic"
        values = ", ".join(f"{n}%: {g:.3f}" for n, g in zip(ordered, ginis, strict=True))
        lines.append(
            f"Gini of per-sample training loss at the last epoch {trend} as noise rises ({values})."
        )
        # once every level fits its labels the losses are all near zero and their Gini is
        # noise; the phase that tells is while the model is still fitting the clean labels
        by_level = {level.noise: level for level in result.levels}
        first = by_level[ordered[0]]
        fitted = next((e.epoch for e in first.epochs if e.train_accuracy >= 0.95), None)
        phase = fitted or len(first.epochs)
        until = (
            f"until {ordered[0]}% noise fits 95% of its training labels"
            if fitted
            else f"{ordered[0]}% noise never fits 95% of its training labels"
        )
        early = [float(np.mean([e.gini for e in by_level[n].epochs[:phase]])) for n in ordered]
        falls = all(b <= a for a, b in zip(early, early[1:], strict=False))
        values = ", ".join(f"{n}%: {g:.3f}" for n, g in zip(ordered, early, strict=True))
        lines.append(
            f"Mean Gini over epochs 1-{phase} ({until}) "
            f"{'falls' if falls else 'does not fall monotonically'} as noise rises ({values})."
        )
        fit = [
            next((e.epoch for e in by_level[n].epochs if e.train_accuracy >= 0.95), None)
            for n in ordered
        ]
        values = ", ".join(
            f"{n}%: {'not reached' if f is None else f'epoch {f}'}"
            for n, f in zip(ordered, fit, strict=True)
        )
        lines.append(f"First epoch with 95% of training labels fitted: {values}.")
        f1s = [result.primary_f1(finals[n], "test") for n in ordered]
        values = ", ".join(f"{n}%: {f:.3f}" for n, f in zip(ordered, f1s, strict=True))
        kind = "sub-token F1" if result.dataset_is_names else "macro-F1"
        lines.append(f"Test {kind} at the last epoch: {values}.")
        csrs = [finals[n].csr for n in ordered]
        values = ", ".join(f"{n}%: {c:.3f}" for n, c in zip(ordered, csrs, strict=True))
        lines.append(f"Critical sample ratio at the last epoch: {values}.")
        means = [float(np.mean(finals[n].test_scores)) for n in ordered]
        values = ", ".join(f"{n}%: {m:.3f}" for n, m in zip(ordered, means, strict=True))
        lines.append(f"Mean predicted score on test programs: {values}.")
    return lines


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
        scores = level.scores_over_epochs()  # the paper's view
        axes.plot(np.arange(1, len(scores) + 1), scores, color=colour, label=f"{level.noise}%")
    axes.set(
        xlabel="test program (sorted by score)",
        ylabel="predicted score",
        ylim=(0, 1.02),
        title="Predicted-label probability, sorted, mean over all epochs",
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


def _png(path: Path) -> str:
    """The PNG at ``path`` as base64, to inline as a data URL."""
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_report(result: MemorizationResult, out: str | Path) -> Path:
    """``report.html``: the reading, a table of last-epoch figures and the plots inline; the
    CSVs and the plots beside it."""
    out = Path(out)
    write_csvs(result, out)
    plots = write_plots(result, out)
    rows = []
    for level in result.levels:
        last = level.epochs[-1]
        rows.append(
            (
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
    page = render_page(
        "memorization.html",
        title="codefocus memorization study",
        heading="Memorization vs generalization",
        config=result.config,
        classes=len(result.classes),
        sizes=result.sizes,
        reading=reading(result),
        rows=rows,
        images=[(name, _png(path)) for name, path in plots.items()],
    )
    path = out / "report.html"
    write_text_atomic(path, page)
    return path
