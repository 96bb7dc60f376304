"""The bench's report as text and as JSON: the table with its footer, and the ``--json`` file."""

from __future__ import annotations

from typing import Any

from harness.bench.footprint import Footprint
from harness.bench.plan import OVERHEAD_EPOCHS, OVERHEAD_VARIANT
from harness.bench.results import Report, Spread
from harness.bench.turns import TURN_S
from harness.formatting import MISSING, format_percent, format_size, format_speed, format_times, text_table

SCHEMA_VERSION = 1  # the --json file; 1: first version


HEADER = ("variant", "epochs", "epochs/s", "min-max", "vs {baseline}", "GFLOP/s", "of limit")


def format_table(report: Report) -> str:
    """The table, then the limit, overhead and method lines; no trailing newline."""
    header = [name.format(baseline=report.baseline) for name in HEADER]
    cells: list[list[str]] = []
    skipped: list[tuple[str, str]] = []
    for row in report.rows:
        spread = row.spread
        if row.skipped is not None or spread is None:
            skipped.append((row.variant, row.skipped or "not measured"))
            continue
        cells.append(
            [
                row.variant,
                f"{row.warmup}+{row.epochs}",
                format_speed(spread.median),
                f"{format_speed(spread.low)}-{format_speed(spread.high)}",
                format_times(row.ratio),
                f"{row.gflops:.3g}" if row.gflops is not None else MISSING,
                format_percent(row.share),
            ]
        )
    # Skipped variants go under the table, their names aligned with the measured ones.
    width = max(len(name) for name in [header[0], *(row.variant for row in report.rows)])
    lines = text_table(
        [header[0].ljust(width), *header[1:]],
        [[c[0].ljust(width), *c[1:]] for c in cells],
        right=[False] + [True] * (len(header) - 1),
    ).splitlines()
    lines += [f"{variant.ljust(width)}  skipped: {reason}" for variant, reason in skipped]
    lines += footer_lines(report)
    return "\n".join(lines)


def footer_lines(report: Report) -> list[str]:
    """The lines under the table: FLOPs, the machine limit, the overhead, how it was measured."""
    limit = report.limit_spread
    size = report.matmul_size
    threads = f"{report.threads} thread{'s' if report.threads != 1 else ''}"
    machine = (
        f"machine limit: float64 {size}x{size} matmul on {threads}: {limit.median / 1e9:.3g} GFLOP/s"
        f" (min-max {limit.low / 1e9:.3g}-{limit.high / 1e9:.3g})"
    )
    if report.flops_per_epoch is None:
        lines = ["FLOPs per epoch: as each loop says (flops_per_epoch()); not the same for every variant", machine]
    else:
        lines = [
            f"FLOPs per epoch: {report.flops_per_epoch:,} (matrix products counted from the layer shapes,"
            f" the same for every variant{'; fc_only' if report.fc_only else ''})",
            f"{machine}, {format_speed(limit.median / report.flops_per_epoch)} epochs/s at 100%",
        ]
    if report.overhead is not None:
        bare, in_run = Spread.of(report.overhead.bare), Spread.of(report.overhead.in_run)
        overhead = report.overhead.ratio
        lines.append(
            f"harness overhead: {OVERHEAD_VARIANT} under `run` {format_speed(in_run.median)} epochs/s"
            f" vs bare {format_speed(bare.median)}: {overhead.median:.3f}x"
            f" (min-max {overhead.low:.3f}-{overhead.high:.3f}; {OVERHEAD_EPOCHS:,} epochs each, taking turns every"
            f" {TURN_S * 1e3:g} ms on one CPU; wall time between epochs, recording included)"
        )
    if report.footprint is not None:
        lines.append(footprint_line(report.footprint))
    load = "/".join(f"{value:.2f}" for value in report.load_average) or "unknown"
    lines.append(
        f"epochs = warm-up+measured; epochs/s = measured epochs / their train_epoch time, median of"
        f" {report.repeat} interleaved round{'s' if report.repeat != 1 else ''}, each in a fresh process;"
        f" {threads}; load average (1 min) at start/end {load}"
    )
    return lines


def footprint_line(footprint: Footprint) -> str:
    """The worker's memory before its loop, against bare Python and Python with NumPy."""
    heavy = [name for name in ("pandas", "matplotlib") if name in footprint.worker_loaded]
    loaded = f"it has loaded {' and '.join(heavy)}" if heavy else "no pandas or matplotlib"
    numpy = "numpy loaded" if "numpy" in footprint.worker_loaded else "numpy not loaded"
    return (
        f"worker baseline RSS (harness loaded, before the loop is built): {format_size(footprint.worker)}"
        f" ({numpy}, {loaded}); bare python {format_size(footprint.python)},"
        f" python -c 'import numpy' {format_size(footprint.numpy)}"
    )


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data, with :data:`SCHEMA_VERSION`."""
    rows = []
    for row in report.rows:
        spread = row.spread
        rows.append(
            {
                "variant": row.variant,
                "warmup_epochs": row.warmup,
                "epochs": row.epochs,
                "skipped": row.skipped,
                "epochs_per_s": list(row.rates),
                "median": spread.median if spread else None,
                "min": spread.low if spread else None,
                "max": spread.high if spread else None,
                "ratio_to_baseline": row.ratio,
                "gflops_per_s": row.gflops,
                "share_of_limit": row.share,
                "flops_per_epoch": row.flops_per_epoch,
            }
        )
    overhead = None
    if report.overhead is not None:
        overhead = {
            "variant": OVERHEAD_VARIANT,
            "bare_epochs_per_s": list(report.overhead.bare),
            "run_epochs_per_s": list(report.overhead.in_run),
            "ratio_median": report.overhead.ratio.median,
            "epochs": OVERHEAD_EPOCHS,
            "turn_s": TURN_S,  # the run and a bare loop took turns on one CPU (harness.bench.turns)
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "baseline": report.baseline,
        "threads": report.threads,
        "repeat": report.repeat,
        "fc_only": report.fc_only,
        "flops_per_epoch": report.flops_per_epoch,
        "matmul_size": report.matmul_size,
        "limit_flops_per_s": list(report.limit),
        "load_average": list(report.load_average),
        "variants": rows,
        "overhead": overhead,
        "footprint": report.footprint.to_dict() if report.footprint is not None else None,
    }
