"""Bad input and odd paths from the reliability audit (W8, W10, W11, W13): one line on stderr and an exit code.

Each case was a traceback, a silent acceptance or a misleading message in
../shared/audit/RELIABILITY.md; the commands run in a subprocess, as a user
runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import records
from tests.helpers import FIXTURES, cli, fixture_run_dir, python_argv, write_run

LOOPS = FIXTURES / "reliability_loops.py"


def one_line_error(done: object, code: int, *parts: str) -> None:
    """The command exited ``code`` with one "leakbench: error:" line naming ``parts``, and no traceback."""
    assert done.returncode == code, (done.stdout, done.stderr)  # type: ignore[attr-defined]
    err = done.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("leakbench: error: ") and all(part in err for part in parts), err


def test_a_loop_returning_too_many_metrics_fails_at_epoch_one_with_one_line(tmp_path: Path) -> None:
    # GIVEN a loop returning 200,000 metrics an epoch (W8: the parent then spent 40 minutes loading them)
    started = time.monotonic()
    done = cli("run", "--variant", f"{LOOPS}:Wide", "--epochs", "3", "--results", tmp_path, cwd=tmp_path)
    # THEN the run fails at epoch 1, saying why in one line, in seconds, and its directory loads
    assert done.returncode == 5 and time.monotonic() - started < 60
    assert "epoch 1: train_epoch returned 200,000 metrics; at most 1,000 are recorded" in done.stderr
    meta = json.loads((next(tmp_path.iterdir()) / "meta.json").read_text())
    assert (meta["status"], meta["epochs_done"]) == ("failed", 0)


def test_a_thousand_metrics_are_recorded(tmp_path: Path) -> None:
    # GIVEN a loop returning exactly the limit WHEN run THEN every metric is a column of epochs.csv
    done = cli(
        "run",
        "--variant",
        f"{LOOPS}:Wide",
        "--option",
        "metrics=1000",
        "--epochs",
        "2",
        "--results",
        tmp_path,
        "--quiet",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    header = (Path(done.stdout.strip()) / "epochs.csv").read_text().splitlines()[0]
    assert len(header.split(",")) == len(records.EPOCH_COLUMNS) + 1000


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (["--option", "x=NaN"], ["expected a finite value, got 'x=NaN'"]),
        (["--option", "x=[1, Infinity]"], ["expected a finite value"]),
        (["--learning-rate", "inf"], ["expected a finite number"]),
        # W13: the cap was blamed on the variant ("cannot load variant ...: OverflowError")
        (["--memory-cap", "99999999999999999999999TiB"], ["invalid size", "more than the 1 EiB"]),
    ],
)
def test_run_refuses_values_strict_json_or_the_kernel_cannot_hold(
    tmp_path: Path, args: list[str], parts: list[str]
) -> None:
    done = cli("run", "--variant", f"{LOOPS}:Fast", "--epochs", "2", *args, "--results", tmp_path, cwd=tmp_path)
    one_line_error(done, 2, *parts)
    assert not any(tmp_path.iterdir())  # nothing written


def spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(f'[[runs]]\nvariants = ["{LOOPS}:Fast"]\nepochs = 2\n{body}\n')
    return path


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        ("seeds = 100000000", ["seeds = 100,000,000 is more than the 10,000"]),
        ("seeds = 1000000000000000000", ["is more than the 10,000"]),
        (
            'leaks = ["none"]\nseeds = 9000\nfc_only = [false, true]',
            ["plans 18,000 runs; a spec may plan at most 10,000"],
        ),
        ("timeout = nan", ["timeout must be a positive number"]),
        ("timeout = inf", ["timeout must be a positive number"]),
        ("memory_cap = 0", ["memory_cap must be a size above 0"]),
        ("options = { d = 1979-05-27T07:32:00Z }", ["options must be numbers, text"]),
        ("options = { x = nan }", ["no dates, NaN or infinity"]),
    ],
)
def test_a_spec_with_absurd_or_non_json_values_is_refused_before_planning(
    tmp_path: Path, body: str, parts: list[str]
) -> None:
    # GIVEN a spec with one bad value WHEN swept (dry run) THEN one line, exit 2, in a second and without gigabytes
    started = time.monotonic()
    done = cli("sweep", spec(tmp_path, body), "--dry-run", "--results", tmp_path / "out", cwd=tmp_path)
    one_line_error(done, 2, *parts)
    assert time.monotonic() - started < 30


def test_report_and_sweep_refuse_an_output_path_that_is_a_file(tmp_path: Path) -> None:
    # GIVEN a file where a directory is wanted (W11: FileExistsError tracebacks)
    afile = tmp_path / "afile"
    afile.write_text("hi")
    run = fixture_run_dir("lists-noleak")
    # WHEN report and sweep are pointed at it THEN each says so in one line
    one_line_error(cli("report", run, "--out", afile, cwd=tmp_path), 2, "report directory", "is not a directory")
    one_line_error(cli("sweep", spec(tmp_path, ""), "--results", afile, cwd=tmp_path), 2, "is not a directory")
    one_line_error(
        cli("sweep", spec(tmp_path, ""), "--results", tmp_path / "ok", "--report", afile, cwd=tmp_path),
        2,
        "report directory",
    )
    assert not (tmp_path / "ok").exists()


def test_report_refuses_a_seed_variant_it_has_no_runs_of(tmp_path: Path) -> None:
    # W13: --seed-variant nosuch was accepted silently, leaving an empty seed table
    done = cli("report", fixture_run_dir("lists-noleak"), "--out", tmp_path / "r", "--seed-variant", "nosuch")
    one_line_error(done, 2, "--seed-variant 'nosuch': no run of it is reported (variants: lists)")


def test_a_run_whose_recorder_was_killed_reports_the_epochs_it_recorded(tmp_path: Path) -> None:
    # GIVEN a run left "running" with 6 epochs in epochs.csv (its parent was killed; W13 said "0 epochs recorded")
    run = write_run(tmp_path, "killed", [100_000_000] * 6, status="running", epochs_planned=50, epochs_done=0)
    # WHEN explained and checked THEN both count the 6 epochs
    assert "6 of 50 epochs, running" in cli("explain", run, cwd=tmp_path).stdout
    assert "status running, 6 epochs recorded" in cli("check", run, cwd=tmp_path).stdout
    # AND explain did not write to the meta.json of a running run
    assert json.loads((run / "meta.json").read_text())["growth"] is None


def test_a_traced_run_that_ended_before_its_baseline_is_not_told_to_trace(tmp_path: Path) -> None:
    # W13: "No trace: re-run with --trace" for a run that was traced
    run = write_run(
        tmp_path,
        "short",
        [100_000_000] * 2,
        heap=[1, 2],
        status="failed",
        stop={
            "reason": "failed",
            "epoch": 2,
            "rss_bytes": None,
            "exit_code": 1,
            "stderr_tail": [],
            "message": "boom",
        },
    )
    out = cli("explain", run, cwd=tmp_path).stdout
    assert "the run was traced but ended before its baseline epoch" in out and "re-run with --trace" not in out


def test_a_huge_epoch_count_is_a_long_run_not_a_memory_cap(tmp_path: Path) -> None:
    # GIVEN numpy asked for 10**12 epochs (W13: it preallocated 22 TiB of history and ended as memory_cap at epoch 0)
    done = cli(
        "run",
        "--variant",
        "numpy",
        "--epochs",
        str(10**12),
        "--timeout",
        "4",
        "--memory-cap",
        "300MiB",
        "--results",
        tmp_path,
        "--quiet",
        cwd=tmp_path,
    )
    # THEN it trains until its timeout, as any long run
    assert done.returncode == 4, done.stdout + done.stderr
    assert json.loads((next(tmp_path.iterdir()) / "meta.json").read_text())["epochs_done"] > 10


@pytest.mark.parametrize("command", [["list"], ["explain", "RUN"]])
def test_output_to_a_reader_that_has_gone_ends_quietly(command: list[str]) -> None:
    # GIVEN a command whose output goes to a pipe nobody reads any more (`... | head` after head has exited)
    read, write = os.pipe()
    os.close(read)
    args = [str(fixture_run_dir("181633-numpy-history")) if arg == "RUN" else arg for arg in command]
    try:
        done = subprocess.run(python_argv("-m", "harness", *args), stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    # THEN it stops with status 1 and no traceback, as a command killed by SIGPIPE would
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
