"""The worker process: the only place training code runs.

Started by the parent (:mod:`harness.runner`) as::

    python -m harness.worker --fd N --check '{"variant": ..., "leak": ..., "memory_limit_bytes": ...}'
    python -m harness.worker --fd N --job '{"variant": ..., "config": {...}, "trace_path": ..., "trace_frames": ...,
                                            "memory_limit_bytes": ..., "parent_pid": ...}'

It writes JSON lines to file descriptor N, a pipe the parent reads; its stdout
and stderr go wherever the parent pointed them (worker.log), so whatever the
training code prints never mixes with the records.  Messages (``"type"``):

- ``check``: ``{"ok": true, "description", "leaks"}`` or ``{"ok": false, "message"}`` (``--check`` only);
- ``started``: ``{"t0", "pid", "versions"}``, once the loop is built, just before epoch 1
  (``t0`` is ``time.monotonic()``, comparable across processes on Linux);
- ``epoch``: an :class:`~harness.records.EpochRecord` as a dict;
- ``error``: ``{"phase", "exception", "traceback", "memory_error"}``, then exit status 1
  (2 for a usage error found while resolving the variant);
- ``done``: ``{"stopped"}`` after the last epoch or after the parent asked it to stop (SIGTERM).

Safety: the worker asks the kernel to SIGKILL it if the parent dies (Linux
``PR_SET_PDEATHSIG``), and when the job carries ``memory_limit_bytes`` it sets
``RLIMIT_DATA`` to it, a backstop well above the parent's memory cap for
allocations faster than the parent's sampling: past it, allocations fail with
MemoryError instead of pushing the machine into its OOM killer.  RLIMIT_DATA is
used rather than RLIMIT_AS because address space that is only reserved (thread
stacks, OpenBLAS buffers, allocator arenas) does not count against it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, NoReturn

import psutil

from harness import loading, records, sysinfo
from harness.errors import UsageError
from harness.interface import RunConfig
from harness.tracing import FRAMES, Tracer

PR_SET_PDEATHSIG = 1
TRACEBACK_LINES = 12  # lines of a training error's traceback sent to the parent


class StopRequested(BaseException):
    """Raised inside train_epoch when the parent asks the worker to stop (BaseException: user code should not catch it)."""


class Channel:
    """The record pipe: one JSON object per line, written whole."""

    def __init__(self, fd: int) -> None:
        os.set_inheritable(fd, False)  # subprocesses of the training code must not hold it open
        self.fd = fd

    def send(self, kind: str, **fields: Any) -> None:
        """Write one message; blocks while the parent's pipe buffer is full."""
        data = (json.dumps({"type": kind} | fields) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]


class _StopFlag:
    """Set by SIGTERM; raises StopRequested only while training code runs, so bookkeeping is never cut."""

    def __init__(self) -> None:
        self.requested = False
        self.in_epoch = False

    def handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self.in_epoch:
            raise StopRequested()


