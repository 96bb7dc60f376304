"""Draw the report's figures to PNG files from the data the other :mod:`harness.report` modules prepare.

Only draws: every number comes from the caller.  Uses matplotlib's object API
with the Agg canvas (no pyplot, so no global state and no display is ever needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.formatting import format_bytes, format_speed
from harness.report.memory import MemoryPanel, cap_hit
from harness.report.runs import run_label
from harness.report.seed import SEED_FIGURES
from harness.storage import Run

MIB = 1024 * 1024
LEAKY_COLOUR, FIXED_COLOUR, CAP_COLOUR = "tab:red", "tab:blue", "0.35"
MODEL_COLOURS = {"CNN": "tab:blue", "fc-only": "tab:orange"}
DPI = 100
# More vertical lines than this turn a time series into a grey wall: mark every n-th boundary instead.
MAX_BOUNDARY_LINES = 40


def _new_figure(width: float, height: float) -> Figure:
    """A figure bound to the Agg canvas, so ``savefig`` never needs a display."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    """Write the figure as PNG and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)
    return path


def plot_memory_panels(panels: Sequence[MemoryPanel], path: Path) -> Path:
    """The headline: RSS against epoch, leaky and fixed runs of each variant on one panel, caps marked."""
    columns = 2 if len(panels) in (2, 4) else min(len(panels), 3) or 1
    rows = max(1, math.ceil(len(panels) / columns))
    figure = _new_figure(max(6.0, 4.6 * columns), 4.4 * rows)
    axes_grid = figure.subplots(rows, columns, squeeze=False)
    for index, axes in enumerate(axes_grid.flat):
        if index >= len(panels):
            axes.set_visible(False)
            continue
        panel = panels[index]
        _draw_runs(axes, panel.fixed, FIXED_COLOUR, panel.fixed_label)
        _draw_runs(axes, panel.leaky, LEAKY_COLOUR, panel.leaky_label)
        for run in panel.leaky + panel.fixed:
            _draw_cap(axes, run)
        axes.set_title(panel.variant)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel(panel.x_label)
        axes.set_ylabel("resident memory (MiB)")
        # Room above the highest line or cap so a stop marker is not cut by the frame.
        axes.set_ylim(0, axes.get_ylim()[1] * 1.12)
        axes.grid(alpha=0.3)
        _legend_below(axes)
    if not panels:
        axes_grid[0, 0].text(0.5, 0.5, "no runs", ha="center", va="center")
    figure.suptitle("Resident memory per epoch: leaky against fixed")
    return _save(figure, path)


def _legend_below(axes: Axes) -> None:
    """The legend under the axes, where it cannot hide a line or a stop marker."""
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small", frameon=False)


def _draw_runs(axes: Axes, runs: Sequence[Run], colour: str, label: str) -> None:
    """RSS per epoch of each run in one colour, one legend entry for all of them; dashed, the tree's PSS."""
    width = 1.8 if len(runs) == 1 else 1.0
    with_children = [run for run in runs if run.max_children > 0]
    for index, run in enumerate(with_children):
        read = run.epochs.dropna(subset=["tree_pss_bytes"])  # only the epochs a PSS reading fell in
        axes.plot(
            read["epoch"],
            read["tree_pss_bytes"].astype(float) / MIB,
            color=colour,
            linewidth=width,
            linestyle="--",
            alpha=0.9 if len(runs) == 1 else 0.6,
            label=f"{label.split(' (')[0]}: the worker and its processes (PSS)" if index == 0 else None,
        )
    for index, run in enumerate(runs):
        axes.plot(
            run.epochs["epoch"],
            run.epochs["rss_bytes"] / MIB,
            color=colour,
            linewidth=width,
            alpha=0.9 if len(runs) == 1 else 0.6,
            marker="o" if len(run.epochs) <= 30 else None,
            markersize=3,
            label=label if index == 0 else None,
        )


def _draw_cap(axes: Axes, run: Run) -> None:
    """Where the memory cap stopped a run: the cap as a dashed line and a cross at the stop."""
    hit = cap_hit(run)
    if hit is None:
        return
    epoch, rss, cap = hit
    axes.axhline(cap / MIB, color=CAP_COLOUR, linestyle="--", linewidth=1)
    axes.plot(
        [epoch],
        [rss / MIB],
        marker="X",
        markersize=10,
        color="black",
        linestyle="none",
        label=f"stopped by the memory cap ({format_bytes(cap)}) in epoch {epoch}",
    )


