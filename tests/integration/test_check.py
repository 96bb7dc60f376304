"""``python -m harness check``: exit codes and lines for flat, leaking, inconclusive, malformed and missing runs.

Most tests write run directories whose RSS series has a known verdict
(``tests.helpers.write_run``) and call the CLI's ``main`` in-process; one test records a real run with
``python -m harness run`` and checks it with ``python -m harness check``, both
in subprocesses, as a user or CI would.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness import records
from harness.cli import main
from harness.formatting import format_rate
from harness.growth import MIN_BYTES_PER_EPOCH
from harness.storage import load_run
from tests.helpers import MIB, cli, run_dir_of, write_run

# Every test runs from an empty directory: this project's own pyproject.toml budgets must not apply.
pytestmark = pytest.mark.usefixtures("no_project_config")

BASE_RSS = 100 * MIB


def flat_series(epochs: int = 30) -> list[int]:
    """RSS that wanders by a page or two and never climbs."""
    return [BASE_RSS + 4096 * (epoch % 3) for epoch in range(epochs)]


def leaking_series(epochs: int = 30, per_epoch: int = MIB) -> list[int]:
    """RSS that climbs ``per_epoch`` every epoch, with a page of jitter."""
    return [BASE_RSS + per_epoch * epoch + 4096 * (epoch % 2) for epoch in range(epochs)]


def check(*args: str | Path) -> int:
    """``python -m harness check ARGS`` in-process; returns the exit code."""
    return main(["check", *map(str, args)])


def test_flat_run_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a run whose RSS does not grow
    run_dir = write_run(tmp_path, "flat", flat_series())
    # WHEN it is checked with a growth budget
    code = check(run_dir, "--max-growth", "64KiB")
    # THEN it passes, one "ok" line naming the run and its budget
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(lines) == 1
    assert lines[0].startswith(f"ok {run_dir} (numpy): RSS flat, ") and lines[0].endswith("; budget 64.0 KiB/epoch")


def test_leaking_run_fails_with_rate_and_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a flat run and a run growing 1 MiB per epoch
    flat = write_run(tmp_path, "flat", flat_series())
    leaking = write_run(tmp_path, "leaking", leaking_series(), leak="history")
    # WHEN both are checked against 64 KiB/epoch
    code = check(flat, leaking, "--max-growth", "64 KiB")
    # THEN the exit code is 1 and the leaking run's line says how much it grew against which budget
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert len(lines) == 2 and lines[0].startswith(f"ok {flat} ")
    assert lines[1] == (
        f"FAIL {leaking} (numpy:history): RSS grew 1.0 MiB/epoch over 30 epochs "
        "(95% CI 1.0-1.0 MiB); budget 64.0 KiB/epoch"
    )


def test_without_budget_a_leak_verdict_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a leaking run and no budget at all
    leaking = write_run(tmp_path, "leaking", leaking_series())
    # THEN the leak verdict alone fails it, at the verdict's threshold
    assert check(leaking) == 1
    assert (
        f"budget {format_rate(MIN_BYTES_PER_EPOCH)} (the leak threshold: no max-growth set)" in capsys.readouterr().out
    )


def test_growth_within_budget_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a run growing 1 MiB per epoch and a budget of 2 MiB per epoch
    leaking = write_run(tmp_path, "leaking", leaking_series())
    # THEN it passes: known growth within budget is allowed
    assert check(leaking, "--max-growth", "2MiB") == 0
    assert capsys.readouterr().out.startswith(f"ok {leaking} (numpy): RSS leak, +1.0 MiB/epoch")


def test_inconclusive_is_reported_and_fails_only_when_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a run with too few epochs for a verdict
    short = write_run(tmp_path, "short", flat_series(4))
    # WHEN checked without and with --strict
    lenient = check(short, "--max-growth", "64KiB")
    lenient_out = capsys.readouterr().out
    strict = check(short, "--max-growth", "64KiB", "--strict")
    strict_out = capsys.readouterr().out
    # THEN it is reported as inconclusive either way, and fails only with --strict
    assert lenient == 0
    assert lenient_out.startswith(f"inconclusive {short} (numpy): ") and "only 4 epochs" in lenient_out
    assert strict == 1
    assert strict_out.startswith(f"FAIL {short} (numpy): RSS inconclusive, ") and "only 4 epochs" in strict_out


def test_peak_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a flat run whose peak RSS reached 300 MiB
    run_dir = write_run(tmp_path, "peaky", flat_series(), peak=300 * MIB)
    # THEN a 256 MiB peak budget fails by 44 MiB, and a 512 MiB one passes
    assert check(run_dir, "--max-peak", "256MiB") == 1
    assert capsys.readouterr().out.strip().endswith("peak RSS 300.0 MiB is over the 256.0 MiB budget by 44.0 MiB")
    assert check(run_dir, "--max-peak", "512MiB") == 0


def test_budgets_per_variant_and_leak_from_pyproject(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a pyproject.toml with a budget for numpy and an expected leak for numpy:history
    config = tmp_path / "pyproject.toml"
    config.write_text("""
