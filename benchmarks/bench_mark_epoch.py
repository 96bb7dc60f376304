"""What ``mark_epoch`` costs a script run outside the harness: per call, and the import (a script, not a test).

    python benchmarks/bench_mark_epoch.py [--calls N] [--repeat R]

Outside ``run --script`` the call finds no hook and returns.  Timed with
``timeit`` against an empty function taking the same keywords (what any call
costs), for no metrics and for three; the best of R repeats of N calls, in
nanoseconds per call.  Then the import, ``from harness import mark_epoch``, in
a fresh interpreter (``-X importtime``'s cumulative figure for ``harness``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import timeit

SETUP = """
from harness import mark_epoch

def empty(**metrics):
    pass

loss, accuracy, correct_prob = 0.25, 0.9, 0.8
"""
CASES = {
    "mark_epoch()": "mark_epoch()",
    "mark_epoch(3 metrics)": "mark_epoch(loss=loss, accuracy=accuracy, correct_prob=correct_prob)",
    "empty function()": "empty()",
    "empty function(3 metrics)": "empty(loss=loss, accuracy=accuracy, correct_prob=correct_prob)",
}


def per_call_ns(statement: str, calls: int, repeat: int) -> float:
    """Best of ``repeat`` timings of ``calls`` calls, in nanoseconds per call."""
    return min(timeit.repeat(statement, SETUP, number=calls, repeat=repeat)) / calls * 1e9


def import_us() -> int:
    """Microseconds ``import harness`` takes in a fresh interpreter (cumulative, -X importtime)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from harness import mark_epoch"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = [int(m.group(1)) for m in re.finditer(r"\|\s*(\d+) \| harness$", done.stderr, re.MULTILINE)]
    return found[-1] if found else -1


def main(argv: list[str] | None = None) -> int:
    """Print the cost per call of each case and the import's."""
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_mark_epoch.py", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    for name, statement in CASES.items():
        print(f"{name:28s} {per_call_ns(statement, args.calls, args.repeat):7.1f} ns per call")
    print(f"{'import harness (once)':28s} {import_us() / 1000:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
