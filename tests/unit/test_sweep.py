"""Sweeps in-process: spec parsing and expansion, the bundled seed spec, and sweeps through a fake runner
(resuming, progress, failures).  A real sweep in a subprocess is in tests/integration/test_sweep.py."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness import sweep
from harness.errors import UsageError
from harness.loops import VARIANTS, class_leaks, resolve_class
from harness.sweep import spec as sweep_spec
from tests.helpers import TINY_SWEEP, write_run

TINY_SPEC = TINY_SWEEP.read_text()


def spec_of(text: str) -> sweep.Spec:
    """Parse a spec given as TOML text."""
    import tomllib

    return sweep.parse_spec(tomllib.loads(text), "test")


class FakeRunner:
    """Stands in for `python -m harness run`: writes a run directory (meta.json, no epochs) and prints its path."""

    def __init__(self, status: str = "completed", exit_code: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.status, self.exit_code = status, exit_code

    def __call__(self, argv: list[str], *ignored: object) -> subprocess.CompletedProcess[str]:
        self.calls.append(argv)
        options = dict(itertools.pairwise(argv))
        run_dir = stored_run(
            Path(options["--results"]),
            f"run-{len(self.calls)}",
            options["--variant"],
            options.get("--leak"),
            int(options["--seed"]),
            int(options["--epochs"]),
            "--fc-only" in argv,
            "--trace" in argv,
            self.status,
        )
        return subprocess.CompletedProcess(argv, self.exit_code, f"growth: flat\n{run_dir}\n", "")


def stored_run(
    results: Path,
    name: str,
    variant: str,
    leak: str | None,
    seed: int,
    epochs: int,
    fc_only: bool = False,
    trace: bool = False,
    status: str = "completed",
    cap: int = 2**30,
) -> Path:
    """A run directory as a sweep finds it, with the parameters a sweep matches on; no epochs recorded."""
    return write_run(
        results,
        name,
        variant=variant,
        leak=leak,
        seed=seed,
        epochs_planned=epochs,
        options={"fc_only": True} if fc_only else {},
        trace=trace,
        status=status,
        memory_cap_bytes=cap,
    )


def test_a_spec_expands_to_the_product_of_its_lists() -> None:
    # GIVEN a group with 2 leaks x 2 models x 3 seeds
    spec = spec_of(
        '[[runs]]\nvariants = ["numpy"]\nleaks = ["none", "history"]\nfc_only = [false, true]\n'
        'seeds = [4, 5, 6]\nepochs = 7\nmemory_cap = "300MiB"\n'
    )
    # WHEN it is parsed THEN there are 12 runs, each with the group's settings
    assert len(spec.runs) == 12
    assert {(r.leak, r.fc_only, r.seed) for r in spec.runs} == {
        (leak, fc, seed) for leak in (None, "history") for fc in (False, True) for seed in (4, 5, 6)
    }
    assert all(r.epochs == 7 and r.memory_cap == "300MiB" and r.variant == "numpy" for r in spec.runs)
    assert spec.name == "test"


def test_an_optional_variant_that_does_not_import_is_left_out_and_named(monkeypatch) -> None:
    # GIVEN torch marked optional and (as on a machine without the extra) not importable
    # parse_spec looks variant_available up in sweep_spec, where it is defined
    monkeypatch.setattr(sweep_spec, "variant_available", lambda name: name != "torch")
    spec = sweep.parse_spec({"runs": [{"variants": ["numpy", "torch"], "optional": True, "epochs": 3}]}, "t")
    # THEN only numpy is planned and the spec says which variant it left out
    assert [run.variant for run in spec.runs] == ["numpy"]
    assert spec.unavailable == ("torch",)


def test_options_are_passed_to_run_and_take_part_in_matching(tmp_path: Path) -> None:
    # GIVEN a group with variant options
    spec = sweep.parse_spec(
        {"runs": [{"variants": ["torch"], "epochs": 3, "options": {"threads": 1, "tag": "a"}}]}, "t"
    )
    (planned,) = spec.runs
    # THEN they reach the command line as --option KEY=JSON
    argv = planned.argv(tmp_path)
    assert argv[argv.index("--option") :] == ["--option", 'tag="a"', "--option", "threads=1"]
    # AND a stored run matches only with the same options
    meta = {
        "variant": "torch",
        "leak": None,
        "seed": 0,
        "epochs_planned": 3,
        "trace": False,
        "config": {"options": {"threads": 1, "tag": "a"}},
    }
    assert planned.matches(meta)
    assert not planned.matches(meta | {"config": {"options": {"threads": 2, "tag": "a"}}})
    with pytest.raises(UsageError, match="options must be a table"):
        sweep.parse_spec({"runs": [{"variants": ["numpy"], "options": {"fc_only": True}}]}, "t")


def test_seeds_as_a_count_mean_zero_to_n_minus_one_and_repeated_runs_are_run_once() -> None:
    # GIVEN the same group twice, with seeds as a count
    spec = spec_of('[[runs]]\nvariants = ["lists"]\nseeds = 3\n[[runs]]\nvariants = ["lists"]\nseeds = [2]\n')
    # THEN seeds 0, 1, 2 appear once each
    assert [r.seed for r in spec.runs] == [0, 1, 2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[runs]]\nvariants = ["numpy"]\nepoch = 5\n', "unknown keys epoch"),
        ('[[runs]]\nvariants = ["numpy"]\nseeds = -1\n', "seeds must be"),
        (
            '[[runs]]\nvariants = ["numpy"]\nepochs = 0\n',
            "epochs must be a positive integer",
        ),
        (
            '[[runs]]\nvariants = ["numpy"]\nmemory_cap = "lots"\n',
            "invalid size 'lots'",
        ),
        ('[[runs]]\nleaks = ["history"]\n', "variants is required"),
        ('[[runs]]\nvariants = ["numpy"]\nfc_only = "yes"\n', "fc_only must be"),
        ('title = "x"\n[[runs]]\nvariants = ["numpy"]\n', "unknown keys title"),
        ('name = "x"\n', "at least one [[runs]]"),
    ],
)
def test_a_bad_spec_is_refused_with_one_line_naming_the_problem(text: str, message: str) -> None:
    # WHEN a spec with a mistake is parsed THEN a UsageError names it
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        spec_of(text)


def test_an_unknown_spec_name_lists_the_bundled_ones(tmp_path: Path) -> None:
    # WHEN a spec is neither a file nor a bundled name THEN the message names the accepted names
    with pytest.raises(UsageError, match=r"bundled spec name .*seed"):
        sweep.load_spec(str(tmp_path / "missing.toml"))


def test_the_bundled_seed_spec_reproduces_the_seed_and_every_leak() -> None:
    # GIVEN the bundled spec, loaded by name as `python -m harness sweep seed` does
    spec = sweep.load_spec("seed")
    runs = spec.runs
    # THEN the seed's table: numpy, 10 seeds each of CNN and fc-only, 500 epochs, no leak
    for fc_only in (False, True):
        table_runs = [r for r in runs if r.variant == "numpy" and r.epochs == 500 and r.fc_only == fc_only]
        assert sorted(r.seed for r in table_runs) == list(range(10))
        assert all(r.leak is None for r in table_runs)
    # AND every available variant runs with each of its leaks and without, the leak runs under a memory cap
    for name in VARIANTS:
        if not sweep.variant_available(name):
            continue
        mine = [r for r in runs if r.variant == name and not r.fc_only and not r.trace]
        leaks = {r.leak for r in mine}
        assert None in leaks and leaks - {None} == set(class_leaks(resolve_class(name))), name
        assert all(r.memory_cap for r in mine if r.leak), name
        # AND a leak run and its fixed partner have the same length, so the headline sets them side by side
        assert len({r.epochs for r in mine if r.epochs != 500}) == 1, name


def test_argv_runs_the_harness_quietly_in_this_interpreter(tmp_path: Path) -> None:
    # GIVEN a planned leak run with every option
    run = sweep.PlannedRun("numpy", "history", 3, 20, True, "1GiB", 60.0, True)
    # WHEN it becomes a command line THEN it is `python -m harness run` with each option
    argv = run.argv(tmp_path)
    assert argv[:4] == [sys.executable, "-m", "harness", "run"]
    text = " ".join(argv[4:])
    for part in (
        "--variant numpy",
        "--leak history",
        "--seed 3",
        "--epochs 20",
        "--fc-only",
        "--memory-cap 1GiB",
        "--timeout 60",
        "--trace",
        "--quiet",
        f"--results {tmp_path}",
    ):
        assert part in text


def test_a_sweep_runs_everything_once_and_a_second_sweep_repeats_nothing(
    tmp_path: Path,
) -> None:
    # GIVEN the tiny spec and a fake runner
    spec, runner, log = spec_of(TINY_SPEC), FakeRunner(), io.StringIO()
    # WHEN it is swept
    outcomes = sweep.run_sweep(spec, tmp_path, log=log, runner=runner)
    # THEN each run was performed once, with progress i/N and an ETA per run
    assert len(runner.calls) == 3 and [o.status for o in outcomes] == ["completed"] * 3
    lines = log.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == ["[1/3", "[2/3", "[3/3"]
    assert all("ETA" in line for line in lines)
    # AND a manifest lists the runs and their directories
    manifest = json.loads((tmp_path / "sweep-tiny.json").read_text())
    assert [entry["run_dir"] for entry in manifest["runs"]] == [
        "run-1",
        "run-2",
        "run-3",
    ]
    # WHEN the same sweep runs again THEN nothing is repeated and each run is named as already done
    again, log2 = FakeRunner(), io.StringIO()
    outcomes2 = sweep.run_sweep(spec, tmp_path, log=log2, runner=again)
    assert again.calls == []
    assert [o.status for o in outcomes2] == ["skipped"] * 3
    assert log2.getvalue().count("already done") == 3


def test_a_resumed_sweep_redoes_failed_and_missing_runs_only(tmp_path: Path) -> None:
    # GIVEN a results directory with seed 0 completed, seed 1 failed, and the leak run stopped by its cap
    stored_run(tmp_path, "done", "numpy", None, 0, 20)
    stored_run(tmp_path, "failed", "numpy", None, 1, 20, status="failed")
    stored_run(tmp_path, "capped", "numpy", "history", 0, 20, status="memory_cap")
    # AND runs with other parameters that must not count: other epochs, another memory cap than the spec's
    stored_run(tmp_path, "other", "numpy", None, 1, 21)
    stored_run(
        tmp_path,
        "other-cap",
        "numpy",
        "history",
        0,
        20,
        status="memory_cap",
        cap=2**29,
    )
    runner = FakeRunner()
    # WHEN the tiny spec is swept into it
    outcomes = sweep.run_sweep(spec_of(TINY_SPEC), tmp_path, log=io.StringIO(), runner=runner)
    # THEN only seed 1 is run again (a memory_cap ending is a finished leak run)
    assert len(runner.calls) == 1 and "--seed" in runner.calls[0]
    assert runner.calls[0][runner.calls[0].index("--seed") + 1] == "1"
    assert [o.status for o in outcomes] == ["skipped", "completed", "skipped"]
    assert outcomes[0].run_dir == tmp_path / "done" and outcomes[2].run_dir == tmp_path / "capped"


def test_a_failed_run_is_reported_and_the_sweep_goes_on(tmp_path: Path) -> None:
    # GIVEN a runner whose runs fail (exit 5)
    runner = FakeRunner(status="failed", exit_code=5)
    # WHEN swept THEN every run was tried and each outcome says failed
    outcomes = sweep.run_sweep(spec_of(TINY_SPEC), tmp_path, log=io.StringIO(), runner=runner)
    assert len(runner.calls) == 3 and {o.status for o in outcomes} == {"failed"}


def test_a_usage_error_stops_the_sweep_at_once(tmp_path: Path) -> None:
    # GIVEN a runner that refuses its arguments (exit 2, as for a leak a variant does not have)
    def refuse(argv: list[str], *ignored: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 2, "", "leakbench: error: unknown leak 'x'\n")

    # WHEN swept THEN it stops after the first run, whose message is kept
    outcomes = sweep.run_sweep(spec_of(TINY_SPEC), tmp_path, log=io.StringIO(), runner=refuse)
    assert len(outcomes) == 1 and outcomes[0].status == "error"
    assert "unknown leak" in outcomes[0].message


def test_the_eta_uses_seconds_per_epoch_measured_per_variant() -> None:
    # GIVEN 10 s measured for a 20-epoch numpy run
    eta = sweep.Eta()
    eta.record(sweep.PlannedRun("numpy", None, 0, 20, False), 10.0)
    # THEN 40 more numpy epochs (either model) take 20 s, and an unmeasured variant is named as such
    numpy_runs = [
        sweep.PlannedRun("numpy", None, 1, 20, False),
        sweep.PlannedRun("numpy", None, 1, 20, True),
    ]
    assert eta.remaining(numpy_runs) == (20.0, [])
    assert (
        eta.describe([*numpy_runs, sweep.PlannedRun("lists", None, 0, 12, False)]) == "ETA 20s + lists (not timed yet)"
    )
    assert eta.describe([sweep.PlannedRun("numpy", None, 2, 7450, False)]) == "ETA 1h02m"


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", "n" * 101, "with space", ""])
def test_a_spec_name_that_is_not_a_name_is_refused_before_anything_runs(name: str) -> None:
    # WHEN a spec's name is a path, too long or has other characters THEN one line says what a name may hold
    with pytest.raises(UsageError, match=r"must be 1-100 letters, digits, '\.', '_' or '-': a name, not a path"):
        sweep.parse_spec({"name": name, "runs": [{"variants": ["numpy"]}]}, "t")


def test_a_file_name_that_is_no_name_must_be_given_one() -> None:
    # GIVEN a spec without a name, in a file whose stem is not a name
    with pytest.raises(UsageError, match=r"from its file name; set name = \"...\" in it"):
        sweep.parse_spec({"runs": [{"variants": ["numpy"]}]}, "my sweep")


def test_timing_groups_are_marked_and_the_seed_table_is_one() -> None:
    # GIVEN a group with timing = true
    spec = spec_of('[[runs]]\nvariants = ["numpy"]\ntiming = true\n[[runs]]\nvariants = ["lists"]\n')
    # THEN its runs are timing runs, the others not, and timing takes no part in matching a stored run
    assert [run.timing for run in spec.runs] == [True, False]
    assert spec.runs[0].key() == sweep.PlannedRun("numpy", None, 0, 500, False).key()
    with pytest.raises(UsageError, match="trace, optional and timing must be true or false"):
        spec_of('[[runs]]\nvariants = ["numpy"]\ntiming = "yes"\n')
    # AND in the bundled seed spec, exactly the seed table's 500-epoch runs are timed
    seed = sweep.load_spec("seed")
    assert {run.timing for run in seed.runs if run.epochs == 500} == {True}
    assert {run.timing for run in seed.runs if run.epochs != 500} == {False}
