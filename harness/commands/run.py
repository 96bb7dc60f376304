"""Run a training loop in a worker process and record its memory epoch by epoch.

The loop runs in a worker process; this process only records: one row per
epoch in epochs.csv, timed samples of the worker and every process it started
in samples.csv, metadata in meta.json, the loop's own output in worker.log, all
in a new directory RESULTS/<run-id>. The memory cap applies to the PSS of the
worker with all its processes; whatever the ending, none of them outlives the
run. At the end it prints the growth verdict (on --measure: rss, the worker's
own, by default) and, on the last line, that directory.

VARIANT is a registered name (see `python -m harness list`), package.module:Class,
or path/to/file.py:Class of a class following harness.interface.TrainingLoop.

Or a training script, unchanged: --script PATH [--] [ARGS ...] (or -m MODULE
[--] [ARGS ...]) runs it as `python PATH ARGS` would, in the worker, under the
same cap, sampling, timeout and tracing. Everything after PATH goes to the
script, so put leakbench's own options before --script. Each call of
`harness.mark_epoch(**metrics)` in the script ends an epoch; a script that
marks none is judged per window of its timed samples (--window SECONDS,
default 1), and the verdict is then growth per window. The script's own exit
status is recorded: non-zero is `failed`.

Exit codes:
  0    completed every epoch
  2    usage error (bad option, unknown variant or leak); nothing was written
  3    stopped: the memory of the worker and its processes (their PSS) passed the cap (--memory-cap)
  4    stopped: timed out (--timeout)
  5    the worker failed (the training code raised, a script exited non-zero, or the worker crashed)
  130  interrupted (Ctrl-C, SIGTERM, or SIGHUP from a closed terminal); what was recorded is kept
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from harness import recording
from harness.commands.argtypes import finite_number, key_value, whole_number
from harness.errors import UsageError
from harness.interface import (
    SEED_BATCH_SIZE,
    SEED_EPOCHS,
    SEED_LEARNING_RATE,
    RunConfig,
)
from harness.records import COMPLETED, FAILED
from harness.scripts import DEFAULT_WINDOW_S, Script, split_arguments
from harness.sizes import ACCEPTED, parse_size
from harness.worker import gc_readings, process, tracing

STDERR_TAIL_SHOWN = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``run``."""
    parser.add_argument("--variant", metavar="VARIANT", help="registered name, package.module:Class or file.py:Class")
    parser.add_argument("--leak", metavar="LEAK", help="switch on one of the variant's leaks (see `list`)")
    parser.add_argument(
        "--epochs", type=whole_number, default=SEED_EPOCHS, metavar="N", help=f"epochs to train (default {SEED_EPOCHS})"
    )
    parser.add_argument(
        "--seed", type=whole_number, default=0, metavar="S", help="seed of the data and initial weights (default 0)"
    )
    parser.add_argument(
        "--fc-only", action="store_true", help="train only the fully connected layers (the seed's 2nd column)"
    )
    parser.add_argument(
        "--option",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="a variant option, repeatable, e.g. --option threads=1 for torch; VALUE is read as "
        "JSON when it parses (1, 0.5, true), else as text",
    )
    parser.add_argument(
        "--learning-rate",
        type=finite_number,
        default=SEED_LEARNING_RATE,
        metavar="LR",
        help=f"default {SEED_LEARNING_RATE}",
    )
    parser.add_argument(
        "--batch-size",
        type=whole_number,
        default=SEED_BATCH_SIZE,
        metavar="B",
        help=f"default {SEED_BATCH_SIZE} (the whole training set)",
    )
    parser.add_argument(
        "--memory-cap",
        metavar="SIZE",
        help="stop the run when the PSS of the worker and every process it started passes SIZE, e.g. 300MiB "
        "(default: the smaller of 4 GiB and half the available memory)",
    )
    parser.add_argument(
        "--measure",
        default="rss",
        metavar="MEASURE",
        help="the memory the verdict judges: rss (the worker's own, default), tree-pss or tree-uss (the worker "
        "and every process it started), heap (the Python heap; needs --trace)",
    )
    parser.add_argument(
        "--timeout", type=finite_number, metavar="SECONDS", help="stop the worker after SECONDS (default: none)"
    )
    parser.add_argument(
        "--sample-interval",
        type=finite_number,
        default=recording.DEFAULT_SAMPLE_INTERVAL_S,
        metavar="SECONDS",
        help=f"seconds between RSS samples (default {recording.DEFAULT_SAMPLE_INTERVAL_S})",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="where run directories go (default ./results)",
    )
    parser.add_argument(
        "--trace", action="store_true", help="trace allocations (tracemalloc; slower) and write trace.json"
    )
    parser.add_argument(
        "--trace-frames",
        type=whole_number,
        default=tracing.FRAMES,
        metavar="N",
        help=f"frames kept per traced allocation (default {tracing.FRAMES}); fewer is faster, "
        "1 suits loops that allocate in their own code",
    )
    parser.add_argument(
        "--gc-collect",
        default=gc_readings.DEFAULT_POLICY,
        metavar="WHEN",
        help="garbage collection before each epoch's reading: auto (default: freeze what lives after epoch 1, then "
        "collect only when the collector found cyclic garbage since the last reading), always (a full collection "
        "every epoch), never",
    )
    parser.add_argument(
        "--lines",
        nargs="*",
        metavar="TARGET",
        help="profile RSS line by line (memory-profiler's model; native memory too) in train_epoch and each "
        "TARGET function (package.module:name or path/file.py:Class.method), reading RSS at every line "
        "they run, and write lines.json; `explain` shows the lines whose growth persists. Default: train_epoch "
        "alone. Measured cost about 1.3-1.9x an epoch (memory-profiler's own profiler: 2.6-8x; the README's "
        "table): name the helpers train_epoch calls, not functions run per sample or element",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress line and no summary: print only the run directory"
    )
    parser.add_argument(
        "--window",
        type=finite_number,
        metavar="SECONDS",
        help=f"judge a script per window of SECONDS of its samples, whatever it marks (default: its mark_epoch "
        f"calls, or windows of {DEFAULT_WINDOW_S:g} s when it makes none)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--script",
        nargs=argparse.REMAINDER,
        metavar="PATH [--] ARGS",
        help="run a training script as `python PATH ARGS` would; everything after PATH is the script's (last option)",
    )
    target.add_argument(
        "-m",
        dest="module",
        nargs=argparse.REMAINDER,
        metavar="MODULE [--] ARGS",
        help="run a module as `python -m MODULE ARGS` would; everything after MODULE is the script's (last option)",
    )
    # What follows a "--" right after the script: argparse keeps it apart from --script's own list.
    parser.add_argument("script_rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def _script_request(args: argparse.Namespace, cap: int | None) -> recording.RunRequest:
    """The request of a script run (--script or -m); UsageError for options that belong to a loop."""
    given = args.script if args.script is not None else args.module
    target, script_args = split_arguments(given, args.script_rest)
    loop_options = [
        flag
        for flag, value, default in (
            ("--variant", args.variant, None),
            ("--leak", args.leak, None),
            ("--epochs", args.epochs, SEED_EPOCHS),
            ("--seed", args.seed, 0),
            ("--fc-only", args.fc_only, False),
            ("--option", args.option, []),
            ("--learning-rate", args.learning_rate, SEED_LEARNING_RATE),
            ("--batch-size", args.batch_size, SEED_BATCH_SIZE),
        )
        if value != default
    ]
    if loop_options:
        raise UsageError(
            f"{loop_options[0]} belongs to a loop, not to a script: pass the script's own options after its PATH"
        )
    script = Script(path=target) if args.script is not None else Script(module=target)
    return recording.RunRequest(
        variant=script.label,
        config=None,
        script=Script(script.path, script.module, script_args),
        **_recording(args, cap),  # lines: refused by the request, a script has no train_epoch
    )


def _recording(args: argparse.Namespace, cap: int | None) -> dict[str, Any]:
    """How a run is recorded, the same for a loop and a script: where, the cap, sampling, tracing, gc, lines."""
    return {
        "results_dir": args.results,
        "memory_cap_bytes": cap,
        "timeout_s": args.timeout,
        "sample_interval_s": args.sample_interval,
        "trace": args.trace,
        "trace_frames": args.trace_frames,
        "measure": args.measure,
        "window_s": args.window,
        "gc_collect": args.gc_collect,
        "lines": None if args.lines is None else tuple(args.lines),
    }


def request_from_args(args: argparse.Namespace) -> recording.RunRequest:
    """Check the options and build the run request (UsageError on bad values; writes nothing)."""
    cap = None
    if args.memory_cap is not None:
        cap = parse_size(args.memory_cap)
        if cap <= 0:
            raise UsageError(f"invalid memory cap {args.memory_cap!r}: it must be more than 0 ({ACCEPTED})")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"timeout must be a positive number of seconds, got {args.timeout:g}")
    if args.script is not None or args.module is not None:
        return _script_request(args, cap)
    if args.script_rest:
        raise UsageError(
            f"unexpected arguments {' '.join(args.script_rest)!r}: only a script (--script PATH) takes them"
        )
    if args.variant is None:
        raise UsageError("a variant or a script is required: --variant VARIANT, --script PATH or -m MODULE")
    config = RunConfig(
        seed=args.seed,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        leak=args.leak,
        options=dict(args.option) | ({"fc_only": True} if args.fc_only else {}),
    )
    return recording.RunRequest(variant=args.variant, config=config, **_recording(args, cap))


def run(args: argparse.Namespace) -> int:
    """Record one run; print the summary and the run directory; return the status's exit code."""
    parent = os.environ.pop(process.PARENT_PID_VARIABLE, "")
    if parent.isdigit():  # started by a sweep: SIGTERM (an interrupted run) when it dies, even by SIGKILL
        process.die_with_parent(int(parent), signal.SIGTERM)
    request = request_from_args(args)
    planned = request.config.epochs if request.config is not None else None
    progress = recording.Progress(planned, sys.stderr, enabled=not args.quiet and sys.stderr.isatty())
    outcome = recording.execute(request, progress=progress)
    if not args.quiet:
        lines = recording.describe_outcome(outcome)
        print(lines[0], file=sys.stdout if outcome.status == COMPLETED else sys.stderr)
        if outcome.status == FAILED and outcome.stop:
            tail = outcome.stop.get("stderr_tail", [])[-STDERR_TAIL_SHOWN:]
            if tail:
                print("last lines of worker.log:", file=sys.stderr)
                for line in tail:
                    print(f"  {line}", file=sys.stderr)
        for line in lines[1:]:
            print(line)
    print(outcome.run_dir)
    return outcome.exit_code
