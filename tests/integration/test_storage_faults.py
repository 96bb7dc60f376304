"""A full disk, a vanished results directory, Ctrl-C during the import (W7, W9 of the reliability audit).

The disk is a small tmpfs mounted for the test (skipped with the reason where
this machine does not allow mounting one); each case runs the CLI as a user does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.helpers import FIXTURES, KIB, cli, harness_argv

SLEEPY = f"{FIXTURES / 'reliability_loops.py'}:Sleepy"


@contextlib.contextmanager
def small_disk(where: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where``; skips the test when mounting is not allowed here."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip() or 'not root'}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` but for about ``leave`` bytes."""
    free = shutil.disk_usage(disk).free
    with open(disk / "filler", "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))


def no_temporary_files(root: Path) -> bool:
    return not [path for path in root.rglob("*") if path.name.endswith(".tmp")]


def test_a_disk_that_fills_up_ends_the_run_as_failed_with_one_line(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        # GIVEN a results directory on a disk with about 96 KiB left
        fill(disk, 96 * KIB)
        # WHEN a fast run records into it until it is full
        done = cli(
            "run",
            "--variant",
            SLEEPY,
            "--option",
            "sleep=0.002",
            "--epochs",
            "100000",
            "--memory-cap",
            "300MiB",
            "--results",
            disk / "runs",
            cwd=tmp_path,
            timeout=300,
        )
        # THEN it ends as failed (exit 5), saying why in one line, without a traceback or a stray temporary file
        assert done.returncode == 5, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        failure = done.stderr.splitlines()[0]
        assert failure.startswith("failed: after epoch ") and "No space left on device" in failure, done.stderr
        assert no_temporary_files(disk)
        # AND the epochs recorded before the disk filled are kept, and meta.json says how the run ended
        (run_dir,) = (disk / "runs").iterdir()
        rows = (run_dir / "epochs.csv").read_text().count("\n") - 1
        assert rows > 10
        meta = json.loads((run_dir / "meta.json").read_text())
        assert meta["status"] == "failed" and meta["ended_at"] is not None, meta
        # (epochs_done counts the epochs the worker finished: the last few found no room in epochs.csv)
        assert rows <= meta["epochs_done"] and "No space left on device" in meta["stop"]["message"]


def test_a_disk_full_from_the_start_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        # GIVEN a full disk (the results directory already exists on it)
        (disk / "runs").mkdir()
        fill(disk, 0)
        # WHEN a run is asked to record there
        done = cli("run", "--variant", SLEEPY, "--epochs", "3", "--results", disk / "runs", cwd=tmp_path)
        # THEN one line, exit 2, and nothing is left behind
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.startswith("leakbench: error: ") and len(done.stderr.splitlines()) == 1, done.stderr
        assert "No space left on device" in done.stderr
        assert list((disk / "runs").iterdir()) == []


def test_a_results_directory_deleted_during_the_run_is_one_line(tmp_path: Path) -> None:
    # GIVEN a run recording into a directory that is deleted while it runs (W11: a traceback at the end)
    results = tmp_path / "gone"
    run = subprocess.Popen(
        harness_argv("run", "--variant", SLEEPY, "--option", "sleep=0.1", "--epochs", "20", "--results", results),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (results.is_dir() and any(results.iterdir())) and run.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    shutil.rmtree(results)
    out, err = run.communicate(timeout=120)
    # THEN the run ends as failed, saying why in one line, without a traceback
    assert run.returncode == 5, out + err
    assert "Traceback" not in err and "cannot record the run in" in err.splitlines()[0], err


def slow_import(tmp_path: Path) -> Path:
    """A loop whose module sleeps 1000 s when imported: the check of the variant never ends by itself."""
    path = tmp_path / "slow_import.py"
    path.write_text(
        "import time\ntime.sleep(1000)\n\n\nclass Loop:\n"
        "    def __init__(self, config):\n        pass\n\n"
        "    def train_epoch(self, epoch):\n        return {}\n"
    )
    return path


def checking(path: Path) -> bool:
    """Whether a check worker is importing ``path`` now."""
    return any(
        "--check" in (proc.info["cmdline"] or []) and str(path) in " ".join(proc.info["cmdline"] or [])
        for proc in psutil.process_iter(["cmdline"])
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_ctrl_c_or_sigterm_during_the_import_ends_the_command_at_once(tmp_path: Path, signum: int) -> None:
    # GIVEN a run whose variant takes forever to import (W9: ignored for up to 120 s, then exit 2)
    path = slow_import(tmp_path)
    run = subprocess.Popen(
        harness_argv("run", "--variant", f"{path}:Loop", "--epochs", "2", "--results", tmp_path / "runs"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    importing = time.monotonic() + 60
    while not checking(path) and time.monotonic() < importing and run.poll() is None:
        time.sleep(0.1)  # wait until the check worker is importing the module
    assert checking(path), "the check worker never started"
    # WHEN the signal comes
    sent = time.monotonic()
    run.send_signal(signum)
    out, err = run.communicate(timeout=30)
    # THEN the command ends within seconds with 130, writes nothing, and leaves no process importing the module
    assert run.returncode == 130, out + err
    assert time.monotonic() - sent < 10
    assert "interrupted" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    stragglers = [
        proc for proc in psutil.process_iter(["cmdline"]) if str(path) in " ".join(proc.info["cmdline"] or [])
    ]
    for proc in stragglers:  # leave the machine clean even when the test fails
        with contextlib.suppress(psutil.Error):
            os.kill(proc.pid, signal.SIGKILL)
    assert stragglers == []
