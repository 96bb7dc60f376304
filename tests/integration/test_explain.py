"""``python -m harness explain RUN_DIR`` in a subprocess: the report on stdout, a bad directory in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.commands import COMMAND_NAMES
from tests.helpers import MIB, cli, write_run

RUN_ID = "20250101T000000-lists-recursion-s0-abc123"


@pytest.mark.skipif(
    "explain" not in COMMAND_NAMES, reason="explain is not yet listed in harness.commands.COMMAND_NAMES"
)
def test_the_cli_explains_a_run_and_refuses_a_bad_one_in_one_line(tmp_path: Path) -> None:
    # GIVEN a run of lists with its recursion leak planned for 20 epochs: a 20 MiB jump after epoch 1, then
    # 3 MiB per epoch (the run of tests/unit/test_explain.py)
    rss = [100 * MIB + (20 * MIB if e >= 2 else 0) + 3 * MIB * e for e in range(1, 21)]
    run_dir = write_run(tmp_path, RUN_ID, rss, variant="lists", leak="recursion", epochs_planned=20)
    # WHEN the CLI explains it, and a directory that does not exist THEN the first is reported, the second refused
    good = cli("explain", run_dir, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"run {RUN_ID}\n")
    bad = cli("explain", tmp_path / "nope", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stdout == "" and len(bad.stderr.splitlines()) == 1 and "not a directory" in bad.stderr
