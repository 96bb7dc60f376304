"""What sampling the process tree costs the parent, per sample, with 0, 2 and 8 children.

    python benchmarks/bench_tree.py                          # 0, 2, 8 children; 300 samples each
    python benchmarks/bench_tree.py --children 0 16 --worker-mib 256 --child-mib 64

For each count it starts a stand-in tree shaped as a run's: a "keeper" process,
its child the "trainer" (holding --worker-mib MiB, touched), and the trainer's
children (each holding --child-mib MiB of its own).  It then times, in this
process, the parent's two kinds of reading (harness.recording.tree):

- stat: find the members and read each one's /proc/PID/stat (every sample);
- exact: the same plus /proc/PID/smaps_rollup of each member (PSS and USS);

both with the kernel's children lists (task-children) and with the incremental
scan of /proc used where those lists are missing (proc-scan).  Costs are CPU
time of this thread (user and system), medians over the samples, in microseconds.
Last, the sampler runs on its own schedule at 50 ms for --seconds: the average
cost per sample, the share of exact readings, and the share of one core used.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from harness.recording.tree import TreeSampler

TREE = """
import os, sys, time
children, worker_mib, child_mib = map(int, sys.argv[1:4])
trainer = os.fork()
if trainer == 0:
    keep = bytearray(worker_mib << 20)
    keep[::4096] = b"\\x01" * len(keep[::4096])
    for _ in range(children):
        if os.fork() == 0:
            del keep
            mine = bytearray(child_mib << 20)
            mine[::4096] = b"\\x02" * len(mine[::4096])
            time.sleep(600)
            os._exit(0)
    time.sleep(600)
    os._exit(0)
time.sleep(600)
"""


def start_tree(children: int, worker_mib: int, child_mib: int) -> tuple[subprocess.Popen[bytes], TreeSampler]:
    """The stand-in tree, started and fully formed, and a sampler of it."""
    keeper = subprocess.Popen([sys.executable, "-c", TREE, str(children), str(worker_mib), str(child_mib)])
    sampler = TreeSampler(keeper.pid, 0.05)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        members = sampler.members()
        if len(members) == children + 1 and all(m.rss_bytes > (child_mib << 20) for m in members):
            sampler.trainer = min(members, key=lambda m: m.start).pid
            return keeper, sampler
        time.sleep(0.05)
    raise SystemExit("the stand-in tree did not form within 60 s")


def cost_us(sampler: TreeSampler, exact: bool, samples: int) -> float:
    """Median CPU time of one reading, in microseconds."""
    times = []
    for _ in range(samples):
        started = time.thread_time()
        sampler.read(None, exact=exact)
        times.append(time.thread_time() - started)
    return 1e6 * statistics.median(times)


def scheduled(sampler: TreeSampler, seconds: float) -> tuple[float, float, float]:
    """(mean CPU us per sample, share of exact readings, share of one core) sampling every 50 ms on schedule."""
    before = dict(sampler.stats)
    started, cpu = time.monotonic(), time.thread_time()
    next_at = started
    while time.monotonic() - started < seconds:
        sampler.read(4 << 30)
        next_at += 0.05
        time.sleep(max(0.0, next_at - time.monotonic()))
    samples = sampler.stats["samples"] - before["samples"]
    exact = sampler.stats["exact"] - before["exact"]
    used = time.thread_time() - cpu
    return 1e6 * used / samples, exact / samples, used / (time.monotonic() - started)


def main() -> None:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, nargs="+", default=[0, 2, 8])
    parser.add_argument("--worker-mib", type=int, default=64)
    parser.add_argument("--child-mib", type=int, default=16)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    processes = len([name for name in os.listdir("/proc") if name.isdigit()])
    print(f"{processes} processes on this machine; worker {args.worker_mib} MiB, each child {args.child_mib} MiB")
    header = "children  method         stat us  exact us   on schedule: us/sample  exact share  core share"
    print(header)
    for children in args.children:
        keeper, sampler = start_tree(children, args.worker_mib, args.child_mib)
        try:
            for method in ("task-children", "proc-scan"):
                if method == "task-children" and sampler.scanner.method != method:
                    continue  # the kernel lists no children: only the scan is available
                sampler.scanner.method = method
                stat = cost_us(sampler, False, args.samples)
                exact = cost_us(sampler, True, max(20, args.samples // 5))
                per_sample, share, core = scheduled(sampler, args.seconds)
                print(
                    f"{children:>8}  {method:<13} {stat:>8.0f}  {exact:>8.0f}   "
                    f"{per_sample:>22.0f}  {share:>11.0%}  {core:>10.2%}"
                )
        finally:
            for member in sampler.members():
                os.kill(member.pid, signal.SIGKILL)
            keeper.kill()
            keeper.wait()


if __name__ == "__main__":
    main()
