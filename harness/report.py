"""Turn recorded runs into tables: the per-run table, the seed's table, curves and allocation sites.

Pure: runs in, pandas DataFrames out.  Nothing here draws or writes; :mod:`harness.plots`
draws these data and :mod:`harness.render` writes them out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import UsageError
from harness.sizes import format_size
from harness.storage import Run, load_run

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
NO_LEAK = "none"
# A leak run may end at the memory cap: that is its expected ending, not a failure.
FINISHED_STATUSES = ("completed", "memory_cap")


def find_run_dirs(paths: Iterable[Path | str]) -> list[Path]:
    """Run directories named directly, or found one level below a results directory, sorted by name."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if (path / "meta.json").is_file():
            found.append(path)
        elif path.is_dir():
            below = sorted(p for p in path.iterdir() if (p / "meta.json").is_file())
            if not below:
                raise UsageError(
                    f"{path}: no run directories in it (a run directory holds meta.json)"
                )
            found.extend(below)
        else:
            raise UsageError(f"{path}: not a run directory or a results directory")
    # The same run named twice (directly and through its results directory) counts once.
    unique = {p.resolve(): p for p in found}
    return sorted(unique.values(), key=lambda p: p.name)


def load_runs(
    paths: Iterable[Path | str], skipped: list[str] | None = None
) -> list[Run]:
    """Load every run found under ``paths`` (see :func:`find_run_dirs`).

    A run named directly must load (UsageError otherwise).  One found inside a
    results directory that cannot be read (another schema version, a damaged
    meta.json) is left out and its reason appended to ``skipped`` when given, so
    one bad directory does not hide the report of all the others.
    """
    given = [Path(p) for p in paths]
    named = {p.resolve() for p in given if (p / "meta.json").is_file()}
    runs = []
    for run_dir in find_run_dirs(given):
        try:
            runs.append(load_run(run_dir))
        except UsageError as exc:
            if run_dir.resolve() in named or skipped is None:
                raise
            skipped.append(str(exc))
    return runs


def model_of(run: Run) -> str:
    """``"fc-only"`` when only the fully connected layers learn, else ``"CNN"``."""
    options = (run.meta.get("config") or {}).get("options") or {}
    return "fc-only" if options.get("fc_only") else "CNN"


def leak_of(run: Run) -> str:
    """The run's leak name, or ``"none"``."""
    return run.meta.get("leak") or NO_LEAK


def run_label(run: Run) -> str:
    """A short human name: variant, model when fc-only, leak when on, seed."""
    parts = [str(run.meta.get("variant"))]
    if model_of(run) == "fc-only":
        parts.append("fc-only")
    if leak_of(run) != NO_LEAK:
        parts.append(leak_of(run))
    parts.append(f"s{run.meta.get('seed')}")
    return " ".join(parts)


def growth_of(run: Run) -> dict[str, Any]:
    """The run's growth summary: the one stored in meta.json, else computed now from its epochs."""
    stored = run.meta.get("growth")
    if stored:
        return dict(stored)
    if run.epochs.empty:
        return {
            "verdict": "inconclusive",
            "bytes_per_epoch": math.nan,
            "ci_low": math.nan,
            "ci_high": math.nan,
        }
    # Imported here so the tables can be built for runs that were already analysed without it.
    from harness.growth import summarise_growth

    host = run.meta.get("host") or {}
    return summarise_growth(
        run.epochs,
        memory_cap_bytes=run.meta.get("memory_cap_bytes"),
        memory_total_bytes=host.get("memory_total_bytes"),
    )


def peak_rss_bytes(run: Run) -> float:
    """The largest resident size seen: epoch records, timed samples and the stop record."""
    candidates: list[float] = []
    for frame, column in (
        (run.epochs, "peak_rss_bytes"),
        (run.epochs, "rss_bytes"),
        (run.samples, "rss_bytes"),
    ):
        if column in frame and frame[column].notna().any():
            candidates.append(float(frame[column].max()))
    stop = run.meta.get("stop") or {}
    if stop.get("rss_bytes"):
        candidates.append(float(stop["rss_bytes"]))
    return max(candidates) if candidates else math.nan


def epochs_per_second(run: Run) -> float:
    """Finished epochs over the seconds spent in ``train_epoch``.

    The sum of ``epoch_s`` rather than the wall time: a traced run pauses between
    epochs for tracemalloc snapshots (tens of seconds), which is not the loop's speed.
    """
    if run.epochs.empty or "epoch_s" not in run.epochs:
        return math.nan
    busy = float(run.epochs["epoch_s"].sum())
    return len(run.epochs) / busy if busy > 0 else math.nan


