"""Measure the lists variant: epochs per second and resident memory after each epoch (a script, not a test).

    python benchmarks/bench_lists.py --epochs 12 [--leak recursion] [--fc-only]

Run one configuration per process so that one run's heap cannot colour the next.
CPU time is printed beside wall time because the machine may be shared.
"""

from __future__ import annotations

import argparse
import time

import psutil

from harness.growth import trend
from harness.interface import RunConfig
from variants.lists import ListsCNN

MIB = 2**20


def main(argv: list[str] | None = None) -> int:
    """Train, print one line per epoch and a summary line."""
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_lists.py", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--leak", default=None)
    parser.add_argument("--fc-only", action="store_true")
    args = parser.parse_args(argv)
    process = psutil.Process()
    loop = ListsCNN(RunConfig(seed=args.seed, epochs=args.epochs, leak=args.leak, options={"fc_only": args.fc_only}))
    rss: list[float] = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for epoch in range(1, args.epochs + 1):
        metrics = loop.train_epoch(epoch)
        rss.append(process.memory_info().rss / MIB)
        print(
            f"epoch {epoch:4d}  wall {time.perf_counter() - wall0:7.2f} s  cpu {time.process_time() - cpu0:7.2f} s"
            f"  rss {rss[-1]:8.1f} MiB  loss {metrics['loss']:.6f}  correct_prob {metrics['correct_prob']:.6f}",
            flush=True,
        )
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    growth = trend(rss[1:]).slope if len(rss) > 2 else 0.0
    print(
        f"leak={args.leak} fc_only={args.fc_only}: {args.epochs / wall:.3f} epochs/s wall,"
        f" {args.epochs / cpu:.3f} epochs/s cpu, rss growth {growth:.2f} MiB/epoch (Theil-Sen, first epoch left out)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
