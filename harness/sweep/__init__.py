"""Sweep: many runs from one spec (variants x leaks x seeds x options), resumable, with a manifest.

Stage 1 repeated: a TOML spec (:mod:`~harness.sweep.spec`; groups of
training scripts: :mod:`~harness.sweep.scripts`) expands into planned runs,
and :mod:`~harness.sweep.execute` performs each one not yet done as its own
``python -m harness run`` (:mod:`harness.recording`), in its own worker, into
one results directory.  It hands on those run directories and a
``sweep-<name>.json`` manifest, which ``report`` turns into one report.
"""

from harness.sweep.execute import (
    STOP_GRACE_S,
    Eta,
    Outcome,
    Runner,
    already_done,
    finished_runs,
    run_sweep,
    sweep_run_dirs,
    write_manifest,
)
from harness.sweep.spec import (
    RUN_KEYS,
    SPEC_KEYS,
    PlannedRun,
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
    "Outcome",
    "PlannedRun",
    "Runner",
    "Spec",
    "already_done",
    "bundled_specs",
    "finished_runs",
    "load_spec",
    "parse_spec",
    "run_sweep",
    "sweep_run_dirs",
    "variant_available",
    "write_manifest",
]