def plot_samples(run: Run, path: Path) -> Path:
    """The timed memory samples of one run against seconds, epoch boundaries marked."""
    figure = _new_figure(10, 4)
    axes = figure.subplots()
    samples = run.samples
    axes.plot(
        samples["t_s"],
        samples["rss_bytes"] / MIB,
        color=LEAKY_COLOUR if run.meta.get("leak") else FIXED_COLOUR,
        linewidth=1.2,
        label=f"RSS sampled every {_interval(run)}",
    )
    # Epoch 0 is the worker starting up, before training: it has no boundary to mark.
    starts = samples[samples["epoch"] >= 1].groupby("epoch")["t_s"].min().sort_index()
    step = max(1, math.ceil(len(starts) / MAX_BOUNDARY_LINES))
    shown = starts.iloc[::step]
    for index, t_start in enumerate(shown):
        axes.axvline(
            t_start,
            color="0.6",
            linewidth=0.7,
            linestyle=":",
            label=("epoch starts" if step == 1 else f"every {step}th epoch start") if index == 0 else None,
        )
    hit = cap_hit(run)
    if hit is not None:
        axes.axhline(
            hit[2] / MIB,
            color=CAP_COLOUR,
            linestyle="--",
            linewidth=1,
            label=f"memory cap ({format_bytes(hit[2])})",
        )
    axes.set_xlabel("time since training started (s)")
    axes.set_ylabel("resident memory (MiB)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3, axis="y")
    axes.legend(loc="upper left", fontsize="small")
    axes.set_title(f"Timed memory samples: {run_label(run)} ({run.meta.get('status')})")
    return _save(figure, path)


def _interval(run: Run) -> str:
    """The sampling interval as ``"50 ms"``."""
    interval = run.meta.get("sample_interval_s")
    return f"{1000 * float(interval):.0f} ms" if interval else "few ms"


def plot_seed_runs(curves: pd.DataFrame, means: pd.DataFrame, path: Path) -> Path:
    """The seed's first plot: correct_prob per epoch of every seed and their mean, one panel per model."""
    models = [m for m in MODEL_COLOURS if m in set(curves["model"])] or ["CNN"]
    figure = _new_figure(5.2 * len(models), 3.8)
    axes_row = figure.subplots(1, len(models), squeeze=False)[0]
    for axes, model in zip(axes_row, models):
        mine = curves[curves["model"] == model]
        for index, (_, run) in enumerate(mine.groupby("run_id", sort=False)):
            axes.plot(
                run["epoch"],
                run["value"],
                color=MODEL_COLOURS[model],
                alpha=0.35,
                linewidth=0.8,
                label=f"each seed ({mine['run_id'].nunique()} runs)" if index == 0 else None,
            )
        mean = means[means["model"] == model]
        axes.plot(mean["epoch"], mean["value"], color="black", linewidth=2, label="mean")
        _probability_axes(axes, "epoch")
        axes.set_title(f"{model}: accuracy per epoch")
    return _save(figure, path)


def plot_seed_means(means: pd.DataFrame, path: Path) -> Path:
    """The seed's second plot: mean correct_prob per epoch, CNN against fully-connected-only."""
    figure = _new_figure(7, 4)
    axes = figure.subplots()
    for model, mean in means.groupby("model", sort=False):
        axes.plot(
            mean["epoch"],
            mean["value"],
            color=MODEL_COLOURS.get(str(model)),
            linewidth=2,
            label=f"{model} (mean of {int(mean['runs'].max())})",
        )
    _probability_axes(axes, "epoch")
    axes.set_title("Mean accuracy per epoch: CNN against fully-connected-only")
    return _save(figure, path)


def plot_seed_time(curves: pd.DataFrame, means: pd.DataFrame, path: Path) -> Path:
    """The seed's last plot: correct_prob against elapsed seconds, every seed and the mean per model."""
    figure = _new_figure(7, 4)
    axes = figure.subplots()
    for model, mine in curves.groupby("model", sort=False):
        colour = MODEL_COLOURS.get(str(model))
        for _, run in mine.groupby("run_id", sort=False):
            axes.plot(run["elapsed_s"], run["value"], color=colour, alpha=0.25, linewidth=0.7)
        mean = means[means["model"] == model]
        axes.plot(
            mean["elapsed_s"],
            mean["value"],
            color=colour,
            linewidth=2,
            label=f"{model}: mean (thin: each seed)",
        )
    _probability_axes(axes, "elapsed time since training started (s)")
    axes.set_title("Accuracy against elapsed time")
    return _save(figure, path)


def _probability_axes(axes: Axes, xlabel: str) -> None:
    """Shared look of the accuracy plots: 0-100 % with the 1/3 chance level marked."""
    axes.axhline(1 / 3, color="0.6", linestyle=":", linewidth=1, label="chance (1/3)")
    axes.set_ylim(0, 1.02)
    axes.yaxis.set_major_formatter(lambda value, _: f"{100 * value:.0f} %")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("accuracy (mean correct_prob, %)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")


def plot_speed(table: pd.DataFrame, path: Path, variants: Sequence[str] = ()) -> Path:
    """Epochs per second of each variant and model (leak-free runs; median when repeated), log scale, seed marked."""
    fixed = table[(table["leak"] == "none") & table["epochs_per_s"].notna() & table["alone"]]
    speed = fixed.groupby(["variant", "model"], sort=False)["epochs_per_s"].median()
    order = {name: index for index, name in enumerate(variants)}
    speed = speed.sort_index(
        key=lambda level: level.map(lambda v: order.get(v, len(order)) if level.name == "variant" else v)
    )
    figure = _new_figure(7, 1.6 + 0.45 * max(1, len(speed)))
    axes = figure.subplots()
    labels = [f"{variant} ({model})" for variant, model in speed.index]
    axes.barh(
        labels,
        speed.to_numpy(),
        color=[MODEL_COLOURS.get(m, "tab:gray") for _, m in speed.index],
    )
    for y, value in enumerate(speed.to_numpy()):
        axes.text(value, y, f" {format_speed(value)}", va="center", fontsize="small")
    for model, figures in SEED_FIGURES.items():
        axes.axvline(
            figures["epochs_per_s"],
            color=MODEL_COLOURS[model],
            linestyle="--",
            linewidth=1,
            label=f"seed's Haskell, {model} ({figures['epochs_per_s']} epochs/s)",
        )
    axes.set_xscale("log")
    axes.set_xlim(right=axes.get_xlim()[1] * 3)  # room for the value labels
    _legend_below(axes)
    axes.invert_yaxis()
    axes.set_xlabel("epochs per second (log scale; leak-free runs that ran alone, median)")
    axes.set_title("Speed of each implementation")
    axes.grid(alpha=0.3, axis="x")
    return _save(figure, path)
