"""Export a recorded run for another tool: --mprof writes memory-profiler's mprof .dat file, for `mprof plot`.

The .dat file holds the run's timed samples of the worker's RSS (MEM lines, in
MiB, on the clock of the run's start), epoch marks (FUNC lines "epoch_N": the
epoch's start and end with the RSS at each; all epochs up to --epoch-marks,
else that many spread evenly, first and last included, since `mprof plot` puts
one bracket and one legend entry per mark) and, when the worker started
processes, their summed RSS (CHLD lines "descendants").  Then

    mprof plot mprofile_<run-id>.dat -o run.png

draws the run as memory-profiler draws its own recordings.  Nothing is written
into the run directory.

Exit status: 0; 2 for a run directory that cannot be read or a file that cannot be written.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pandas as pd

from harness.commands.argtypes import whole_number
from harness.errors import UsageError
from harness.storage import Run, load_run

EPOCH_MARKS = 20
MiB = 1024**2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: the format, the run directory, the output file."""
    formats = parser.add_mutually_exclusive_group(required=True)
    formats.add_argument(
        "--mprof", action="store_true", help="memory-profiler's mprof .dat format (`mprof plot FILE` draws it)"
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory, e.g. results/<run-id>")
    parser.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="where to write (default ./mprofile_<run-id>.dat)"
    )
    parser.add_argument(
        "--epoch-marks",
        type=whole_number,
        default=EPOCH_MARKS,
        metavar="N",
        help=f"at most N epochs marked, spread evenly (default {EPOCH_MARKS}; 0: none)",
    )


def marked_epochs(epochs: list[int], most: int) -> list[int]:
    """All of ``epochs`` when there are at most ``most``, else ``most`` of them spread evenly, first and last in."""
    if most <= 0 or not epochs:
        return []
    if len(epochs) <= most:
        return list(epochs)
    if most == 1:
        return [epochs[-1]]
    picks = {round(i * (len(epochs) - 1) / (most - 1)) for i in range(most)}
    return [epochs[i] for i in sorted(picks)]


def _clock(run: Run) -> float:
    """Seconds since 1970 at t_s = 0 (the first epoch's start): the run's start, after its earliest sample."""
    try:
        started = datetime.fromisoformat(str(run.meta["started_at"]).replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"{run.path}: meta.json started_at {run.meta['started_at']!r} is not an ISO 8601 time"
        ) from None
    times = pd.to_numeric(run.samples["t_s"], errors="coerce").dropna()
    earliest = float(times.min()) if not times.empty else 0.0
    return started - min(earliest, 0.0)


def mprof_lines(run: Run, epoch_marks: int = EPOCH_MARKS) -> Iterator[str]:
    """The lines of the .dat file: CMDLINE, MEM per sample (or per epoch without samples), FUNC marks, CHLD."""
    zero = _clock(run)
    leak = f" --leak {run.meta['leak']}" if run.meta.get("leak") else ""
    yield f"CMDLINE leakbench run --variant {run.meta.get('variant')}{leak} ({run.meta.get('run_id')})\n"
    samples = run.samples.dropna(subset=["t_s", "rss_bytes"]).sort_values("t_s")
    epochs = run.epochs.dropna(subset=["epoch", "rss_bytes", "elapsed_s", "epoch_s"]).sort_values("epoch")
    if not samples.empty:
        points = zip(samples["t_s"], samples["rss_bytes"])
    else:
        points = zip(epochs["elapsed_s"], epochs["rss_bytes"])
    for t, rss in points:
        yield f"MEM {int(rss) / MiB:.6f} {zero + float(t):.4f}\n"
    rows = {int(row.epoch): row for row in epochs.itertuples(index=False)}
    numbers = sorted(rows)
    first_rss = int(samples["rss_bytes"].iloc[0]) if not samples.empty else None
    for epoch in marked_epochs(numbers, epoch_marks):
        row = rows[epoch]
        before = rows.get(epoch - 1)
        start_rss = int(before.rss_bytes) if before is not None else (first_rss or int(row.rss_bytes))
        end, took = float(row.elapsed_s), float(row.epoch_s)
        if not (math.isfinite(end) and math.isfinite(took)):
            continue
        yield (
            f"FUNC epoch_{epoch} {start_rss / MiB:.6f} {zero + end - took:.4f} "
            f"{int(row.rss_bytes) / MiB:.6f} {zero + end:.4f} 0\n"
        )
    children = samples.dropna(subset=["children_rss_bytes"])
    if run.max_children > 0:
        for t, rss in zip(children["t_s"], children["children_rss_bytes"]):
            yield f"CHLD descendants {int(rss) / MiB:.6f} {zero + float(t):.4f}\n"


def run(args: argparse.Namespace) -> int:
    """Read the run, write the .dat file, print its path."""
    loaded = load_run(args.run_dir)
    if loaded.samples.empty and loaded.epochs.empty:
        raise UsageError(f"{args.run_dir}: the run recorded no samples and no epochs: nothing to export")
    output = args.output or Path(f"mprofile_{loaded.path.name}.dat")
    try:
        with open(output, "w", encoding="utf-8") as handle:
            handle.writelines(mprof_lines(loaded, args.epoch_marks))
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    print(output)
    return 0
