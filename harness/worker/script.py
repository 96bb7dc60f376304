"""The trainer's side of ``run --script``: run a script as ``python PATH ARGS`` would, its epochs marked or timed.

The script runs as ``__main__`` (:func:`runpy.run_path`, or
:func:`runpy.run_module` for ``-m MODULE``), with ``sys.argv`` set to its
command line and, for a path, its directory first on ``sys.path`` in place of
the working directory, as the interpreter does.  It runs in the trainer, under
the same keeper, memory cap, sampling, timeout and tracing as a loop.

Its epochs, two ways:

- each :func:`harness.mark_epoch` call sends one epoch record, built and sent by
  :class:`~harness.worker.epochs.EpochSender` exactly as a loop's epoch is;
  the epoch's time runs from the end of the previous mark (or the start);
- with ``--window`` (``"marks": false`` in the job) the marks are ignored and the
  parent's timed samples make the epochs, windows of that many seconds
  (:mod:`harness.storage.windows`); with ``--trace`` the tracer is then driven
  by those windows from a thread of its own.

Its ending is the interpreter's: a return or ``sys.exit(0)`` is status 0,
``sys.exit(N)`` status N, ``sys.exit("text")`` the text on stderr and status 1,
an uncaught exception its traceback on stderr and status 1 (also sent as an
``error`` message, as a loop's is).  Then, as the interpreter does, non-daemon
threads are joined and ``atexit`` handlers run; interpreter teardown is skipped,
as for a loop (the keeper ends whatever is left).  ``done`` carries the status.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from harness import sysinfo
from harness.errors import UsageError
from harness.jsonfile import write_json_atomic
from harness.scripts import Script, check_script, marks
from harness.worker import protocol
from harness.worker.epochs import BadMetrics, EpochSender
from harness.worker.gc_readings import DEFAULT_POLICY, GcReadings
from harness.worker.protocol import Channel
from harness.worker.tracing import FRAMES, Tracer
from harness.worker.train import StopRequested, _error_fields, _StopFlag

# A script's epochs are not known in advance: the tracer takes its baseline after the 3rd (its rule for 12+).
TRACE_EPOCHS = 12
PHASE = "running the script"


def check(channel: Channel, script: dict[str, Any]) -> int:
    """Check that the script can run (compiled, never run; a module found) and report a verdict."""
    try:
        check_script(Script.from_dict(script))
    except UsageError as exc:
        channel.send(protocol.CHECK, ok=False, message=str(exc))
        return 0
    channel.send(protocol.CHECK, ok=True, description="", leaks={})
    return 0


class Marks:
    """The hook behind :func:`harness.mark_epoch` in the trainer: one epoch record per call."""

    def __init__(self, sender: EpochSender, stop: _StopFlag) -> None:
        self.sender = sender
        self.stop = stop
        self.last = sender.t0  # when the epoch being marked started: the end of the previous mark
        # A child the script forks (a data-loader worker) inherits the hook, but its marks are not the trainer's
        # epochs: a flag set at the fork, not a getpid() at every mark (a system call costs ~1% of a 1 ms epoch).
        self.forked = False
        os.register_at_fork(after_in_child=self._note_fork)

    def _note_fork(self) -> None:
        self.forked = True

    def __call__(self, metrics: dict[str, Any]) -> None:
        if self.forked:
            return
        ended = time.monotonic()
        self.stop.in_epoch = False  # a stop request waits until the record is sent
        try:
            self.sender.send(metrics, self.last, ended)
        except BadMetrics as exc:
            raise ValueError(f"mark_epoch: {exc}") from None
        finally:
            self.last = time.monotonic()  # the bookkeeping (and a trace) is not the next epoch's time
            self.stop.in_epoch = True
        if self.stop.requested:
            raise StopRequested()


class _Ignored:
    """The hook with ``--window``: marks are not epochs; say so once in worker.log."""

    def __init__(self) -> None:
        self.said = False

    def __call__(self, metrics: dict[str, Any]) -> None:
        if not self.said:
            self.said = True
            print("leakbench: --window given: mark_epoch calls are not recorded", file=sys.stderr)


class WindowTracer(threading.Thread):
    """With ``--window`` and ``--trace``: the tracer's baseline and interim traces by window, not by mark."""

    def __init__(self, tracer: Tracer, window_s: float, t0: float) -> None:
        super().__init__(name="leakbench-window-tracer", daemon=True)
        self.tracer, self.window_s, self.t0 = tracer, window_s, t0
        self.done = threading.Event()

    def window(self) -> int:
        """The last window finished."""
        return int((time.monotonic() - self.t0) // self.window_s)

    def run(self) -> None:
        while not self.done.wait(self.window_s - (time.monotonic() - self.t0) % self.window_s):
            self.tracer.after_epoch(self.window())

    def stop(self) -> None:
        """End the thread (after a trace it is taking)."""
        self.done.set()
        self.join()


def exit_status(exc: SystemExit) -> int:
    """The process exit status the interpreter gives ``sys.exit(code)``; a message is printed to stderr."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


# The script's globals once it has returned, kept until the process exits, as the interpreter keeps __main__'s:
# runpy drops its module, and what the script kept at module level must not be freed before the last
# samples and the final trace.
_KEPT: list[dict[str, Any]] = []


def execute(script: Script) -> None:
    """Run the script's code as ``__main__`` with its command line, as ``python PATH ARGS`` does."""
    if script.path is not None:
        sys.argv = [script.path, *script.args]
        # The interpreter puts the script's directory (symbolic links resolved) where the working directory was.
        sys.path[0] = str(Path(os.path.realpath(script.path)).parent)
        _KEPT.append(runpy.run_path(script.path, run_name="__main__"))
    else:
        sys.argv = [str(script.module), *script.args]  # run_module puts the module's file in argv[0]
        _KEPT.append(runpy.run_module(str(script.module), run_name="__main__", alter_sys=True))


def shut_down() -> None:
    """What the interpreter does after ``__main__`` ends: join non-daemon threads, run the ``atexit`` handlers."""
    main = threading.main_thread()
    for thread in threading.enumerate():
        if thread is not main and not thread.daemon and thread is not threading.current_thread():
            thread.join()
    atexit._run_exitfuncs()


def finish_trace(tracer: Tracer, last: int) -> None:
    """The final trace.json of a script: the last one taken at a mark (or window), made final.

    Not a new one: once the script has returned, what its functions kept in
    their locals (``main()``'s history, a recursion's levels) is gone, and a
    trace taken now would show no growth.  Only when no trace was taken since
    the baseline is one taken now, at the end.
    """
    try:
        written = json.loads(tracer.path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        written = None  # none yet
    if isinstance(written, dict) and written.get("final") is False:
        write_json_atomic(tracer.path, written | {"final": True})
    else:
        tracer.write(last, final=True)


def run(channel: Channel, job: dict[str, Any]) -> int:
    """Run the script to its end; one record per mark; returns its exit status."""
    stop = _StopFlag()
    stop.install()
    script = Script.from_dict(job["script"])
    trace_path = job.get("trace_path")
    frames = job.get("trace_frames", FRAMES)
    tracer = None
    if trace_path:
        # The parent leaves the tracer's child out of the tree's figures and the cap, and still ends it.
        announce = lambda pid, ended: channel.send(protocol.TRACER, pid=pid, ended=ended)  # noqa: E731
        tracer = Tracer(Path(trace_path), TRACE_EPOCHS, frames, (_KEPT,), announce, lambda: stop.requested)
        tracer.start()  # before the script's imports: they are traced too
    readings = GcReadings(job.get("gc_collect", DEFAULT_POLICY))
    t0 = time.monotonic()
    sender = EpochSender(channel, tracer, t0, readings)
    window_s = job.get("window_s")
    by_windows = not job.get("marks", True)
    marks.install_hook(_Ignored() if by_windows else Marks(sender, stop))
    ticker = WindowTracer(tracer, float(window_s), t0) if by_windows and tracer is not None and window_s else None
    channel.send(protocol.STARTED, t0=t0, pid=os.getpid(), versions={})
    if ticker is not None:
        ticker.start()
    status, error = 0, None
    stop.in_epoch = True  # the whole script is training code: a stop request ends it wherever it is
    try:
        try:
            execute(script)
        except SystemExit as exc:
            status = exit_status(exc)
        except StopRequested:
            raise
        except BaseException as exc:  # noqa: BLE001 -- the script's own failure, reported as the interpreter would
            traceback.print_exc()
            status, error = 1, exc
        shut_down()
    except StopRequested:
        pass
    finally:
        stop.in_epoch = False
        marks.install_hook(None)
    if ticker is not None:
        ticker.stop()
    if tracer is not None:
        finish_trace(tracer, ticker.window() if ticker is not None else sender.epoch)
        tracer.finish()
    if error is not None:
        channel.send(protocol.ERROR, **_error_fields(PHASE, error))
    channel.send(
        protocol.DONE,
        stopped=stop.requested,
        gc=readings.summary(),
        exit_status=status,
        versions=sysinfo.loaded_versions(),
    )
    return status
