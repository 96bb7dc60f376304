"""`python -m harness compare` in a subprocess on two stored fixture runs: the table, the exit code on a regression."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli, fixture_run_dir


def test_the_compare_command_fails_on_a_regression_only_when_asked(
    tmp_path: Path,
) -> None:
    fixed, leaky = fixture_run_dir("lists-noleak"), fixture_run_dir("lists-recursion-s0-e3f659")
    # WHEN the leak is the candidate, without and with --fail-on-regression
    plain = cli("compare", fixed, leaky, timeout=60)
    strict = cli("compare", fixed, leaky, "--fail-on-regression", timeout=60)
    # THEN the table is printed both times, and only the strict one exits 1, naming the growth regression
    assert plain.returncode == 0 and strict.returncode == 1, strict.stderr
    assert "growth per epoch" in plain.stdout and "worse" in plain.stdout
    assert "regression: lists CNN none -> lists CNN recursion: growth per epoch" in strict.stdout
    # WHEN the fix is the candidate THEN nothing regressed
    fixed_wins = cli("compare", leaky, fixed, "--fail-on-regression", timeout=60)
    assert fixed_wins.returncode == 0, fixed_wins.stdout
