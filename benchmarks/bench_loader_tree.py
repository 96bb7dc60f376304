"""A loop's memory as a process tree: PSS, USS and RSS of the training process and its workers, every epoch.

    python benchmarks/bench_loader_tree.py                                   # fixed and copy-on-read, 8 epochs
    python benchmarks/bench_loader_tree.py --leaks none worker-cache --epochs 10
    python benchmarks/bench_loader_tree.py --option workers=3 --option samples=15000
    python benchmarks/bench_loader_tree.py --size                            # one copy of the dataset
    python benchmarks/bench_loader_tree.py --variant examples/torch_dataloader.py:TorchLoaderLoop

``python -m harness run`` records only its worker's own RSS today, which
cannot see either of the loader variant's leaks: they grow in the data-loader
workers.  This script trains a loop (the ``loader`` variant unless
``--variant`` names another, as ``run`` takes it) in-process, one fresh
process per condition, and after construction (epoch 0) and after every epoch
reads ``memory_full_info()`` (``/proc/PID/smaps_rollup``) of the process and
of each of its children.  RSS counts a shared page once per process that maps
it; PSS divides it among them (so the tree's PSS is the honest total); USS
counts only pages no other process shares.  Figures are MiB (2**20 bytes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tracemalloc
from typing import Any

import numpy as np
import psutil

from harness.interface import RunConfig
from harness.loops import load_loop_class
from variants.loader.dataset import ArrayStore, ListStore, draw_training_set
from variants.loader.options import DEFAULT_SAMPLES

MIB = 2**20
COLUMNS = ("main_rss", "main_pss", "main_uss", "workers_rss", "workers_pss", "workers_uss", "tree_pss", "tree_uss")


def tree_memory() -> dict[str, float]:
    """MiB of this process and the sum over its descendants, as RSS, PSS and USS."""
    me = psutil.Process()
    main = me.memory_full_info()
    children = [child.memory_full_info() for child in me.children(recursive=True)]
    row = {"main_rss": main.rss, "main_pss": main.pss, "main_uss": main.uss}
    for kind in ("rss", "pss", "uss"):
        row[f"workers_{kind}"] = sum(getattr(info, kind) for info in children)
    row["tree_pss"] = row["main_pss"] + row["workers_pss"]
    row["tree_uss"] = row["main_uss"] + row["workers_uss"]
    return {key: value / MIB for key, value in row.items()} | {"workers": len(children)}


def run_one(variant: str, leak: str | None, epochs: int, options: dict[str, Any]) -> None:
    """Train in this process; print one JSON row of tree memory after construction and after each epoch."""
    loop = load_loop_class(variant, leak)(RunConfig(epochs=epochs, leak=leak, options=options))
    try:
        print(json.dumps({"epoch": 0} | tree_memory()), flush=True)
        for epoch in range(1, epochs + 1):
            loop.train_epoch(epoch)
            print(json.dumps({"epoch": epoch} | tree_memory()), flush=True)
    finally:
        getattr(loop, "close", lambda: None)()


def measure(leak: str | None, args: argparse.Namespace) -> list[dict[str, float]]:
    """One condition in a fresh process, so no condition inherits another's memory."""
    command = [
        sys.executable,
        __file__,
        "--one",
        leak or "none",
        "--epochs",
        str(args.epochs),
        "--variant",
        args.variant,
    ]
    for option in args.option:
        command += ["--option", option]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines()]


def parse_options(texts: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs, each VALUE read as JSON when it parses (as `run --option` does)."""
    options: dict[str, Any] = {}
    for text in texts:
        key, _, value = text.partition("=")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def slope(rows: list[dict[str, float]], column: str) -> float:
    """Least-squares MiB per epoch over epochs 2..N (epoch 1 is each worker's first, partial pass)."""
    points = [(row["epoch"], row[column]) for row in rows if row["epoch"] >= 2]
    if len(points) < 2:
        return float("nan")
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])


def report(variant: str, leak: str | None, rows: list[dict[str, float]]) -> None:
    """The per-epoch table and its summary lines."""
    print(f"\n== {variant} --leak {leak or 'none'}: {max(row['workers'] for row in rows):.0f} worker processes")
    print("epoch " + " ".join(f"{name:>11}" for name in COLUMNS))
    for row in rows:
        print(f"{row['epoch']:>5} " + " ".join(f"{row[name]:>11.1f}" for name in COLUMNS))
    peak = max(row["tree_pss"] for row in rows)
    first, last = rows[0], rows[-1]
    print(f"tree PSS: {first['tree_pss']:.1f} after the fork, peak {peak:.1f}, last {last['tree_pss']:.1f} MiB")
    print(f"main RSS: {first['main_rss']:.1f} -> {last['main_rss']:.1f} MiB ({slope(rows, 'main_rss'):+.2f} MiB/epoch)")
    print(
        f"per epoch, least squares over epochs 2-{last['epoch']:.0f}: tree PSS {slope(rows, 'tree_pss'):+.2f} MiB, "
        f"workers' PSS {slope(rows, 'workers_pss'):+.2f} MiB and USS {slope(rows, 'workers_uss'):+.2f} MiB, "
        f"main's PSS {slope(rows, 'main_pss'):+.2f} MiB"
    )


def dataset_size(samples: int) -> None:
    """One copy of the training set: as Python lists (USS and tracemalloc) and as one array."""
    images, labels = draw_training_set(0, samples)
    process = psutil.Process()
    before = process.memory_full_info().uss
    store = ListStore(images, labels)
    resident = process.memory_full_info().uss - before
    del store
    # Traced apart: tracemalloc's own bookkeeping would count in the USS above.
    tracemalloc.start()
    store = ListStore(images, labels)
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del store
    array = ArrayStore(images, labels)
    print(f"{samples} images as Python lists: {traced / MIB:.1f} MiB traced ({traced / samples:.0f} B an image),")
    print(
        f"  {resident / MIB:.1f} MiB of USS; as one array: {(array.images.nbytes + array.labels.nbytes) / MIB:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="loader", help="as `run --variant` takes it (default: loader)")
    parser.add_argument("--leaks", nargs="+", default=["none", "copy-on-read"], help="conditions, 'none' for fixed")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a loop option")
    parser.add_argument("--size", action="store_true", help="only measure one copy of the loader's dataset")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process of one condition
    args = parser.parse_args()
    options = parse_options(args.option)
    if args.size:
        dataset_size(int(options.get("samples", DEFAULT_SAMPLES)))
        return
    if args.one is not None:
        run_one(args.variant, None if args.one == "none" else args.one, args.epochs, options)
        return
    for name in args.leaks:
        leak = None if name == "none" else name
        report(args.variant, leak, measure(leak, args))


if __name__ == "__main__":
    main()