[tool.leakbench]
max-growth = "8 KiB"

[tool.leakbench.budgets.numpy]
max-growth = "2 MiB"

[tool.leakbench.budgets."numpy:history"]
expect = "leak"
""")
    grows = write_run(tmp_path, "grows", leaking_series())
    caught = write_run(tmp_path, "caught", leaking_series(), leak="history")
    missed = write_run(tmp_path, "missed", flat_series(), leak="history")
    other = write_run(tmp_path, "other", leaking_series(), variant="lists")
    # WHEN they are checked with that configuration
    code = check(grows, caught, missed, other, "--config", config)
    lines = capsys.readouterr().out.splitlines()
    # THEN numpy's own budget, the expected leak, and the default budget each apply to their runs
    assert code == 1
    # (a note may follow the budget: these synthetic runs' Python blocks stay flat, so their growth reads native)
    assert lines[0].startswith(f"ok {grows} (numpy): ") and "; budget 2.0 MiB/epoch" in lines[0]
    assert lines[1].startswith(f"ok {caught} (numpy:history): RSS leak, ") and "a leak was expected" in lines[1]
    assert lines[2].startswith(f"FAIL {missed} (numpy:history): expected a leak, but RSS flat, ")
    assert lines[3].startswith(f"FAIL {other} (lists): ") and "; budget 8.0 KiB/epoch" in lines[3]


def test_an_expected_leak_can_be_caught_by_its_own_peak_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a leak that grows and then stops (copy-on-write pages copied into loader workers), whose entry
    # says a 200 MiB peak must catch it
    config = tmp_path / "pyproject.toml"
    config.write_text("""
