"""W1 of the reliability audit: reading a run that is still going never loses its final status.

Only the process that records a run writes its meta.json while it runs;
``explain`` and ``check`` store an analysis only for a finished run, and only
when meta.json is still the one they analysed (compare and swap under a lock).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import FIXTURES, harness_argv

FAST = f"{FIXTURES / 'reliability_loops.py'}:Fast"
EPOCHS = 60_000
TRIALS = 20
IN_FLIGHT = 2


def harness(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    """``python -m harness ARGS`` started in the background, its output dropped."""
    return subprocess.Popen(harness_argv(*args), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_explain_on_a_live_run_never_erases_its_final_status(tmp_path: Path) -> None:
    for trial in range(TRIALS):
        # GIVEN a fast 60,000-epoch run
        results = tmp_path / f"trial{trial}"
        run = harness(
            "run",
            "--variant",
            FAST,
            "--epochs",
            str(EPOCHS),
            "--memory-cap",
            "300MiB",
            "--results",
            str(results),
            "--quiet",
            cwd=tmp_path,
        )
        while not (results.is_dir() and any(results.iterdir())) and run.poll() is None:
            time.sleep(0.02)
        (run_dir,) = results.iterdir()
        # WHEN explain is run on it again and again while it goes (two at a time at most, so a loaded
        # machine does not pile them up), and once more as it ends
        explains: list[subprocess.Popen[bytes]] = []
        while run.poll() is None:
            if len(explains) >= IN_FLIGHT:
                explains.pop(0).wait(timeout=120)
            explains.append(harness("explain", str(run_dir), cwd=tmp_path))
            time.sleep(0.2)
        explains.append(harness("explain", str(run_dir), cwd=tmp_path))
        for process in explains:
            process.wait(timeout=120)
        # THEN the run's final meta.json is intact: completed, every epoch, an end time
        assert run.returncode == 0
        meta = json.loads((run_dir / "meta.json").read_text())
        assert (meta["status"], meta["epochs_done"], meta["ended_at"] is not None) == ("completed", EPOCHS, True), (
            f"trial {trial}: {meta['status']} after {meta['epochs_done']} epochs"
        )
