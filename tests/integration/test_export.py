"""`export --mprof` as a user runs it, and memory-profiler's own `mprof plot` drawing the exported run.

The .dat lines themselves are checked in tests/unit/test_export.py.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from tests.helpers import cli, python, run_dir_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def mprof_script() -> str:
    """The `mprof` script memory-profiler installs beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "mprof"
    found = str(beside) if beside.is_file() else shutil.which("mprof")
    assert found, "memory-profiler's mprof script is missing: pip install memory-profiler"
    return found


def test_mprof_plot_draws_an_exported_run(tmp_path: Path) -> None:
    # GIVEN a recorded run of a loop keeping 4 MiB an epoch, 20 ms an epoch: the 50 ms samples see it grow
    # (a run of 30 one-millisecond epochs is over between two samples, and its samples miss the peak)
    loop = tmp_path / "loop.py"
    loop.write_text(
        "import time\n"
        "class Loop:\n"
        "    def __init__(self, config):\n"
        "        self.kept = []\n"
        "    def train_epoch(self, epoch):\n"
        "        time.sleep(0.02)\n"
        "        self.kept.append(b'x' * (4 << 20))\n"
        "        return {'loss': 1.0}\n"
    )
    done = cli("run", "--variant", "loop.py:Loop", "--epochs", "30", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_dir = run_dir_of(done, tmp_path)
    # WHEN it is exported in mprof's format
    exported = cli("export", "--mprof", run_dir, "-o", "run.dat", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == "run.dat\n"
    text = (tmp_path / "run.dat").read_text()
    assert text.startswith("CMDLINE leakbench run --variant loop.py:Loop")
    assert text.count("\nFUNC epoch_") == 20  # 30 epochs, 20 marks by default
    # THEN memory-profiler's own plot command draws it, headless, to a PNG file
    plotted = python(mprof_script(), "plot", "run.dat", "-o", "run.png", "--backend", "Agg", cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    assert (tmp_path / "run.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (tmp_path / "run.png").stat().st_size > 10_000
    # AND mprof reads back the samples and all 20 marks
    read = python(
        "-c",
        "import json, mprof; p = mprof.read_mprofile_file('run.dat');"
        "print(json.dumps([len(p['mem_usage']), len(p['func_timestamp']), max(p['mem_usage'])]))",
        cwd=tmp_path,
    )
    samples, marks, peak_mib = map(float, read.stdout.strip().strip("[]").split(","))
    assert samples >= 1 and marks == 20 and peak_mib > 4 * 30
