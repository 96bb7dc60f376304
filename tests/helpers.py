"""What several test modules share: the project's paths, the CLI in a subprocess, synthetic runs, gradient checks.

One copy of each, so that a test reads as GIVEN / WHEN / THEN and the plumbing
behind it is the same everywhere.  Fixtures built on these live in
``tests/conftest.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import records, storage
from harness.interface import RunConfig
from harness.jsonfile import write_json_atomic

# -- paths -------------------------------------------------------------------------------------------

TESTS = Path(__file__).resolve().parent
PROJECT = TESTS.parent
FIXTURES = TESTS / "fixtures"
LOOPS = FIXTURES / "loops.py"  # the runner's tiny test loops, loaded by path as a user's loop is
KNOWN_LEAK = f"{FIXTURES / 'known_leak.py'}:KnownLeak"  # --variant: keeps a known number of KiB per epoch
FIXTURE_RUNS = FIXTURES / "runs"  # real runs, shrunk (see fixtures/runs/shrink.py)
TINY_SWEEP = FIXTURES / "tiny_sweep.toml"  # a sweep spec: numpy 2 seeds x 20 epochs, and its history leak
GOLDEN = TESTS / "golden"
EXAMPLES = PROJECT / "examples"
VARIANTS = PROJECT / "variants"

KIB = 1024
MIB = 1024**2
GIB = 1024**3


def loop(name: str) -> str:
    """``--variant`` for one of the test loops in tests/fixtures/loops.py."""
    return f"{LOOPS}:{name}"


def fixture_run_dir(part: str) -> Path:
    """The one stored fixture run directory whose name contains ``part``."""
    (found,) = [p for p in FIXTURE_RUNS.iterdir() if part in p.name and (p / storage.META).exists()]
    return found


def assert_golden(name: str, text: str) -> None:
    """Compare ``text`` with tests/golden/NAME; write it instead when it is missing (then review and commit it)."""
    path = GOLDEN / name
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        pytest.fail(f"golden file {path} was missing and has been written: review it and commit it")
    assert text == path.read_text()


# -- the command line, as a user runs it ---------------------------------------------------------------


def python_argv(*args: str | os.PathLike[str]) -> list[str]:
    """``python ARGS`` with this interpreter."""
    return [sys.executable, *map(str, args)]


def harness_argv(*args: str | os.PathLike[str]) -> list[str]:
    """``python -m harness ARGS`` with this interpreter (for a test that drives the process itself)."""
    return python_argv("-m", "harness", *args)


def python(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` to the end (in ``cwd``, else here) and capture its output as text; never raises on exit."""
    return subprocess.run(
        python_argv(*args),
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cli(*args: str | os.PathLike[str], **options: Any) -> subprocess.CompletedProcess[str]:
    """Run ``python -m harness ARGS`` to the end and capture its output; ``options`` as for :func:`python`."""
    return python("-m", "harness", *args, **options)


# -- processes a test started, found again through /proc -----------------------------------------------------

# A test gives the processes it starts this variable with a tag of its own: every process they start inherits it.
TAG = "LEAKBENCH_TEST_TAG"


def tagged(tag: str) -> list[str]:
    """Live processes carrying ``tag`` ("pid (name) state"), found through /proc."""
    found = []
    needle = f"{TAG}={tag}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        if needle in environ.split(b"\0"):
            found.append(stat[: stat.rfind(")") + 3])
    return found


def survivors(tag: str, within_s: float = 5.0) -> list[str]:
    """The tagged processes still alive after ``within_s`` (none as soon as there are none)."""
    deadline = time.monotonic() + within_s
    while (alive := tagged(tag)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def run_dir_of(done: subprocess.CompletedProcess[str], cwd: Path) -> Path:
    """The run directory ``run`` printed on its last stdout line (relative paths are below ``cwd``)."""
    path = Path(done.stdout.strip().splitlines()[-1])
    return path if path.is_absolute() else cwd / path


# -- synthetic run directories ------------------------------------------------------------------------


def run_meta(options: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A meta.json dict checked by the real :class:`harness.records.RunMeta`; ``fields`` replace the defaults.

    The defaults describe a completed, untraced numpy run of seed 0 under a 4 GiB cap on a 16 GiB machine;
    its config is the :class:`harness.interface.RunConfig` of its seed, epochs, leak and ``options``.
    """
    status = fields.get("status", records.COMPLETED)
    defaults: dict[str, Any] = {
        "run_id": "run-1",
        "variant": "numpy",
        "leak": None,
        "seed": 0,
        "epochs_planned": 1,
        "epochs_done": 0,
        "status": status,
        "memory_cap_bytes": 4 * GIB,
        "memory_limit_bytes": None,
        "timeout_s": None,
        "trace": False,
        "sample_interval_s": 0.05,
        "started_at": "2026-01-01T00:00:00.000Z",
        "ended_at": None if status == records.RUNNING else "2026-01-01T00:01:00.000Z",
        "host": {"memory_total_bytes": 16 * GIB},
        "versions": {},
        "git_commit": None,
    }
    meta = defaults | fields
    if "config" not in meta:
        config = RunConfig(seed=meta["seed"], epochs=meta["epochs_planned"], leak=meta["leak"], options=options or {})
        meta["config"] = config.to_dict()
    return records.RunMeta(**meta).to_dict()


def write_run(
    root: Path,
    name: str | None = None,
    rss: Sequence[int] = (),
    *,
    heap: Sequence[int] | None = None,
    peak: int | None = None,
    metrics: Mapping[str, Sequence[float]] | None = None,
    samples: Sequence[records.Sample] = (),
    trace_json: Mapping[str, Any] | None = None,
    lines_json: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    **meta: Any,
) -> Path:
    """A run directory under ``root`` written as the runner writes one, with the given RSS per epoch.

    meta.json goes through :func:`run_meta` (``meta`` holds RunMeta fields to override: status, stop,
    variant, ...) and :func:`harness.storage.write_meta`; epochs.csv and samples.csv through the real
    :class:`harness.storage.RunWriter`; trace.json and lines.json as the worker writes them.  Without ``name`` the
    directory is made by :func:`harness.storage.create_run_dir` and named by a fresh run id.

    Each epoch's peak RSS is the highest RSS so far (and at least ``peak``); its heap is ``heap[i]``
    (empty when not given, as in an untraced run); ``metrics`` holds each metric's value per epoch
    (default: loss 1/epoch); ``options`` are the variant options in the config.
    """
    meta = {"epochs_planned": max(len(rss), 1), "epochs_done": len(rss), "trace": heap is not None} | meta
    checked = run_meta(options, **meta)
    if name is None:
        run_dir = storage.create_run_dir(root, checked["variant"], checked["leak"], checked["seed"])
    else:
        run_dir = root / name
        run_dir.mkdir(parents=True)
    storage.write_meta(run_dir, run_meta(options, **(meta | {"run_id": run_dir.name})))
    if metrics is None:
        metrics = {"loss": [1.0 / epoch for epoch in range(1, len(rss) + 1)]}
    writer = storage.RunWriter(run_dir)
    top = peak or 0
    for index, value in enumerate(rss):
        top = max(top, value)
        epoch = index + 1
        writer.epoch(
            records.EpochRecord(
                epoch=epoch,
                rss_bytes=value,
                peak_rss_bytes=top,
                heap_bytes=None if heap is None else heap[index],
                py_blocks=1000 + epoch,
                epoch_s=0.01,
                elapsed_s=0.01 * epoch,
                metrics={metric: values[index] for metric, values in metrics.items()},
            )
        )
    writer.samples(list(samples))
    writer.close()
    if trace_json is not None:
        write_json_atomic(run_dir / storage.TRACE, dict(trace_json))
    if lines_json is not None:
        write_json_atomic(run_dir / storage.LINES, dict(lines_json))
    return run_dir


def line_row(line: int, kept_per_epoch: float, epochs: int, grew_epochs: int | None = None, **fields: Any) -> dict:
    """One line of a lines.json, in loop.py: kept ``kept_per_epoch`` bytes an epoch (its increment the same)."""
    kept = int(kept_per_epoch * epochs)
    row = {
        "file": "/work/project/loop.py",
        "line": line,
        "function": "Loop.train_epoch",
        "source": f"statement_{line}()",
        "occurrences": epochs,
        "increment_bytes": kept,
        "increment_per_epoch": kept / epochs,
        "kept_bytes": kept,
        "kept_per_epoch": kept / epochs,
        "grew_epochs": epochs if grew_epochs is None else grew_epochs,
    }
    return row | fields


def line_profile(rows: Sequence[Mapping[str, Any]] = (), epochs: int = 10, **fields: Any) -> dict[str, Any]:
    """A lines.json as the worker writes it: accounts from epoch 2 to 2 + ``epochs`` with these ``rows``."""
    kept = sum(row["kept_bytes"] for row in rows)
    document = {
        "schema_version": 1,
        "final": True,
        "baseline_epoch": 2,
        "final_epoch": 2 + epochs,
        "epochs": epochs,
        "functions": [{"target": "Loop.train_epoch", "file": "/work/project/loop.py", "line": 1, "function": "x"}],
        "rss_source": "/proc/self/statm",
        "reading_cost_us": 2.0,
        "readings": 40 * epochs,
        "rss_baseline_bytes": 100 * MIB,
        "rss_final_bytes": 100 * MIB + kept,
        "py_blocks_baseline": 100_000,
        "py_blocks_final": 100_000 + 10 * epochs,
        "outside": {"increment_bytes": 0, "kept_bytes": 0},
        "untracked_release_bytes": 0,
        "lines": [dict(row) for row in rows],
    }
    return document | fields


# -- numerical checks -----------------------------------------------------------------------------


def relative_error(analytic: Any, numeric: Any) -> float:
    """||a - n|| / max(||a||, ||n||): 0 when equal, about 1 when unrelated; scale-free.

    Refuses an analytic gradient that is all zero (the check would prove nothing) and two
    gradients of different shapes (broadcasting would compare the wrong entries).
    """
    a, n = np.asarray(analytic, dtype=float), np.asarray(numeric, dtype=float)
    assert a.shape == n.shape, f"gradients of different shapes: {a.shape} and {n.shape}"
    assert np.linalg.norm(a) > 1e-8, "the analytic gradient is zero: the check would prove nothing"
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a), np.linalg.norm(n)))


def numeric_gradient(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    indices: Sequence[Any] | None = None,
    step: float = 1e-6,
) -> np.ndarray:
    """Central differences (f(x + step) - f(x - step)) / (2 step) of the scalar ``f`` with respect to ``x``.

    ``x`` is perturbed in place, one entry at a time, and put back; ``f`` receives it (a closure that
    reads the same array may ignore the argument).  Every entry, in the shape of ``x``; or, given
    ``indices`` (anything that indexes ``x``), one value per index in their order.
    """
    chosen = list(np.ndindex(x.shape)) if indices is None else list(indices)
    out = np.zeros(len(chosen))
    for k, index in enumerate(chosen):
        original = x[index]
        x[index] = original + step
        plus = f(x)
        x[index] = original - step
        minus = f(x)
        x[index] = original
        out[k] = (plus - minus) / (2 * step)
    return out.reshape(x.shape) if indices is None else out


def assert_metrics_close(
    got: Sequence[Mapping[str, float]], want: Sequence[Mapping[str, float]], tolerance: float
) -> None:
    """Epoch by epoch, loss, accuracy and correct_prob within ``tolerance``; as many epochs on both sides."""
    for epoch, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        for key in ("loss", "accuracy", "correct_prob"):
            assert abs(g[key] - w[key]) <= tolerance, f"epoch {epoch} {key}: {g[key]!r} != {w[key]!r}"