def final_metric(run: Run, name: str) -> float:
    """The metric's value after the last finished epoch (NaN when not recorded)."""
    if run.epochs.empty or name not in run.epochs:
        return math.nan
    return float(run.epochs[name].iloc[-1])


def sort_runs(runs: Sequence[Run]) -> list[Run]:
    """Runs in reading order: variant (registry order), model, fixed before leaky, length, seed, id."""
    order = {name: index for index, name in enumerate(ordered_variants(runs))}
    return sorted(
        runs,
        key=lambda r: (
            order[str(r.meta.get("variant"))],
            model_of(r) != "CNN",
            leak_of(r) != NO_LEAK,
            leak_of(r),
            -int(r.meta.get("epochs_planned") or 0),
            int(r.meta.get("seed") or 0),
            str(r.meta.get("run_id")),
        ),
    )


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
                "epochs_planned": int(run.meta.get("epochs_planned", len(run.epochs))),
                "status": run.meta.get("status"),
                "verdict": growth.get("verdict"),
                "bytes_per_epoch": _float(growth.get("bytes_per_epoch")),
                "ci_low": _float(growth.get("ci_low")),
                "ci_high": _float(growth.get("ci_high")),
                "peak_rss_bytes": peak_rss_bytes(run),
                "epochs_per_s": epochs_per_second(run),
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
    "bytes_per_epoch",
    "ci_low",
    "ci_high",
    "peak_rss_bytes",
    "epochs_per_s",
    "accuracy",
    "correct_prob",
    "loss",
]


def format_run_table(table: pd.DataFrame) -> pd.DataFrame:
    """The per-run table as display strings, in the order variant, model, leak, seed."""
    shown = pd.DataFrame(
        {
            "variant": table["variant"].astype(str),
            "model": table["model"],
            "leak": table["leak"],
            "seed": table["seed"].astype(str),
            "epochs": [
                f"{d}/{p}"
                for d, p in zip(table["epochs_done"], table["epochs_planned"])
            ],
            "status": table["status"],
            "verdict": table["verdict"],
            "growth per epoch (95% CI)": [
                format_growth(b, lo, hi)
                for b, lo, hi in zip(
                    table["bytes_per_epoch"], table["ci_low"], table["ci_high"]
                )
            ],
            "peak RSS": [format_bytes(v) for v in table["peak_rss_bytes"]],
            "epochs/s": [format_rate(v) for v in table["epochs_per_s"]],
            "accuracy": [format_percent(v) for v in table["accuracy"]],
            "correct_prob": [format_percent(v) for v in table["correct_prob"]],
        }
    )
    return shown.reset_index(drop=True)


def seed_runs(runs: Sequence[Run], variant: str = "numpy") -> list[Run]:
    """The variant's leak-free runs planned for the seed's 500 epochs (or, if there are none, all of them)."""
    mine = [
        r for r in runs if r.meta.get("variant") == variant and leak_of(r) == NO_LEAK
    ]
    # A short leak-free run (the partner of a leak run) is not one of the seed's repeated runs.
    full = [r for r in mine if int(r.meta.get("epochs_planned") or 0) >= SEED_EPOCHS]
    return full or mine


def seed_curves(
    runs: Sequence[Run], variant: str = "numpy", metric: str = "correct_prob"
) -> pd.DataFrame:
    """Long table (model, seed, run_id, epoch, elapsed_s, value) of :func:`seed_runs`, for the seed's plots."""
    frames = []
    for run in seed_runs(runs, variant):
        if metric not in run.epochs:
            continue
        frame = run.epochs[["epoch", "elapsed_s", metric]].rename(
            columns={metric: "value"}
        )
        frames.append(
            frame.assign(
                model=model_of(run),
                seed=run.meta.get("seed"),
                run_id=run.meta.get("run_id"),
            )
        )
    if not frames:
        return pd.DataFrame(
            columns=["model", "seed", "run_id", "epoch", "elapsed_s", "value"]
        )
    curves = pd.concat(frames, ignore_index=True)
    return curves[["model", "seed", "run_id", "epoch", "elapsed_s", "value"]]


