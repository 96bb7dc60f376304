"""Sweep: many runs from one spec (variants x leaks x seeds x options), in parallel, resumable, with a manifest.

Stage 1 repeated: a TOML spec (:mod:`~harness.sweep.spec`; groups of
training scripts: :mod:`~harness.sweep.scripts`) expands into planned runs
(:mod:`~harness.sweep.planned`), and :mod:`~harness.sweep.execute`
performs each one not yet done as its own ``python -m harness run``
(:mod:`~harness.sweep.launch`, :mod:`harness.recording`), in its own worker,
into one results directory: on this machine's threads (``--jobs``,
:mod:`~harness.sweep.local`) or on a Dask cluster (``--scheduler``,
:mod:`~harness.sweep.cluster` on the client, :mod:`~harness.sweep.remote` in
the workers, whose run directories come back to the client).  Runs start only
while their memory caps fit a budget (:mod:`~harness.sweep.budget`), timing
runs have the machine to themselves and every run records who shared it
(:mod:`~harness.sweep.machine`), and a run is claimed before it starts
(:mod:`~harness.sweep.claims`), so sweeps sharing a directory never repeat one.
It hands on those run directories and a ``sweep-<name>.json`` manifest
(:mod:`~harness.sweep.manifest`), which ``report`` turns into one report.
"""

from harness.sweep.budget import default_budget, parse_budget
from harness.sweep.execute import Eta, run_sweep
from harness.sweep.launch import STOP_GRACE_S, Runner
from harness.sweep.local import LocalPool
from harness.sweep.manifest import Outcome, already_done, finished_runs, sweep_run_dirs, write_manifest
from harness.sweep.planned import PlannedRun
from harness.sweep.spec import (
    RUN_KEYS,
    SPEC_KEYS,
    Spec,
    bundled_specs,
    load_spec,
    parse_spec,
    variant_available,
)

__all__ = [
    "RUN_KEYS",
    "SPEC_KEYS",
    "STOP_GRACE_S",
    "Eta",
    "LocalPool",
    "Outcome",
    "PlannedRun",
    "Runner",
    "Spec",
    "already_done",
    "bundled_specs",
    "default_budget",
    "finished_runs",
    "load_spec",
    "parse_budget",
    "parse_spec",
    "run_sweep",
    "sweep_run_dirs",
    "variant_available",
    "write_manifest",
]
