"""The bench's report as text and as JSON: the table with its footer, and the ``--json`` file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.bench_figures import Report, Spread
from harness.bench_plan import OVERHEAD_VARIANT

SCHEMA_VERSION = 1  # the --json file; 1: first version


def format_rate(value: float) -> str:
    """Epochs/s to four significant figures at most: "1,013", "136.3", "0.853"."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_times(value: float) -> str:
    """A ratio: "1,163x", "11.5x", "7.43x", "1.00x", "0.134x", "0.00135x"."""
    if value >= 100:
        return f"{value:,.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    return f"{value:.2f}x" if value >= 1 else f"{value:.3g}x"


def _percent(value: float) -> str:
    return f"{100 * value:.3g}%"


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
                format_rate(spread.median),
                f"{format_rate(spread.low)}-{format_rate(spread.high)}",
                format_times(row.ratio) if row.ratio is not None else "-",
                f"{row.gflops:.3g}" if row.gflops is not None else "-",
                _percent(row.share) if row.share is not None else "-",
            ]
        )
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    widths[0] = max(len(name) for name in [header[0], *(row.variant for row in report.rows)])

    def line(values: Sequence[str]) -> str:
        first = values[0].ljust(widths[0])
        return "  ".join([first, *(value.rjust(width) for value, width in zip(values[1:], widths[1:]))]).rstrip()

    lines = [line(header), *(line(values) for values in cells)]
    lines += [f"{variant.ljust(widths[0])}  skipped: {reason}" for variant, reason in skipped]
    lines += footer_lines(report)
    return "\n".join(lines)


def footer_lines(report: Report) -> list[str]:
    """The lines under the table: FLOPs, the machine limit, the overhead, how it was measured."""
    limit = report.limit_spread
    size = report.matmul_size
    threads = f"{report.threads} thread{'s' if report.threads != 1 else ''}"
    lines = [
        (
            f"FLOPs per epoch: {report.flops_per_epoch:,} (matrix products counted from the layer shapes,"
            f" the same for every variant{'; fc_only' if report.fc_only else ''})"
        ),
        (
            f"machine limit: float64 {size}x{size} matmul on {threads}: {limit.median / 1e9:.3g} GFLOP/s"
            f" (min-max {limit.low / 1e9:.3g}-{limit.high / 1e9:.3g}),"
            f" {format_rate(limit.median / report.flops_per_epoch)} epochs/s at 100%"
        ),
    ]
    if report.overhead is not None:
        bare, in_run = Spread.of(report.overhead.bare), Spread.of(report.overhead.in_run)
        overhead = report.overhead.ratio
        lines.append(
            f"harness overhead: {OVERHEAD_VARIANT} under `run` {format_rate(in_run.median)} epochs/s"
            f" vs bare {format_rate(bare.median)}: {overhead.median:.3f}x"
            f" (min-max {overhead.low:.3f}-{overhead.high:.3f}; wall time after the warm-up, recording included)"
        )
    load = "/".join(f"{value:.2f}" for value in report.load_average) or "unknown"
    lines.append(
        f"epochs = warm-up+measured; epochs/s = measured epochs / their train_epoch time, median of"
        f" {report.repeat} interleaved round{'s' if report.repeat != 1 else ''}, each in a fresh process; {threads}; load average (1 min) at start/end {load}"
    )
    return lines


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
            }
        )
    overhead = None
    if report.overhead is not None:
        overhead = {
            "variant": OVERHEAD_VARIANT,
            "bare_epochs_per_s": list(report.overhead.bare),
            "run_epochs_per_s": list(report.overhead.in_run),
            "ratio_median": report.overhead.ratio.median,
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
    }
