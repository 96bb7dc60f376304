"""What each compiled kernel of the numba variant buys: the variant with each one swapped back to NumPy's layer.

    python benchmarks/bench_fused.py [--epochs 300] [--repeats 7]

Every model is the numba variant's network (:class:`variants.numba.model.FusedBatchNet`)
with some of its layers replaced by the numpy variant's, so the one difference
between two rows is the kernels named.  The models are timed round-robin in this
one process on one BLAS thread, so load on a shared machine hits them alike:
compare the ratios, not the absolute figures.  CPU time, not wall time, because
the machine is shared.
"""

from __future__ import annotations

import os

# Pin BLAS to one thread before NumPy loads it: the figures are single-core figures.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

from harness.bench.child import matmul_rate  # noqa: E402
from harness.interface import RunConfig  # noqa: E402
from variants.flops import epoch_flops  # noqa: E402
from variants.numba.model import FusedBatchNet, FusedConvOnBuffer, FusedPoolRelu, NumbaCNN  # noqa: E402
from variants.numpy.conv import ConvOnBuffer  # noqa: E402
from variants.numpy.layers import PoolRelu  # noqa: E402

# Row label -> (pooling layer, conv2 layer): from nothing compiled to everything compiled.
MODELS = {
    "none compiled (= numpy)": (PoolRelu, ConvOnBuffer),
    "pooling compiled": (FusedPoolRelu, ConvOnBuffer),
    "col2im compiled": (PoolRelu, FusedConvOnBuffer),
    "both compiled (= numba)": (FusedPoolRelu, FusedConvOnBuffer),
}


def model_with(pooling: type, conv: type, config: RunConfig) -> NumbaCNN:
    """The numba variant with these two layers."""
    net = type("Net", (FusedBatchNet,), {"POOLING": pooling, "CONV_ON_BUFFER": conv})
    cls: type[NumbaCNN] = type("Model", (NumbaCNN,), {"NET": net})
    return cls(config)


def cpu_epochs_per_second(model: NumbaCNN, first: int, epochs: int) -> float:
    """Epochs per CPU second over ``epochs`` epochs starting at ``first``."""
    start = time.process_time()
    for epoch in range(first, first + epochs):
        model.train_epoch(epoch)
    return epochs / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="epochs per timed repeat")
    parser.add_argument("--repeats", type=int, default=7, help="round-robin repeats (median reported)")
    args = parser.parse_args()

    total = 20 + args.epochs * args.repeats
    models = {label: model_with(*layers, RunConfig(epochs=total)) for label, layers in MODELS.items()}
    for model in models.values():
        cpu_epochs_per_second(model, 1, 20)  # warm-up
    rates: dict[str, list[float]] = {label: [] for label in models}
    for repeat in range(args.repeats):
        for label, model in models.items():
            rates[label].append(cpu_epochs_per_second(model, 21 + repeat * args.epochs, args.epochs))

    limit = matmul_rate(clock=time.process_time) / epoch_flops([150], 30)
    print(f"one BLAS thread, load average {os.getloadavg()[0]:.1f}; limit {limit:,.0f} epochs per CPU second")
    base = statistics.median(rates["none compiled (= numpy)"])
    width = max(len(label) for label in models)
    print(f"{'':{width}}  epochs/s (CPU)  of limit  vs numpy")
    for label, values in rates.items():
        rate = statistics.median(values)
        print(f"{label:{width}}  {rate:14,.0f}  {rate / limit:8.1%}  {rate / base:7.2f}x")


if __name__ == "__main__":
    main()
