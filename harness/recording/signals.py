"""Signals to the parent while it records: Ctrl-C, SIGTERM and SIGHUP end the run, Ctrl-Z suspends the whole tree.

SIGHUP is what a closed terminal or a dropped ssh session sends: by default it
would kill the parent and leave meta.json ``running``; here it ends the run as
``interrupted``, as Ctrl-C does.

The handlers only note what arrived; the supervision loop acts on it within
one sample interval (:mod:`harness.recording.supervise`), never in the middle
of a reading.

Ctrl-Z (SIGTSTP) must not stop the parent alone: the worker lives in a session
of its own, so it would train on unwatched, past the memory cap.  The loop
first stops every process of the tree (SIGSTOP, by pid, so children in
sessions of their own stop too), then stops itself; when it is continued
(SIGCONT) it continues the tree and takes a sample at once.  The keeper is not
stopped: it runs no training code, and it must stay able to end the tree if
the parent is killed while suspended.  Outside the loop (checking the variant,
analysing the run) SIGTSTP stops the parent at once, as by default.  SIGSTOP
itself cannot be caught: a parent stopped that way leaves the tree running.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from harness.recording.tree import TreeSampler


class SignalFlag:
    """SIGINT/SIGTERM/SIGHUP in the parent: remember them; the poll loop acts within one sample interval."""

    def __init__(self) -> None:
        self.count = 0
        self.name = ""
        self.suspend = False  # SIGTSTP arrived while a loop was watching
        self.continued = False  # SIGCONT arrived: the tree may need continuing, a sample is due
        self.watching = False  # a supervision loop is running and will act on ``suspend``
        self._previous: dict[int, Any] = {}

    def handler(self, signum: int, frame: Any) -> None:
        """The SIGINT/SIGTERM handler: count the signal and remember its name."""
        self.count += 1
        self.name = signal.Signals(signum).name

    def _tstp(self, signum: int, frame: Any) -> None:
        if self.watching:
            self.suspend = True
        else:
            os.kill(os.getpid(), signal.SIGSTOP)

    def _cont(self, signum: int, frame: Any) -> None:
        self.continued = True

    def install(self) -> None:
        """Handle SIGINT, SIGTERM, SIGHUP, SIGTSTP and SIGCONT here until :meth:`restore`."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; the embedding program keeps its own
        handlers = {
            signal.SIGINT: self.handler,
            signal.SIGTERM: self.handler,
            signal.SIGHUP: self.handler,
            signal.SIGTSTP: self._tstp,
            signal.SIGCONT: self._cont,
        }
        for signum, handler in handlers.items():
            self._previous[signum] = signal.signal(signum, handler)

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def job_control(self, tree: TreeSampler | None) -> bool:
        """Act on Ctrl-Z: stop ``tree``, then this process; once continued, continue the tree.

        True when the process was continued (a sample is due at once).  This
        process stops itself with SIGSTOP: SIGTSTP is ignored in an orphaned
        process group, which would leave the tree stopped for good.
        """
        if self.suspend:
            self.suspend = False
            if tree is not None:
                tree.signal_all(signal.SIGSTOP)
            os.kill(os.getpid(), signal.SIGSTOP)  # returns when continued
            self.continued = True
        if not self.continued:
            return False
        self.continued = False
        if tree is not None:
            tree.signal_all(signal.SIGCONT)
        return True
