"""The tracer's machinery, run in a forked child of the trainer: trace points, attribution, keepers.

:mod:`~harness.worker.heap.child` forks the child that does the work (or runs
it in place where it cannot fork); :mod:`~harness.worker.heap.state` takes a
trace point (the traced heap by site, live objects by type) and compares two;
:mod:`~harness.worker.heap.attribution` charges an allocation to the user's
innermost line; :mod:`~harness.worker.heap.targets` finds live objects
allocated at a site (arrays and untracked containers too), and
:mod:`~harness.worker.heap.keepers` follows referrers from one of them to what
keeps it alive (:mod:`~harness.worker.heap.walk`: one chain, and its roots).
:mod:`harness.worker.tracing` decides when, on the trainer's side.
"""
