"""Run a training loop (or a script) in a worker, exactly as ``python -m harness run`` does, and judge it.

The pytest plugin calls :func:`guard_loop`; so can any other test framework.
This process only starts the worker and reads its records (:func:`harness.recording.execute`):
the loop is imported and trained in the worker, never here.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import records
from harness.errors import UsageError
from harness.guard.budgets import Budget
from harness.guard.judge import Judgement, judge
from harness.interface import RunConfig
from harness.recording import RunRequest, execute
from harness.scripts import Script
from harness.sizes import parse_size
from harness.storage import load_run
from harness.worker.gc_readings import DEFAULT_POLICY, POLICIES


def loop_spec(loop: str | type) -> str:
    """What ``run --variant`` accepts for ``loop``: a spec as given, or ``path/file.py:Class`` for a class."""
    if isinstance(loop, str):
        return loop
    if not isinstance(loop, type):
        raise UsageError(f"loop must be a class or a variant spec such as 'numpy' or 'my_loop.py:MyLoop', got {loop!r}")
    if "." in loop.__qualname__:
        raise UsageError(
            f"{loop.__qualname__} must be defined at the top level of a module for the worker to import it"
        )
    try:
        source = inspect.getsourcefile(loop)
    except TypeError:
        source = None
    if source is None or not Path(source).is_file():
        raise UsageError(
            f"cannot find the file defining {loop.__qualname__}; pass 'path/to/file.py:{loop.__qualname__}'"
        )
    # The worker imports the file by its path, whatever sys.path this process was given (pytest adds test dirs);
    # relative to the working directory, which the worker shares, when it lies below it, so it reads as typed.
    path = Path(source).resolve()
    if path.is_relative_to(Path.cwd().resolve()):
        path = path.relative_to(Path.cwd().resolve())
    return f"{path}:{loop.__qualname__}"


def script_spec(path: str | os.PathLike[str] | None, module: str | None, args: Sequence[str] = ()) -> Script:
    """A guard's script: a path (relative to the working directory when below it, as budgets name it), or a module."""
    if path is not None:
        given = Path(path)
        if given.is_absolute() and given.resolve().is_relative_to(Path.cwd().resolve()):
            given = given.resolve().relative_to(Path.cwd().resolve())
        return Script(path=str(given), args=tuple(args))
    return Script(module=module, args=tuple(args))


def gc_policy(gc_collect: str | bool | None) -> str:
    """The worker's garbage-collection policy for ``gc_collect``: a policy name, True (always), False (never), None."""
    if gc_collect is None:
        return DEFAULT_POLICY
    if isinstance(gc_collect, bool):
        return "always" if gc_collect else "never"
    if gc_collect not in POLICIES:
        raise UsageError(f"invalid gc_collect {gc_collect!r}: expected one of {', '.join(POLICIES)}, True or False")
    return gc_collect


def guard_loop(
    loop: str | type,
    budget: Budget,
    *,
    results_dir: Path,
    leak: str | None = None,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    strict: bool = False,
    timeout_s: float | None = None,
    memory_cap: int | str | None = None,
    gc_collect: str | bool | None = None,
    lines: Sequence[str] | None = None,
) -> Judgement:
    """Run ``loop`` for ``budget``'s epochs in a worker (traced when measuring the heap) and judge it on its measure.

    ``lines``: profile RSS line by line in ``train_epoch`` and these functions, as ``run --lines`` does.
    """
    config = RunConfig(
        seed=seed,
        epochs=budget.epochs_or_default,
        leak=leak,
        # Options given in the call override those of the budget entry.
        options=dict(budget.options or {}) | dict(options or {}),
    )
    request = RunRequest(
        variant=loop_spec(loop),
        config=config,
        lines=None if lines is None else tuple(lines),
        **_recording(budget, results_dir, timeout_s, memory_cap, gc_collect),
    )
    return _record_and_judge(request, budget, strict)


def guard_script(
    script: Script,
    budget: Budget,
    *,
    results_dir: Path,
    window_s: float | None = None,
    strict: bool = False,
    timeout_s: float | None = None,
    memory_cap: int | str | None = None,
    gc_collect: str | bool | None = None,
) -> Judgement:
    """Run ``script`` to its end in a worker, as ``run --script`` does, and judge it on the budget's measure.

    Its epochs are its ``mark_epoch`` calls, or windows of ``window_s`` seconds
    (default 1) when it marks none or ``window_s`` is given; the budget's
    epochs do not apply (a script ends when it ends).
    """
    request = RunRequest(
        variant=script.label,
        config=None,
        script=script,
        window_s=window_s,
        **_recording(budget, results_dir, timeout_s, memory_cap, gc_collect),
    )
    return _record_and_judge(request, budget, strict)


def _recording(
    budget: Budget,
    results_dir: Path,
    timeout_s: float | None,
    memory_cap: int | str | None,
    gc_collect: str | bool | None,
) -> dict[str, Any]:
    """How a guarded run is recorded, loop or script: where, the cap, the timeout, the measure (traced for heap)."""
    return {
        "results_dir": Path(results_dir),
        "memory_cap_bytes": None if memory_cap is None else parse_size(memory_cap),
        "timeout_s": timeout_s,
        "trace": budget.measure_or_default == "heap",
        "measure": budget.measure_or_default,
        "gc_collect": gc_policy(gc_collect),
    }


def _record_and_judge(request: RunRequest, budget: Budget, strict: bool) -> Judgement:
    outcome = execute(request)
    if outcome.status == records.INTERRUPTED:
        # The runner caught the Ctrl-C to stop its worker cleanly; pass it on to whoever called us.
        raise KeyboardInterrupt(f"leakbench run interrupted: {outcome.run_dir}")
    return judge(load_run(outcome.run_dir), budget, strict=strict)
