"""The worker: the child process that imports and trains the loop, measures itself and sends records.

Stage 2 of a run.  The parent (:mod:`harness.recording`) starts ``python -m
harness.worker`` and reads what it sends; this package is the only place
training code runs.  It hands the parent JSON lines on a pipe
(:mod:`~harness.worker.protocol`): one epoch record per epoch, and with
``--trace`` a trace.json (:mod:`~harness.worker.tracing`: when, and
:mod:`~harness.worker.heap`, in a forked child: tracemalloc sites, which line
they are charged to, what keeps them alive), and with ``--lines`` a
lines.json (:mod:`~harness.worker.lines`: RSS line by line in the profiled
functions, and which line kept it).  It imports neither
pandas nor matplotlib, so it measures the loop and not the harness.

The worker is two processes, because a training loop starts processes of its
own (data loaders, pools, subprocesses) and none may outlive the run, even when
the parent is SIGKILLed and so cannot clean up.  The process the parent starts
is the keeper (:mod:`~harness.worker.keeper`): before importing anything of the
user's it becomes a child subreaper, so every process the loop orphans, in
whatever session or process group, is adopted by it; then it forks the trainer
(:mod:`~harness.worker.train`, "the worker" whose own memory is recorded and
whose pid the ``worker`` and ``started`` messages report).  The keeper runs no
user code and so cannot be stuck in it: it passes the parent's SIGTERM and
SIGINT to the trainer, learns of the parent's death from two sources (its
parent-death signal, SIGHUP, which the kernel sends however the parent died,
and the end of file of a lifeline pipe only the parent holds, which also works
when the parent's thread that started it has ended), and once the trainer has
ended it SIGKILLs every descendant it has, scanning again until none is left
(:mod:`~harness.worker.procfs`), then exits as the trainer did.  The trainer
dies with the keeper (parent-death SIGKILL).  A lifeline alone would fail if a
fork of the parent held its write end, a death signal alone if the parent's
thread ended first.  A cgroup v2 would do all of this in the kernel
(cgroup.procs, memory.current, cgroup.freeze, cgroup.kill), but needs a
writable, delegated hierarchy, which containers and CI runners often lack.
Processes the trainer forks get back the default handlers and lose the record
pipe (``os.register_at_fork``), so they end when asked and never hold the pipe.
"""

from harness.worker.process import memory_now
from harness.worker.protocol import Channel, worker_command

__all__ = ["Channel", "memory_now", "worker_command"]
