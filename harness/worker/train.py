"""The training side of the worker: resolve the loop, build it, train it epoch by epoch, send the records.

This is the only place training code runs (see :mod:`harness.worker.protocol`
for the messages it sends).  SIGTERM and SIGINT from the parent stop the loop
between or inside epochs, after which the worker still sends its last records
and trace.

Processes the loop forks (a ``multiprocessing`` pool, data-loader workers) get
back the handlers SIGTERM and SIGINT had before ours (``os.register_at_fork``):
with ours they would only set a flag, and ``Pool.terminate()`` would wait for
them for ever.  The loop object is kept alive until the process exits
(``os._exit``): its finalisers, such as an open pool's, must not keep a
finished worker from ending; the keeper ends whatever it left running.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from harness import loops, records, sysinfo
from harness.errors import UsageError
from harness.interface import RunConfig
from harness.worker import protocol
from harness.worker.epochs import BadMetrics, EpochSender
from harness.worker.gc_readings import DEFAULT_POLICY, GcReadings
from harness.worker.lines import LineProfiler, profiled_functions
from harness.worker.protocol import Channel
from harness.worker.tracing import FRAMES, Tracer

TRACEBACK_LINES = 12  # lines of a training error's traceback sent to the parent


class StopRequested(BaseException):
    """Raised in train_epoch when the parent asks the worker to stop (a BaseException: loops should not catch it)."""


class _StopFlag:
    """Set by SIGTERM; raises StopRequested only while training code runs, so bookkeeping is never cut."""

    def __init__(self) -> None:
        self.requested = False
        self.in_epoch = False
        self.owner = os.getpid()
        self._previous: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self.in_epoch:
            raise StopRequested()

    def install(self) -> None:
        """Handle SIGTERM and SIGINT here; a process forked from this one gets the previous handlers back."""
        for signum in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: the parent decides, not the terminal
            self._previous[signum] = signal.signal(signum, self.handler)
        os.register_at_fork(after_in_child=self._restore_in_child)

    def _restore_in_child(self) -> None:
        if os.getpid() == self.owner:
            return
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)


# The loop built in this process, kept alive until it exits: see the module docstring.
_KEPT: list[Any] = []


def _error_fields(phase: str, exc: BaseException) -> dict[str, Any]:
    lines = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    if isinstance(exc, SystemExit):
        summary = f"the training code called sys.exit({exc.code!r})"
    else:
        summary = traceback.format_exception_only(type(exc), exc)[-1].strip()
    return {
        "phase": phase,
        "exception": summary,
        "traceback": lines[-TRACEBACK_LINES:],
        "memory_error": isinstance(exc, MemoryError),
    }


def check(
    channel: Channel,
    variant: str,
    leak: str | None,
    config: dict[str, Any] | None = None,
    lines: list[str] | None = None,
) -> int:
    """Resolve the variant and the leak (the config's options and the --lines targets, when given); report a verdict."""
    try:
        cls = loops.load_loop_class(variant, leak, None if config is None else RunConfig.from_dict(config))
        if lines is not None:
            profiled_functions(cls, lines)
    except UsageError as exc:
        channel.send(protocol.CHECK, ok=False, message=str(exc))
        return 0
    channel.send(
        protocol.CHECK, ok=True, description=str(getattr(cls, "DESCRIPTION", "")).strip(), leaks=loops.class_leaks(cls)
    )
    return 0


def run(channel: Channel, job: dict[str, Any]) -> int:
    """Build the loop, train ``config.epochs`` epochs, send one record per epoch."""
    stop = _StopFlag()
    stop.install()
    config = RunConfig.from_dict(job["config"])
    trace_path = job.get("trace_path")
    tracer = None
    if trace_path:
        # The parent leaves the tracer's child out of the tree's figures and the cap, and still ends it.
        announce = lambda pid, ended: channel.send(protocol.TRACER, pid=pid, ended=ended)  # noqa: E731
        frames = job.get("trace_frames", FRAMES)
        tracer = Tracer(Path(trace_path), config.epochs, frames, (_KEPT,), announce, lambda: stop.requested)
    readings = GcReadings(job.get("gc_collect", DEFAULT_POLICY))
    if tracer is not None:
        tracer.start()  # before the import, so building the loop is traced too

    phase = "loading the variant"
    try:
        cls = loops.load_loop_class(job["variant"], config.leak)
        profiled = profiled_functions(cls, job.get("lines") or []) if job.get("lines_path") else None
        phase = "building the loop"
        loop = cls(config)
        _KEPT.append(loop)
    except UsageError as exc:
        channel.send(protocol.ERROR, phase=phase, exception=str(exc), traceback=[], memory_error=False)
        return records.USAGE_EXIT_CODE
    except BaseException as exc:  # noqa: BLE001 -- anything the user's code raises, SystemExit included
        traceback.print_exc()
        channel.send(protocol.ERROR, **_error_fields(phase, exc))
        return 1

    profiler = LineProfiler(Path(job["lines_path"]), config.epochs, profiled) if profiled is not None else None
    if profiler is not None:
        profiler.start()
    epoch = 0
    t0 = time.monotonic()
    channel.send(protocol.STARTED, t0=t0, pid=os.getpid(), versions=sysinfo.loaded_versions())
    sender = EpochSender(channel, tracer, t0, readings)
    try:
        phase = "training"
        for epoch in range(1, config.epochs + 1):
            started = time.monotonic()
            stop.in_epoch = True
            if stop.requested:
                raise StopRequested()
            metrics = loop.train_epoch(epoch) if profiler is None else profiler.call(loop.train_epoch, epoch)
            stop.in_epoch = False
            try:
                sender.send(metrics, started, time.monotonic())
            except BadMetrics as exc:
                print(f"leakbench: epoch {epoch}: {exc}", file=sys.stderr)
                channel.send(
                    protocol.ERROR, phase=f"epoch {epoch}", exception=str(exc), traceback=[], memory_error=False
                )
                return 1
            if profiler is not None:
                profiler.after_epoch(epoch)  # after the tracer's (in the sender): its snapshot is outside the lines
            if stop.requested:
                break
        phase = "closing the loop"
        if tracer is not None:
            tracer.write(epoch, final=True)
        if profiler is not None:
            profiler.write(epoch, final=True)
        close = getattr(loop, "close", None)
        if callable(close):
            close()
    except StopRequested:
        stop.in_epoch = False
        if tracer is not None:
            tracer.write(epoch - 1 if epoch else 0, final=True)
        if profiler is not None:
            profiler.write(epoch - 1 if epoch else 0, final=True)
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent as the run's failure
        stop.in_epoch = False
        traceback.print_exc()
        channel.send(protocol.ERROR, **_error_fields(phase, exc))
        return 1
    finally:
        if tracer is not None:
            tracer.finish()
    channel.send(protocol.DONE, stopped=stop.requested, gc=readings.summary())
    return 0
