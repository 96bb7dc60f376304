"""Data-loader workers: persistent forked processes that prepare batches in order, never a hang.

The training process forks N workers once (``fork`` start method: they
inherit the store, as PyTorch's ``DataLoader`` workers do on Linux) and keeps
them for the whole run, as ``persistent_workers=True`` does.  Each worker has
its own pipe and serves its requests in the order they come.  Batch ``b`` of
epoch ``e`` goes to worker ``(b + e) % N``: the assignment rotates every epoch
(as a shuffling sampler does), so each worker reads the whole dataset within N
epochs.  Up to ``PREFETCH`` requests per worker are in flight, and batches are
taken back in batch order, so training sees exactly the sequence of batches
the numpy variant sees.

Never a hang: every wait polls with a short timeout and checks the worker; a
worker that died raises :class:`LoaderError` at once, one that sends nothing
for ``timeout_s`` raises too.  :meth:`WorkerPool.close` ends them all: a stop
message, then SIGTERM, then SIGKILL, each after a bounded wait.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import time
import traceback
import weakref
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from variants.loader.dataset import Images, Labels, Store

PREFETCH = 2  # requests in flight per worker, PyTorch's default prefetch_factor
POLL_S = 0.05  # how often a wait for a batch checks that its worker is alive
ORPHAN_CHECK_S = 1.0  # how often an idle worker checks that the training process is still its parent
JOIN_S = 2.0  # how long close() waits for the workers to exit by themselves, then after SIGTERM

Bounds = Sequence[tuple[int, int]]
Prepared = tuple[Images, Labels]


class LoaderError(RuntimeError):
    """A data-loader worker died, failed, or sent nothing within the timeout."""


def _serve(index: int, conn: Connection, store: Store, memoise: bool, parent: int, others: list[Connection]) -> None:
    """A worker's loop: prepare each requested batch and send it back; end on None, EOF or losing its parent."""
    # Forked from the training process: its handlers (the harness's SIGTERM flag) must not keep us alive,
    # and Ctrl-C in a terminal reaches the whole process group: the training process decides, not us.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for other in others:  # the training process's ends of the pipes: only it may hold them
        other.close()
    memo: dict[tuple[int, int], Prepared] = {}
    while True:
        while not conn.poll(ORPHAN_CHECK_S):
            if os.getppid() != parent:
                return
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        epoch, number, start, stop = request
        try:
            prepared = store.batch(start, stop)
        except Exception as exc:  # noqa: BLE001 -- any failure goes back to the training process, which raises it
            traceback.print_exc()  # the whole traceback on stderr (the run's worker.log); one line in the error
            reply: tuple[Any, ...] = ("error", epoch, number, traceback.format_exception_only(exc)[-1].strip())
        else:
            if memoise:
                # LEAK: a cache of every batch served, keyed by (epoch, batch) so that no entry is ever reused.
                memo[epoch, number] = prepared
            reply = ("batch", epoch, number, prepared)
        try:
            conn.send(reply)
        except OSError:  # the training process closed our pipe: it is shutting down
            return


def _shutdown(conns: list[Connection], procs: list[BaseProcess]) -> None:
    """Stop the workers: a stop message, then SIGTERM, then SIGKILL, each after a bounded wait; empties both lists."""
    for conn in conns:
        with contextlib.suppress(OSError):  # a worker already gone cannot be told
            conn.send(None)
        # Closing our end as well wakes a worker blocked on sending a batch nobody will read.
        conn.close()
    deadline = time.monotonic() + JOIN_S
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for stop in (BaseProcess.terminate, BaseProcess.kill):
        alive = [proc for proc in procs if proc.is_alive()]
        for proc in alive:
            stop(proc)
            if stop is BaseProcess.terminate and proc.pid is not None:
                # A stopped worker (SIGSTOP, Ctrl-Z) would keep SIGTERM pending until continued.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
        for proc in alive:
            proc.join(JOIN_S)
    conns.clear()
    procs.clear()


class InlineLoader:
    """workers=0: batches prepared in the training process itself, as ``DataLoader(num_workers=0)``."""

    def __init__(self, store: Store, memoise: bool) -> None:
        self.store = store
        self._memoise = memoise
        self.memo: dict[tuple[int, int], Prepared] = {}

    @property
    def pids(self) -> list[int]:
        """No worker processes."""
        return []

    def epoch(self, epoch: int, bounds: Bounds) -> Iterator[Prepared]:
        """The epoch's batches in order."""
        for number, (start, stop) in enumerate(bounds):
            prepared = self.store.batch(start, stop)
            if self._memoise:
                self.memo[epoch, number] = prepared  # LEAK: as the workers' cache, here in the training process
            yield prepared

    def close(self) -> None:
        """Drop the cache."""
        self.memo.clear()


