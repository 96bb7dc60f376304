"""The seed experiment beside ours: its leak-free runs, their learning curves and the seed's table.

Pure: runs in, pandas DataFrames out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from harness.formatting import format_percent, format_seconds, format_speed, format_times, missing
from harness.records import NO_LEAK
from harness.report.runs import leak_of, model_of, ran_alone
from harness.storage import Run

# The seed's own figures (../shared/seed/SUMMARY.md): Haskell with lists, one 2017 laptop.
# Its "accuracy" is the mean probability given to the correct class: our ``correct_prob``.
SEED_FIGURES: dict[str, dict[str, Any]] = {
    "CNN": {
        "time_200_s": 517.0,
        "epochs_per_s": 0.387,
        "prob_200": 0.975,
        "prob_500": None,
    },
    "fc-only": {
        "time_200_s": 157.0,
        "epochs_per_s": 1.273,
        "prob_200": 0.742,
        "prob_500": 0.951,
    },
}
SEED_CHECKPOINTS = (200, 500)
SEED_EPOCHS = 500
MODELS = ("CNN", "fc-only")


def seed_runs(runs: Sequence[Run], variant: str = "numpy") -> list[Run]:
    """The variant's leak-free runs planned for the seed's 500 epochs (or, if there are none, all of them)."""
    mine = [r for r in runs if r.meta.get("variant") == variant and leak_of(r) == NO_LEAK]
    # A short leak-free run (the partner of a leak run) is not one of the seed's repeated runs.
    full = [r for r in mine if int(r.meta.get("epochs_planned") or 0) >= SEED_EPOCHS]
    return full or mine


def seed_curves(runs: Sequence[Run], variant: str = "numpy", metric: str = "correct_prob") -> pd.DataFrame:
    """Long table (model, seed, run_id, epoch, elapsed_s, value, alone) of :func:`seed_runs`, for the seed's plots."""
    frames = []
    for run in seed_runs(runs, variant):
        if metric not in run.epochs:
            continue
        frame = run.epochs[["epoch", "elapsed_s", metric]].rename(columns={metric: "value"})
        frames.append(
            frame.assign(
                model=model_of(run),
                seed=run.meta.get("seed"),
                run_id=run.meta.get("run_id"),
                alone=ran_alone(run),
            )
        )
    if not frames:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    curves = pd.concat(frames, ignore_index=True)
    return curves[CURVE_COLUMNS]


# alone: the run had the machine to itself (no other run of a sweep beside it): only those are timed.
CURVE_COLUMNS = ["model", "seed", "run_id", "epoch", "elapsed_s", "value", "alone"]


def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per model and epoch: mean value, mean elapsed seconds, and how many seeds reached that epoch."""
    if curves.empty:
        return pd.DataFrame(columns=["model", "epoch", "value", "elapsed_s", "runs"])
    grouped = curves.groupby(["model", "epoch"], sort=True)
    means = grouped.agg(value=("value", "mean"), elapsed_s=("elapsed_s", "mean"), runs=("value", "size"))
    return means.reset_index()


def seed_table(runs: Sequence[Run], variant: str = "numpy") -> pd.DataFrame:
    """The seed's table (rows as in SUMMARY.md) with our numbers, mean over seeds, beside the seed's."""
    curves = seed_curves(runs, variant)
    columns: dict[str, list[str]] = {}
    for model in MODELS:
        ours = _seed_numbers(curves[curves["model"] == model])
        theirs = SEED_FIGURES[model]
        speedup = ours["epochs_per_s"] / theirs["epochs_per_s"]
        columns[f"{model}: seed (Haskell, 2017)"] = [
            format_seconds(theirs["time_200_s"]),
            format_speed(theirs["epochs_per_s"]),
            "1x",
            format_percent(theirs["prob_200"]),
            format_percent(theirs["prob_500"]) if theirs["prob_500"] is not None else "never reached (its leak)",
        ]
        columns[f"{model}: ours ({variant})"] = [
            _time(ours["time_200_s"]),
            format_speed(ours["epochs_per_s"]),
            format_times(speedup),
            _with_spread(ours["prob_200"], ours["sd_200"], ours["n_200"]),
            _with_spread(ours["prob_500"], ours["sd_500"], ours["n_500"]),
        ]
    index = [
        "time for 200 epochs",
        "epochs per second",
        "speed against the seed",
        "accuracy after 200 epochs (mean correct_prob)",
        "accuracy after 500 epochs (mean correct_prob)",
    ]
    table = pd.DataFrame(columns, index=index)
    table.index.name = "measure"
    return table.reset_index()


def _seed_numbers(curves: pd.DataFrame) -> dict[str, float]:
    """Mean time to 200 epochs and mean correct_prob (with spread) at 200 and 500, over the runs that got there."""
    first, second = SEED_CHECKPOINTS
    at_first = curves[curves["epoch"] == first]
    at_second = curves[curves["epoch"] == second]
    timed = at_first[at_first["alone"].astype(bool)]  # a run that shared the machine is not timed
    time_first = float(timed["elapsed_s"].mean()) if len(timed) else math.nan
    return {
        "time_200_s": time_first,
        "epochs_per_s": first / time_first if time_first > 0 else math.nan,
        "prob_200": float(at_first["value"].mean()) if len(at_first) else math.nan,
        "sd_200": float(at_first["value"].std()) if len(at_first) > 1 else math.nan,
        "n_200": len(at_first),
        "prob_500": float(at_second["value"].mean()) if len(at_second) else math.nan,
        "sd_500": float(at_second["value"].std()) if len(at_second) > 1 else math.nan,
        "n_500": len(at_second),
    }


def _time(seconds: float) -> str:
    """Seconds to the checkpoint, or ``"not reached"`` when no run got there."""
    return "not reached" if missing(seconds) else format_seconds(seconds)


def _with_spread(mean: float, sd: float, n: float) -> str:
    """``"97.6 % (sd 0.4, n=10)"``; ``"not reached"`` when no run got to that epoch."""
    if n == 0:
        return "not reached"
    text = format_percent(mean)
    if n > 1:
        return f"{text} (sd {100 * sd:.1f}, n={n:.0f})"
    return f"{text} (n=1)"
