"""How fast a run reacts to its processes: the cap on a child allocating 1 GiB, and the end of a run with an open Pool.

    python benchmarks/bench_tree_reaction.py                   # 10 capped runs per child kind, 20 Pool runs
    python benchmarks/bench_tree_reaction.py --cap-runs 3 --pool-runs 5

Cap: ``tests/fixtures/tree_loops.py:ChildAlloc`` starts, in epoch 1, a child that
allocates 1 GiB in 8 MiB steps, logging its RSS and the time after each, under
``--memory-cap 300MiB``; as a new Python (subprocess), the same in a session of
its own (setsid), or a multiprocessing fork.  The tree passed the cap no earlier
than when the worker's PSS plus the child's RSS (at least its PSS) did; the
reaction is the time from then to the sample that stopped the run (an upper
bound of the true reaction).  Pool: ``PoolLoop`` makes a fork Pool it never
closes; the lag is from the end of its last epoch to ``run``'s exit.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.storage import load_run

LOOPS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "tree_loops.py"
MiB = 1024 * 1024
CAP = 300 * MiB


def events(log: Path) -> list[tuple[str, float, str]]:
    """The loop's log lines: (event, time.monotonic(), value)."""
    return [(name, float(t), value) for name, t, value in (line.split(" ", 2) for line in log.read_text().splitlines())]


def cap_reaction(mode: str) -> tuple[int, float, float]:
    """(exit code, reaction in seconds, the tree's PSS at the stop in MiB) of one capped run."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log"
        options = ["--option", f"mode={mode}", "--option", f"log={log}"]
        command = [sys.executable, "-m", "harness", "run", "--variant", f"{LOOPS}:ChildAlloc", *options]
        command += ["--epochs", "200", "--memory-cap", str(CAP), "--results", tmp, "--quiet"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        run = load_run(done.stdout.strip().splitlines()[-1])
        logged = events(log)
        t0 = next(t for name, t, _ in logged if name == "epoch1")
        alone = run.samples.loc[run.samples["children"] == 0, "tree_pss_bytes"].dropna()
        worker = int(alone.max()) if len(alone) else int(run.epochs["tree_pss_bytes"].dropna().iloc[0])
        passed = next(t for name, t, value in logged if name == "child_rss" and worker + int(value) > CAP)
        stopped = t0 + float(run.samples["t_s"].iloc[-1])
        return done.returncode, stopped - passed, run.meta["stop"]["tree_pss_bytes"] / MiB


def pool_lag() -> tuple[int, float]:
    """(exit code, seconds from the last epoch's end to run's exit) of one run with an open Pool."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log"
        command = [sys.executable, "-m", "harness", "run", "--variant", f"{LOOPS}:PoolLoop", "--option", f"log={log}"]
        done = subprocess.run(
            [*command, "--epochs", "5", "--results", tmp, "--quiet"], capture_output=True, check=False
        )
        ended = time.monotonic()
        return done.returncode, ended - next(t for name, t, _ in events(log) if name == "last_epoch_end")


def main() -> None:
    """Run both measurements and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-runs", type=int, default=10)
    parser.add_argument("--pool-runs", type=int, default=20)
    args = parser.parse_args()
    for mode in ("subprocess", "setsid", "fork"):
        results = [cap_reaction(mode) for _ in range(args.cap_runs)]
        reactions = sorted(reaction for _, reaction, _ in results)
        stops = [pss for _, _, pss in results]
        print(
            f"cap, child {mode:<10}: exit {sorted({code for code, _, _ in results})}, reaction median "
            f"{statistics.median(reactions) * 1000:.0f} ms, max {reactions[-1] * 1000:.0f} ms, within 50 ms "
            f"{sum(r <= 0.05 for r in reactions)} of {len(reactions)}; tree PSS at the stop "
            f"{min(stops):.0f}-{max(stops):.0f} MiB"
        )
    lags = [pool_lag() for _ in range(args.pool_runs)]
    if not lags:
        return
    within = sum(code == 0 and lag < 2.0 for code, lag in lags)
    print(
        f"Pool left open: {within} of {len(lags)} completed (exit 0) within 2 s of the last epoch; lag median "
        f"{statistics.median(lag for _, lag in lags):.2f} s, max {max(lag for _, lag in lags):.2f} s"
    )


if __name__ == "__main__":
    main()