[tool.leakbench.budgets."numpy:history"]
expect = "leak"
max-peak = "200 MiB"
""")
    saturated = [100 * MIB] * 2 + [370 * MIB] * 10
    caught = write_run(tmp_path, "caught", saturated, leak="history")
    missed = write_run(tmp_path, "missed", [100 * MIB] * 12, leak="history")
    # WHEN both are checked
    code = check(caught, missed, "--config", config)
    lines = capsys.readouterr().out.splitlines()
    # THEN the one over its peak budget is caught though its verdict is flat; the other fails, saying its peak
    assert code == 1
    assert lines[0].startswith(f"ok {caught} (numpy:history): RSS flat, ")
    assert "peak RSS 370.0 MiB is over the 200.0 MiB budget by 170.0 MiB" in lines[0]
    assert lines[1].startswith(f"FAIL {missed} (numpy:history): expected a leak, but RSS flat, ")
    assert lines[1].endswith("(peak RSS 100.0 MiB within 200.0 MiB)")


def test_pyproject_in_the_working_directory_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN ./pyproject.toml allowing numpy 2 MiB/epoch, and a run growing 1 MiB/epoch
    Path("pyproject.toml").write_text('[tool.leakbench.budgets.numpy]\nmax-growth = "2 MiB"\n')
    grows = write_run(tmp_path, "grows", leaking_series())
    # THEN it is within budget without --config, and --max-growth overrides the file
    assert check(grows) == 0
    assert check(grows, "--max-growth", "512KiB") == 1
    assert capsys.readouterr().out.splitlines()[-1].endswith("budget 512.0 KiB/epoch")


def test_unfinished_runs_fail_unless_a_leak_hit_the_cap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a run whose worker failed and a leak run stopped by the memory cap
    stop = {
        "reason": records.FAILED,
        "epoch": 3,
        "rss_bytes": None,
        "exit_code": 1,
        "stderr_tail": [],
        "message": "training: ValueError: boom",
    }
    failed = write_run(tmp_path, "failed", flat_series(3), status=records.FAILED, stop=stop)
    capped = write_run(
        tmp_path,
        "capped",
        leaking_series(8, 300 * MIB),
        leak="history",
        status=records.MEMORY_CAP,
        stop={
            **stop,
            "reason": records.MEMORY_CAP,
            "epoch": 8,
            "rss_bytes": 4200 * MIB,
            "message": "",
        },
    )
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.leakbench.budgets."numpy:history"]\nexpect = "leak"\n')
    # WHEN each is checked
    failed_code = check(failed, "--config", config)
    failed_out = capsys.readouterr().out
    capped_expected = check(capped, "--config", config)
    capped_budgeted = check(capped, "--max-growth", "64KiB")
    capped_out = capsys.readouterr().out.splitlines()
    # THEN the failed run fails saying why; the capped leak passes when expected and fails against a budget
    assert failed_code == 1
    assert failed_out.strip() == f"FAIL {failed} (numpy): the run failed after epoch 3/3: training: ValueError: boom"
    assert capped_expected == 0 and "the leak reached the memory cap after epoch 8/8" in capped_out[0]
    assert capped_budgeted == 1
    assert "stopped by the 4.0 GiB memory cap at RSS 4.1 GiB after epoch 8/8" in capped_out[1]


def test_growth_is_stored_when_the_run_has_none(tmp_path: Path) -> None:
    # GIVEN a run directory whose meta.json has no growth yet
    leaking = write_run(tmp_path, "leaking", leaking_series())
    assert load_run(leaking).meta["growth"] is None
    # WHEN it is checked
    check(leaking, "--max-growth", "2MiB")
    # THEN its verdict is stored in meta.json, as `explain` does
    growth = load_run(leaking).meta["growth"]
    assert growth["verdict"] == "leak"
    assert growth["bytes_per_epoch"] == pytest.approx(MIB, rel=0.01)


@pytest.mark.parametrize(
    ("meta_text", "message"),
    [
        (None, "is not a directory"),
        ("", "has no meta.json"),
        ("{not json", "cannot read"),
        ('{"schema_version": 99}', "schema_version 99"),
        ('{"schema_version": 1}', "not valid run metadata"),
    ],
    ids=["missing", "no-meta", "bad-json", "future-schema", "incomplete-meta"],
)
def test_missing_or_malformed_run_dirs_are_usage_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    meta_text: str | None,
    message: str,
) -> None:
    # GIVEN a good run listed before a directory that cannot be read
    good = write_run(tmp_path, "good", flat_series())
    bad = tmp_path / "bad"
    if meta_text is not None:  # None: the directory does not exist
        bad.mkdir()
    if meta_text:  # "": a directory without meta.json
        (bad / "meta.json").write_text(meta_text)
    # WHEN both are checked
    code = check(good, bad)
    captured = capsys.readouterr()
    # THEN the exit code is 2 with one line on stderr saying why, and no half report on stdout
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("leakbench: error: ") and message in captured.err
    assert len(captured.err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-growth", "lots"], "max-growth: invalid size 'lots'"),
        (["--max-peak", "12 XB"], "max-peak: invalid size '12 XB'"),
        (["--config", "missing.toml"], "no configuration file 'missing.toml'"),
    ],
    ids=["bad-growth", "bad-peak", "missing-config"],
)
def test_bad_options_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    # GIVEN a good run and a bad option
    good = write_run(tmp_path, "good", flat_series())
    # THEN the exit code is 2 and the one line quotes the bad input
    assert check(good, *args) == 2
    assert message in capsys.readouterr().err


def test_bad_budget_table_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a configuration with an unreadable size
    config = tmp_path / "pyproject.toml"
    config.write_text('[tool.leakbench.budgets.numpy]\nmax-growth = "16 KB per epoch"\n')
    # THEN check names the file, the entry, the key and the bad value
    assert check(write_run(tmp_path, "good", flat_series()), "--config", config) == 2
    err = capsys.readouterr().err
    assert "[tool.leakbench.budgets.\"numpy\"]: max-growth: invalid size '16 KB per epoch'" in err


def test_run_then_check_end_to_end(tmp_path: Path) -> None:
    # GIVEN a user's loop that keeps 1 MiB more every epoch, recorded by the real runner
    loop = tmp_path / "grow_loop.py"
    loop.write_text(
        "class GrowLoop:\n"
        "    def __init__(self, config):\n"
        "        self.kept = []\n"
        "    def train_epoch(self, epoch):\n"
        "        self.kept.append(bytearray(1 << 20))\n"
        "        return {'loss': 1.0 / epoch}\n"
    )
    recorded = cli(
        "run", "--variant", f"{loop}:GrowLoop", "--epochs", "12", "--results", tmp_path / "results", "--quiet"
    )
    assert recorded.returncode == 0, recorded.stderr
    run_dir = str(run_dir_of(recorded, tmp_path))

    def check_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return cli("check", run_dir, *args, timeout=60)

    # WHEN it is checked against a budget below and one above its growth
    over = check_cli("--max-growth", "64KiB")
    within = check_cli("--max-growth", "4MiB")
    # THEN the first fails (exit 1) with the rate, the second passes (exit 0)
    assert over.returncode == 1, over.stderr
    assert over.stdout.startswith(f"FAIL {run_dir} ({loop}:GrowLoop): RSS grew ")
    # the rate is printed to 3 significant figures: 1.0 or 1.01 MiB/epoch depending on the allocator's rounding
    assert re.search(r"RSS grew 1\.0\d? MiB/epoch over 12 epochs", over.stdout), over.stdout
    assert over.stdout.rstrip().endswith("budget 64.0 KiB/epoch")
    assert within.returncode == 0, within.stderr
    assert within.stdout.startswith(f"ok {run_dir} ")