def mean_curves(curves: pd.DataFrame) -> pd.DataFrame:
    """Per model and epoch: mean value, mean elapsed seconds, and how many seeds reached that epoch."""
    if curves.empty:
        return pd.DataFrame(columns=["model", "epoch", "value", "elapsed_s", "runs"])
    grouped = curves.groupby(["model", "epoch"], sort=True)
    means = grouped.agg(
        value=("value", "mean"), elapsed_s=("elapsed_s", "mean"), runs=("value", "size")
    )
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
            format_rate(theirs["epochs_per_s"]),
            "1x",
            format_percent(theirs["prob_200"]),
            format_percent(theirs["prob_500"])
            if theirs["prob_500"] is not None
            else "never reached (its leak)",
        ]
        columns[f"{model}: ours ({variant})"] = [
            format_seconds(ours["time_200_s"]),
            format_rate(ours["epochs_per_s"]),
            _times(speedup),
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
    time_first = float(at_first["elapsed_s"].mean()) if len(at_first) else math.nan
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


@dataclass(frozen=True)
class MemoryPanel:
    """One variant's leaky and fixed runs for the headline figure, with legend texts giving their growth."""

    variant: str
    leaky: list[Run]
    fixed: list[Run]
    leaky_label: str = "leak"
    fixed_label: str = "fixed"


def memory_panels(runs: Sequence[Run]) -> list[MemoryPanel]:
    """Per variant: its leaky runs and the fixed runs to set beside them (CNN model only).

    Untraced runs are preferred when there are any (tracemalloc adds its own memory
    and a jump at the baseline snapshot), and fixed runs with the same planned
    epochs as a leaky run, so a 12-epoch leak is not drawn against a 500-epoch run;
    without such runs all are shown.
    """
    panels = []
    for variant in ordered_variants(runs):
        mine = [
            r
            for r in runs
            if r.meta.get("variant") == variant
            and model_of(r) == "CNN"
            and not r.epochs.empty
        ]
        mine = [r for r in mine if not r.meta.get("trace")] or mine
        leaky = [r for r in mine if leak_of(r) != NO_LEAK]
        fixed = [r for r in mine if leak_of(r) == NO_LEAK]
        planned = {r.meta.get("epochs_planned") for r in leaky}
        matching = [r for r in fixed if r.meta.get("epochs_planned") in planned]
        fixed = matching or fixed
        if leaky or fixed:
            leaks = ", ".join(sorted({leak_of(r) for r in leaky}))
            panels.append(
                MemoryPanel(
                    variant,
                    leaky,
                    fixed,
                    f"leak: {leaks}{_growth_note(leaky)}",
                    f"fixed{_growth_note(fixed)}",
                )
            )
    return panels


def _growth_note(runs: Sequence[Run]) -> str:
    """`` (3 runs, +23.3 MiB/epoch)``: how many runs and their median growth, for a legend."""
    rates = [_float(growth_of(r).get("bytes_per_epoch")) for r in runs]
    rates = [v for v in rates if not math.isnan(v)]
    parts = [f"{len(runs)} runs"] if len(runs) > 1 else []
    if rates:
        parts.append(f"{format_bytes(float(np.median(rates)), signed=True)}/epoch")
    return f" ({', '.join(parts)})" if parts else ""


def ordered_variants(runs: Sequence[Run]) -> list[str]:
    """Variants in the registry's order, then any others (users' own) by name."""
    from variants.registry import VARIANTS

    present = {str(r.meta.get("variant")) for r in runs}
    known = [name for name in VARIANTS if name in present]
    return known + sorted(present - set(known))


def cap_hit(run: Run) -> tuple[int, float, float] | None:
    """(epoch in progress, RSS at the stop, cap) when the memory cap stopped the run, else None."""
    if run.meta.get("status") != "memory_cap":
        return None
    stop = run.meta.get("stop") or {}
    last = int(stop.get("epoch") or len(run.epochs))
    rss = _float(stop.get("rss_bytes"))
    cap = _float(run.meta.get("memory_cap_bytes"))
    return last + 1, rss if not math.isnan(rss) else cap, cap


def trace_table(run: Run, top: int = 10) -> pd.DataFrame:
    """The run's allocation sites that grew most (file, line, bytes and blocks gained), largest first."""
    sites = (run.trace or {}).get("sites") or []
    rows = sorted(sites, key=lambda s: s.get("size_diff", 0), reverse=True)[:top]
    return pd.DataFrame(
        {
            "site": [f"{_short_path(s['file'])}:{s['line']}" for s in rows],
            "grew": [format_bytes(s.get("size_diff", 0), signed=True) for s in rows],
            "blocks gained": [f"{int(s.get('count_diff', 0)):+,d}" for s in rows],
            "size now": [format_bytes(s.get("size", 0)) for s in rows],
        },
        columns=["site", "grew", "blocks gained", "size now"],
    )


def growing_types(run: Run, top: int = 5) -> str:
    """The object types whose live counts grew most: ``"list +2,355, tuple +396"`` (empty if none grew)."""
    types = (run.trace or {}).get("types") or []
    grown = sorted(
        (t for t in types if t.get("count_diff", 0) > 0),
        key=lambda t: t["count_diff"],
        reverse=True,
    )
    return ", ".join(f"{t['type']} {int(t['count_diff']):+,d}" for t in grown[:top])


def traced_runs(runs: Sequence[Run]) -> list[Run]:
    """The runs that carry a trace.json with allocation sites."""
    return [r for r in runs if r.trace and r.trace.get("sites")]


def pick_run(runs: Sequence[Run], wanted: str | None) -> Run | None:
    """The run whose id or directory matches ``wanted``; by default the most telling leaky run.

    By default: an untraced leaky run (a traced one pauses for snapshots, which
    dominate its time series), the one with the longest epochs, so the most
    samples fall inside each epoch; else any run with samples.
    """
    if wanted:
        for run in runs:
            if wanted in (run.meta.get("run_id"), Path(run.path).name, str(run.path)):
                return run
        names = ", ".join(str(r.meta.get("run_id")) for r in runs[:5])
        raise UsageError(
            f"--samples-run {wanted!r} is not among the reported runs (for example: {names})"
        )
    with_samples = [r for r in runs if not r.samples.empty and not r.epochs.empty]
    leaky = [r for r in with_samples if leak_of(r) != NO_LEAK]
    untraced = [r for r in leaky if not r.meta.get("trace")]
    chosen = untraced or leaky or with_samples
    if not chosen:
        return None
    return max(chosen, key=lambda r: float(r.epochs["epoch_s"].mean()))


# Display formats shared by the report and compare.


def format_bytes(value: float, signed: bool = False) -> str:
    """A size in binary units (``"3.1 MiB"``); with ``signed``, a leading + or -."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return ("+" if signed and value >= 0 else "") + format_size(value)


def format_growth(value: float, low: float, high: float) -> str:
    """Bytes per epoch with its interval in the value's unit: ``"+4.57 MiB (4.56 .. 4.58)"``."""
    if value is None or math.isnan(value):
        return "-"
    scale, unit = _unit(
        max(
            abs(value),
            abs(low) if not math.isnan(low) else 0,
            abs(high) if not math.isnan(high) else 0,
        )
    )
    if math.isnan(low) or math.isnan(high):
        return f"{value / scale:+.1f} {unit}"
    # Enough decimals that a narrow interval does not print as "4.6 .. 4.6", at most three.
    decimals = (
        0
        if unit == "B"
        else next(
            (d for d in (1, 2, 3) if f"{low / scale:.{d}f}" != f"{high / scale:.{d}f}"),
            3,
        )
    )
    return f"{value / scale:+.{decimals}f} {unit} ({low / scale:+.{decimals}f} .. {high / scale:+.{decimals}f})"


def _unit(size: float) -> tuple[float, str]:
    """The binary unit a size is best shown in, and its scale."""
    for scale, unit in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if size >= scale:
            return float(scale), unit
    return 1.0, "B"


def format_rate(value: float | None) -> str:
    """Epochs per second with three significant digits."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def format_seconds(value: float | None) -> str:
    """Seconds with three significant digits (``"1.00 s"``, ``"0.318 s"``, ``"517 s"``)."""
    if value is None or math.isnan(value):
        return "not reached"
    return f"{value:#.3g} s" if value < 100 else f"{value:,.0f} s"


def format_percent(value: float | None) -> str:
    """A fraction as a percentage with one decimal."""
    if value is None or math.isnan(value):
        return "-"
    return f"{100 * value:.1f} %"


def _times(ratio: float) -> str:
    """A speed ratio: ``"543x"``, ``"2.5x"``; ``"-"`` when unknown."""
    if math.isnan(ratio):
        return "-"
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2g}x"


def _with_spread(mean: float, sd: float, n: float) -> str:
    """``"97.6 % (sd 0.4, n=10)"``; ``"not reached"`` when no run got to that epoch."""
    if n == 0:
        return "not reached"
    text = format_percent(mean)
    if n > 1:
        return f"{text} (sd {100 * sd:.1f}, n={n:.0f})"
    return f"{text} (n=1)"


def _float(value: Any) -> float:
    """A number or NaN for a missing one."""
    return math.nan if value is None else float(value)


def _short_path(path: str) -> str:
    """The last two parts of a source path, enough to find the file and short enough for a table."""
    parts = Path(path).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else path
