"""The seed sweep two at a time against one at a time: wall time, and the same records.

    python benchmarks/bench_sweep_jobs.py                  # 2 rounds: jobs 1, 2, 2, 1 (ABBA), then the table
    python benchmarks/bench_sweep_jobs.py --rounds 1 --json out.json
    python benchmarks/bench_sweep_jobs.py --spec tests/fixtures/tiny_sweep.toml --rounds 1   # a check in a minute

The bundled ``seed`` spec without its timing group (the seed table's 20 runs of
500 epochs, which run one at a time whatever ``--jobs`` says), swept from
scratch into a fresh directory with ``python -m harness sweep SPEC --jobs N``,
the two orders alternating so machine drift hits both alike.  Printed: each
sweep's wall time with the load average (mean of 1 s samples of the 1-minute
figure) while it ran, the ratio of the median wall times, and whether every
run's status, verdict, epochs and losses are the same in every sweep as in
the first one-at-a-time sweep (losses compared exactly, epoch by epoch; a run
stopped by its memory cap over the epochs both sweeps recorded).  Each sweep runs
with a machine registry of its own (LEAKBENCH_MACHINE_DIR), so runs of other
work do not count as sharing its machine (the load average still shows them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from harness.storage import load_runs


def untimed_spec(source: Path | None, path: Path) -> int:
    """Write the spec ``source`` (default: the bundled seed) without its timing groups to ``path``; groups kept."""
    text = source.read_text() if source else (resources.files("harness") / "specs" / "seed.toml").read_text()
    data = tomllib.loads(text)
    groups = [group for group in data["runs"] if not group.get("timing")]
    lines = [f'name = "{data.get("name", source.stem if source else "seed")}-untimed"']
    for group in groups:
        lines.append("[[runs]]")
        for key, value in group.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
                lines.append(f"{key} = {{ {inner} }}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return len(groups)


def sweep(spec: Path, jobs: int, root: Path) -> dict[str, Any]:
    """One sweep from scratch: wall time, load average while it ran, and its runs' records."""
    results, machine = Path(tempfile.mkdtemp(dir=root)), Path(tempfile.mkdtemp(dir=root))
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(1.0):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    begin = time.monotonic()
    finished = subprocess.run(
        [sys.executable, "-m", "harness", "sweep", str(spec), "--results", str(results), "--jobs", str(jobs)],
        capture_output=True,
        text=True,
        env=os.environ | {"LEAKBENCH_MACHINE_DIR": str(machine)},
        check=False,
    )
    wall = time.monotonic() - begin
    done.set()
    sampler.join()
    if finished.returncode != 0:
        sys.exit(f"sweep --jobs {jobs} exited {finished.returncode}: {finished.stderr.strip()[-500:]}")
    records = {}
    for run in load_runs([results]):
        meta = run.meta
        key = f"{meta['variant']} {meta['leak'] or 'none'} s{meta['seed']}{' traced' if meta['trace'] else ''}"
        losses = [float(value) for value in run.epochs["loss"]]
        verdict = (meta.get("growth") or {}).get("verdict")
        records[key] = [meta["status"], verdict, meta["epochs_done"], losses]
    load = statistics.mean(loads) if loads else os.getloadavg()[0]
    return {"jobs": jobs, "wall_s": wall, "load": load, "records": records}


def alike(got: list[Any] | None, want: list[Any] | None) -> bool:
    """The same status and verdict, and losses equal bit for bit over the epochs both recorded.

    A run stopped by its memory cap may stop an epoch earlier or later from one sweep to the next, even one at a
    time (the cap is checked on 50 ms samples, the crossing falls anywhere in an epoch): its epochs are not compared.
    """
    if got is None or want is None:
        return got is want
    (status, verdict, epochs, losses), (status_w, verdict_w, epochs_w, losses_w) = got, want
    common = min(len(losses), len(losses_w))
    same_length = epochs == epochs_w or status == status_w == "memory_cap"
    return (status, verdict) == (status_w, verdict_w) and same_length and losses[:common] == losses_w[:common]


def brief(record: list[Any] | None) -> list[Any] | None:
    """Status, verdict, epochs and the final loss of a record."""
    return [*record[:3], record[3][-1] if record[3] else None] if record else record


def main() -> None:
    """Sweep in ABBA order, print each sweep and the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (jobs 1, jobs 2), alternating order")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--spec", type=Path, help="sweep this spec file instead of the seed (its timing groups left out)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = root / "untimed.toml"
        groups = untimed_spec(args.spec, spec)
        print(f"{args.spec or 'seed'} spec without its timing groups: {groups} groups; cpu count {os.cpu_count()}")
        sweeps = []
        for index in range(args.rounds):
            for jobs in (1, 2) if index % 2 == 0 else (2, 1):
                sweeps.append(sweep(spec, jobs, root))
                last = sweeps[-1]
                print(
                    f"round {index + 1}, --jobs {jobs}: {last['wall_s']:.1f} s wall, {len(last['records'])} runs, "
                    f"load average {last['load']:.2f}",
                    flush=True,
                )
    reference = next(s for s in sweeps if s["jobs"] == 1)["records"]
    same = all(alike(s["records"].get(key), record) for s in sweeps for key, record in reference.items())
    walls = {jobs: statistics.median(s["wall_s"] for s in sweeps if s["jobs"] == jobs) for jobs in (1, 2)}
    print(f"\nwall time, median: --jobs 1 {walls[1]:.1f} s, --jobs 2 {walls[2]:.1f} s; ratio {walls[2] / walls[1]:.2f}")
    print(f"load average while sweeping: {statistics.mean(s['load'] for s in sweeps):.2f} (mean of the sweeps)")
    print(f"every run's status, verdict, epochs and losses (bit for bit) alike in all {len(sweeps)} sweeps: {same}")
    print("(a run stopped by its memory cap: its losses up to the earlier stop; the stop epoch varies by one)")
    print("\n| run | status | verdict | epochs | final loss |\n|---|---|---|---|---|")
    for key, (status, verdict, epochs, losses) in sorted(reference.items()):
        loss = losses[-1] if losses else None
        print(f"| {key} | {status} | {verdict} | {epochs} | {loss!r} |")
    for s in sweeps:
        for key, record in s["records"].items():
            if not alike(record, reference.get(key)):
                print(f"differs (--jobs {s['jobs']}): {key}: {brief(record)} against {brief(reference.get(key))}")
    if args.json:
        args.json.write_text(json.dumps({"sweeps": sweeps, "ratio": walls[2] / walls[1], "same": same}, indent=1))


if __name__ == "__main__":
    main()
