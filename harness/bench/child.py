"""The child of ``python -m harness bench``: times one bare training loop, or the float64 matmul rate.

Started by :class:`harness.bench.measure.Measurer` as::

    python -m harness.bench.child --fd N '{"kind": "loop", "variant": ..., "config": {...}}'
    python -m harness.bench.child --fd N '{"kind": "matmul", "size": 1024, "repeats": 5}'

with the thread variables (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
MKL_NUM_THREADS) already in its environment, so NumPy's BLAS and torch read
them when they are first imported, here.  It writes one JSON line to file
descriptor N (``"type"``):

- ``loop``: ``{"epoch_s", "ends_s", "flops_per_epoch"}``: each epoch's train_epoch
  time, and its end in seconds from the first epoch's start, for every epoch of
  ``config.epochs`` (the parent drops the warm-up); the FLOPs of one epoch when
  the loop says (its optional ``flops_per_epoch()``), else null;
- ``matmul``: ``{"flops_per_s"}``: the best of ``repeats`` products;
- ``skipped``: ``{"reason"}``: the variant cannot be imported (an optional dependency is missing);
- ``error``: ``{"message"}``, then exit status 1: building or training failed.

No recording happens between epochs: this is the bare loop that ``run`` is compared against.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from harness.errors import UsageError
from harness.interface import RunConfig, TrainingLoop
from harness.loops import load_loop_class
from harness.worker import Channel


def time_epochs(
    loop: TrainingLoop, epochs: int, clock: Callable[[], float] = time.perf_counter
) -> tuple[list[float], list[float]]:
    """Train ``epochs`` epochs; each one's train_epoch time and its end from the first epoch's start."""
    epoch_s, ends_s = [], []
    origin = clock()
    for epoch in range(1, epochs + 1):
        started = clock()
        loop.train_epoch(epoch)
        ended = clock()
        epoch_s.append(ended - started)
        ends_s.append(ended - origin)
    return epoch_s, ends_s


def measure_loop(job: dict[str, Any]) -> dict[str, Any]:
    """The ``loop`` job: build the variant's loop and time every epoch; ``skipped`` when it cannot be imported."""
    try:
        cls = load_loop_class(job["variant"])
    except UsageError as exc:
        return {"type": "skipped", "reason": str(exc)}
    config = RunConfig.from_dict(job["config"])
    loop = cls(config)
    count = getattr(loop, "flops_per_epoch", None)
    flops = int(count()) if callable(count) else None
    epoch_s, ends_s = time_epochs(loop, config.epochs)
    close = getattr(loop, "close", None)
    if callable(close):
        close()
    return {"type": "loop", "epoch_s": epoch_s, "ends_s": ends_s, "flops_per_epoch": flops}


def matmul_rate(size: int = 1024, repeats: int = 5, clock: Callable[[], float] = time.perf_counter) -> float:
    """Best FLOP/s of a float64 (size x size) @ (size x size) product over ``repeats`` runs (2 size^3 FLOPs each).

    ``clock`` is wall-clock by default; ``time.process_time`` gives the rate while
    this process actually runs, steadier on a shared machine (one BLAS thread only).
    """
    # Imported here, not at the top: NumPy must load after the parent set the thread variables.
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.random((size, size)), rng.random((size, size))
    out = np.empty((size, size))
    np.matmul(a, b, out=out)  # warm-up: BLAS thread start, page faults
    best = float("inf")
    for _ in range(repeats):
        start = clock()
        np.matmul(a, b, out=out)
        best = min(best, clock() - start)
    return 2 * size**3 / best


def measure_matmul(job: dict[str, Any]) -> dict[str, Any]:
    """The ``matmul`` job: the best float64 product rate on the threads this process was given."""
    return {"type": "matmul", "flops_per_s": matmul_rate(size=int(job["size"]), repeats=int(job["repeats"]))}


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of ``python -m harness.bench.child``."""
    parser = argparse.ArgumentParser(prog="python -m harness.bench.child", description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="file descriptor the result is written to")
    parser.add_argument("job", help='{"kind": "loop" | "matmul", ...}')
    args = parser.parse_args(argv)
    channel = Channel(args.fd)
    job = json.loads(args.job)
    code = 0
    try:
        result = measure_matmul(job) if job["kind"] == "matmul" else measure_loop(job)
    except Exception as exc:  # noqa: BLE001 -- the training code's failure, reported to the parent as one line
        traceback.print_exc()
        result = {"type": "error", "message": traceback.format_exception_only(type(exc), exc)[-1].strip()}
        code = 1
    channel.send(result.pop("type"), **result)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: nothing left to measure


if __name__ == "__main__":
    main()
