"""The report's per-run table: one row of raw numbers per run, and the same as display strings.

Pure: runs in, pandas DataFrames out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.formatting import MISSING, format_bytes, format_growth, format_percent, format_speed, missing
from harness.growth import measure_label
from harness.report.runs import (
    epochs_per_second,
    final_metric,
    float_or_nan,
    growth_of,
    leak_of,
    model_of,
    peak_rss_bytes,
    ran_alone,
)
from harness.storage import Run


def run_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run, raw numbers: the data behind the report's per-run table."""
    rows = []
    for run in runs:
        growth = growth_of(run)
        rows.append(
            {
                "run_id": run.meta.get("run_id", Path(run.path).name),
                "variant": run.meta.get("variant"),
                "model": model_of(run),
                "leak": leak_of(run),
                "seed": run.meta.get("seed"),
                "epochs_done": int(run.meta.get("epochs_done", len(run.epochs))),
                # None for a script: it ends when it ends
                "epochs_planned": run.meta.get("epochs_planned", len(run.epochs)),
                "status": run.meta.get("status"),
                "verdict": growth.get("verdict"),
                "onset": growth.get("onset"),
                "stopped_at": (growth.get("stop") or {}).get("epoch"),
                "measure": growth.get("judged", "rss"),
                "bytes_per_epoch": float_or_nan(growth.get("bytes_per_epoch")),
                "ci_low": float_or_nan(growth.get("ci_low")),
                "ci_high": float_or_nan(growth.get("ci_high")),
                "per": growth.get("per", "epoch"),  # "window" for a script judged per window of samples
                "peak_rss_bytes": peak_rss_bytes(run),
                "children": run.max_children,
                "peak_tree_pss_bytes": float_or_nan(run.peak_of("tree_pss_bytes")),
                "epochs_per_s": epochs_per_second(run),
                "alone": ran_alone(run),
                "accuracy": final_metric(run, "accuracy"),
                "correct_prob": final_metric(run, "correct_prob"),
                "loss": final_metric(run, "loss"),
            }
        )
    return pd.DataFrame(rows, columns=RUN_TABLE_COLUMNS)


RUN_TABLE_COLUMNS = [
    "run_id",
    "variant",
    "model",
    "leak",
    "seed",
    "epochs_done",
    "epochs_planned",
    "status",
    "verdict",
    "onset",
    "stopped_at",
    "measure",
    "bytes_per_epoch",
    "ci_low",
    "ci_high",
    "per",
    "peak_rss_bytes",
    "children",
    "peak_tree_pss_bytes",
    "epochs_per_s",
    "alone",
    "accuracy",
    "correct_prob",
    "loss",
]


def format_run_table(table: pd.DataFrame) -> pd.DataFrame:
    """The per-run table as display strings, in the order variant, model, leak, seed.

    A verdict judged on another series than the worker's RSS names it; when a
    run started processes, the most it had at once and the tree's peak PSS
    stand beside the worker's peak RSS.
    """
    shown = pd.DataFrame(
        {
            "variant": table["variant"].astype(str),
            "model": table["model"],
            "leak": table["leak"],
            "seed": [MISSING if missing(seed) else str(int(seed)) for seed in table["seed"]],
            "epochs": [
                _epochs_cell(d, p, per)
                for d, p, per in zip(table["epochs_done"], table["epochs_planned"], table["per"])
            ],
            "status": table["status"],
            "verdict": [
                _verdict(v, m, onset, stop, per)
                for v, m, onset, stop, per in zip(
                    table["verdict"], table["measure"], table["onset"], table["stopped_at"], table["per"]
                )
            ],
            growth_header(table["per"]): [
                format_growth(b, lo, hi, per)
                for b, lo, hi, per in zip(table["bytes_per_epoch"], table["ci_low"], table["ci_high"], table["per"])
            ],
            "peak RSS": [format_bytes(v) for v in table["peak_rss_bytes"]],
            # A speed measured beside other runs is shown, marked, and left out of the speed figures.
            "epochs/s": [
                format_speed(v) + ("" if a else " (shared)") for v, a in zip(table["epochs_per_s"], table["alone"])
            ],
            "accuracy": [format_percent(v) for v in table["accuracy"]],
            "correct_prob": [format_percent(v) for v in table["correct_prob"]],
        }
    )
    if (table["children"] > 0).any():
        at = shown.columns.get_loc("peak RSS") + 1
        shown.insert(at, "peak tree PSS", [format_bytes(v) for v in table["peak_tree_pss_bytes"]])
        shown.insert(at, "children", [str(int(v)) for v in table["children"]])
    return shown.reset_index(drop=True)


def growth_header(pers: Sequence[str]) -> str:
    """ "growth per epoch (95% CI)", or "growth per epoch or window (95% CI)" beside a script judged per window."""
    return "growth per epoch or window (95% CI)" if "window" in set(pers) else "growth per epoch (95% CI)"


def _epochs_cell(done: int, planned: int | None, per: str) -> str:
    """ "12/12" for a loop; "12" for a script's marks; "12 windows" for its windows."""
    if per == "window":
        return f"{done} windows"
    return str(done) if missing(planned) else f"{done}/{int(planned)}"


def _verdict(verdict: str, measure: Any, onset: Any, stop: Any, per: str = "epoch") -> str:
    """ "leak from epoch 41", "flat (grew until epoch 30)", with the measure named when it is not RSS."""
    if onset is not None and not pd.isna(onset):
        verdict = f"{verdict} from {per} {int(onset)}"
    elif stop is not None and not pd.isna(stop):
        verdict = f"{verdict} (grew until {per} {int(stop)})"
    return verdict if measure in ("rss", None) or pd.isna(measure) else f"{verdict} ({measure_label(measure)})"