class WorkerPool:
    """N forked worker processes, one pipe each, started at construction and kept until :meth:`close`."""

    def __init__(self, store: Store, workers: int, memoise: bool, timeout_s: float) -> None:
        if workers < 1:
            raise ValueError(f"a pool needs at least one worker, got {workers}")
        # Kept here as DataLoader keeps its dataset (Process.start() drops its args once forked): without it
        # the training process would free its copy and the workers would share the originals among themselves.
        self.store = store
        self._timeout_s = timeout_s
        self._conns: list[Connection] = []
        self._procs: list[BaseProcess] = []
        # Also run when the pool is collected or the interpreter exits without close(): no worker outlives us.
        self._shutdown = weakref.finalize(self, _shutdown, self._conns, self._procs)
        context = multiprocessing.get_context("fork")
        try:
            for index in range(workers):
                ours, theirs = context.Pipe(duplex=True)
                # The worker closes every pipe end of ours it inherits, so that our exit reads as EOF there.
                args = (index, theirs, store, memoise, os.getpid(), [*self._conns, ours])
                proc = context.Process(target=_serve, args=args, name=f"leakbench-loader-{index}", daemon=True)
                proc.start()
                # Only the worker holds its end now, so its death reads as end-of-file on ours at once.
                theirs.close()
                self._conns.append(ours)
                self._procs.append(proc)
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """The workers' process ids, in worker order."""
        return [proc.pid for proc in self._procs if proc.pid is not None]

    def epoch(self, epoch: int, bounds: Bounds) -> Iterator[Prepared]:
        """The epoch's batches in order; batch b comes from worker (b + epoch) % N."""
        count = len(self._procs)
        if count == 0:
            raise LoaderError("the data loader is closed")
        sent = 0
        for number in range(len(bounds)):
            while sent < len(bounds) and sent < number + PREFETCH * count:
                self._send((sent + epoch) % count, (epoch, sent, *bounds[sent]))
                sent += 1
            yield self._receive((number + epoch) % count, epoch, number)

    def _send(self, worker: int, request: tuple[int, int, int, int]) -> None:
        try:
            self._conns[worker].send(request)
        except OSError as exc:
            what = f"batch {request[1]} of epoch {request[0]}"
            raise LoaderError(f"{self._describe(worker)} cannot take {what}: {exc}") from None

    def _receive(self, worker: int, epoch: int, number: int) -> Prepared:
        """Batch ``number`` of ``epoch`` from its worker; raises rather than waits on a dead or silent one."""
        conn, proc = self._conns[worker], self._procs[worker]
        what = f"batch {number} of epoch {epoch}"
        deadline = time.monotonic() + self._timeout_s
        while True:
            while not conn.poll(POLL_S):
                if not proc.is_alive():
                    raise LoaderError(f"{self._describe(worker)} died before sending {what}")
                if time.monotonic() > deadline:
                    raise LoaderError(f"{self._describe(worker)} sent nothing for {self._timeout_s:g} s ({what})")
            try:
                kind, got_epoch, got_number, payload = conn.recv()
            except (EOFError, OSError):
                proc.join(POLL_S)  # its exit code, when it is already gone
                raise LoaderError(f"{self._describe(worker)} died before sending {what}") from None
            if kind == "error":
                where = f"batch {got_number} of epoch {got_epoch}"
                raise LoaderError(f"{self._describe(worker)} failed on {where}: {payload} (traceback on stderr)")
            if (got_epoch, got_number) == (epoch, number):
                return payload
            # Otherwise a batch asked for by an epoch that an exception cut short: worthless now, dropped.

    def _describe(self, worker: int) -> str:
        proc = self._procs[worker]
        code = proc.exitcode
        state = "" if code is None else (f", killed by signal {-code}" if code < 0 else f", exit code {code}")
        return f"data-loader worker {worker} (pid {proc.pid}{state})"

    def close(self) -> None:
        """Stop every worker and wait for it: a stop message, then SIGTERM, then SIGKILL. Safe to call twice."""
        self._shutdown()