def _die_with_parent(parent_pid: int | None) -> None:
    """Have the kernel SIGKILL this process when the parent dies (Linux only; best effort elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before prctl took effect


def _limit_memory(limit: int | None) -> None:
    if not limit:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


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


def memory_now() -> tuple[int, int]:
    """(RSS, high-water RSS) of this process in bytes, from one read of /proc/self/status (about 20 us).

    The high-water mark is VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    from the parent across fork and exec, so it would start at the parent's size.
    Elsewhere: psutil's RSS and ru_maxrss.
    """
    rss = peak = -1
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    peak = int(line.split()[1]) * 1024  # reported in kB
                elif line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                    break  # VmRSS follows VmHWM
    except OSError:
        pass
    if rss < 0 or peak < 0:
        rss = psutil.Process().memory_info().rss
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = max(rss, maxrss if sys.platform == "darwin" else maxrss * 1024)  # bytes on macOS, KiB elsewhere
    return rss, peak


def check(channel: Channel, variant: str, leak: str | None) -> int:
    """Resolve the variant and the leak; report a verdict, import nothing else."""
    try:
        cls = loading.load_loop_class(variant, leak)
    except UsageError as exc:
        channel.send("check", ok=False, message=str(exc))
        return 0
    channel.send(
        "check", ok=True, description=str(getattr(cls, "DESCRIPTION", "")).strip(), leaks=loading.class_leaks(cls)
    )
    return 0


def run(channel: Channel, job: dict[str, Any]) -> int:
    """Build the loop, train ``config.epochs`` epochs, send one record per epoch."""
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop.handler)
    signal.signal(signal.SIGINT, stop.handler)  # same as SIGTERM: the parent decides, not the terminal
    config = RunConfig.from_dict(job["config"])
    trace_path = job.get("trace_path")
    tracer = Tracer(Path(trace_path), config.epochs, job.get("trace_frames", FRAMES)) if trace_path else None
    if tracer is not None:
        tracer.start()  # before the import, so building the loop is traced too

    phase = "loading the variant"
    try:
        cls = loading.load_loop_class(job["variant"], config.leak)
        phase = "building the loop"
        loop = cls(config)
    except UsageError as exc:
        channel.send("error", phase=phase, exception=str(exc), traceback=[], memory_error=False)
        return records.USAGE_EXIT_CODE
    except BaseException as exc:  # noqa: BLE001 -- anything the user's code raises, SystemExit included
        traceback.print_exc()
        channel.send("error", **_error_fields(phase, exc))
        return 1

    metric_names: tuple[str, ...] | None = None
    epoch = 0
    t0 = time.monotonic()
    channel.send("started", t0=t0, pid=os.getpid(), versions=sysinfo.loaded_versions())
    try:
        phase = "training"
        for epoch in range(1, config.epochs + 1):
            started = time.monotonic()
            stop.in_epoch = True
            if stop.requested:
                raise StopRequested()
            metrics = loop.train_epoch(epoch)
            stop.in_epoch = False
            ended = time.monotonic()
            rss, peak = memory_now()
            try:
                metrics = records.check_metrics(metrics)
            except (TypeError, ValueError) as exc:
                print(f"leakbench: epoch {epoch}: {exc}", file=sys.stderr)
                channel.send("error", phase=f"epoch {epoch}", exception=str(exc), traceback=[], memory_error=False)
                return 1
            record = records.EpochRecord(
                epoch=epoch,
                rss_bytes=rss,
                peak_rss_bytes=peak,
                heap_bytes=tracer.heap_bytes() if tracer is not None else None,
                # Blocks held by Python's small-object allocator: every live float, int, list, dict...
                # It walks the allocator's pools, about 15 us per 100 MiB of small objects.
                py_blocks=sys.getallocatedblocks(),
                epoch_s=ended - started,
                elapsed_s=ended - t0,
                metrics=metrics,
            )
            if metric_names is None:
                metric_names = tuple(record.metrics)
            elif set(record.metrics) - set(metric_names):
                extra = ", ".join(sorted(set(record.metrics) - set(metric_names)))
                print(f"leakbench: epoch {epoch} returned metrics not in epoch 1 ({extra}); not recorded", file=sys.stderr)
            channel.send("epoch", **record.to_dict())
            if tracer is not None:
                tracer.after_epoch(epoch)
            if stop.requested:
                break
        phase = "closing the loop"
        if tracer is not None:
            tracer.write(epoch, final=True)
        close = getattr(loop, "close", None)
        if callable(close):
            close()
    except StopRequested:
        stop.in_epoch = False
        if tracer is not None:
            tracer.write(epoch - 1 if epoch else 0, final=True)
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent as the run's failure
        stop.in_epoch = False
        traceback.print_exc()
        channel.send("error", **_error_fields(phase, exc))
        return 1
    channel.send("done", stopped=stop.requested)
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="file descriptor of the record pipe")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", metavar="JSON", help='{"variant": ..., "leak": ...}: resolve and validate only')
    mode.add_argument("--job", metavar="JSON", help="the run: variant, config, trace_path, memory_limit_bytes, parent_pid")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of ``python -m harness.worker``."""
    args = _parse(argv)
    # Whole lines reach worker.log at once, so a worker killed at the memory cap leaves its last words.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    job = json.loads(args.check if args.check is not None else args.job)
    _die_with_parent(job.get("parent_pid"))
    channel = Channel(args.fd)
    _limit_memory(job.get("memory_limit_bytes"))
    if args.check is not None:
        code = check(channel, job["variant"], job.get("leak"))
    else:
        code = run(channel, job)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: a leaked heap can take seconds to free


if __name__ == "__main__":
    main()
