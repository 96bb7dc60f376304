"""Epochs per second of the numpy variant on one BLAS thread, against this machine's matmul limit.

    python benchmarks/bench_buffers.py                 # epochs/s, FLOPs per epoch, limit
    python benchmarks/bench_buffers.py --ablations     # also: what each technique buys

The limit is (float64 FLOP/s of a large matrix product on one thread) / (FLOPs
of one epoch's products, from the layer shapes): see variants/flops.py.
``--ablations`` undoes one technique at a time in otherwise identical models
and times them round-robin in this one run, so load on a shared machine hits
every variant alike: compare the ratios, not the absolute figures.
"""

from __future__ import annotations

import os

# Pin BLAS to one thread before NumPy loads it: the figures are single-core figures.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402

import variants.numpy.model as buffers_module  # noqa: E402
from harness.bench.child import matmul_rate  # noqa: E402
from harness.interface import RunConfig  # noqa: E402
from variants.data import make_dataset  # noqa: E402
from variants.flops import epoch_flops  # noqa: E402
from variants.numpy import BuffersCNN  # noqa: E402
from variants.numpy.conv import WINDOWS, blocked_patches, patch_columns, view_as  # noqa: E402
from variants.numpy.layers import PoolRelu  # noqa: E402
from variants.numpy.net import Batch, BatchNet  # noqa: E402

Ablation = Callable[[BuffersCNN], None]


def measure(model: BuffersCNN, epochs: int) -> tuple[float, float]:
    """(wall-clock, CPU-time) epochs per second over ``epochs`` epochs."""
    wall, cpu = time.perf_counter(), time.process_time()
    for epoch in range(1, epochs + 1):
        model.train_epoch(epoch)
    return epochs / (time.perf_counter() - wall), epochs / (time.process_time() - cpu)


def epoch_peak_bytes(model: BuffersCNN, epochs: int = 20) -> int:
    """Largest tracemalloc peak of one epoch, after the model has warmed up."""
    tracemalloc.start()
    try:
        peak = 0
        for epoch in range(1, epochs + 1):
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            model.train_epoch(epoch)
            peak = max(peak, tracemalloc.get_traced_memory()[1] - before)
    finally:
        tracemalloc.stop()
    return peak


# ----------------------------------------------------------------- ablations: one technique undone each


def im2col_conv1_every_batch(model: BuffersCNN) -> None:
    """conv1's patches copied from the images every batch (into the same preallocated matrix)."""
    images = make_dataset(model.config.seed).train_images
    for batch, (start, stop) in zip(model._batches, _batch_bounds(model), strict=True):
        patches = blocked_patches(images[start:stop].transpose(1, 2, 3, 0), 3)
        target = view_as(batch.cols[:, :-1], patches.shape)
        batch._refresh = (target, patches)  # type: ignore[attr-defined]
    for net in model._nets.values():
        _wrap_forward(net, lambda batch: np.copyto(*batch._refresh) if hasattr(batch, "_refresh") else None)


def allocating_im2col(model: BuffersCNN) -> None:
    """Deep-learning-from-scratch style: both convolutions build new patch matrices every batch."""
    data = make_dataset(model.config.seed)
    for batch, (start, stop) in zip(model._batches, _batch_bounds(model), strict=True):
        batch._images = data.train_images[start:stop]  # type: ignore[attr-defined]

    def fresh_conv1(batch: Batch) -> None:
        if hasattr(batch, "_images"):
            batch.cols = patch_columns(batch._images, 3)  # a new array every call
            batch.cols_t = batch.cols.transpose(0, 2, 1)

    for net in model._nets.values():
        _wrap_forward(net, fresh_conv1)
        conv = net.conv2

        def forward(conv=conv) -> None:
            cols = np.ones(conv.cols.shape)  # a new array every call
            np.copyto(view_as(cols[:, :-1], conv._patches.shape), conv._patches)
            conv.use_columns(cols)
            np.matmul(conv.weight, conv.cols, out=conv.out)

        conv.forward = forward  # type: ignore[method-assign]


def argmax_pooling(model: BuffersCNN) -> None:
    """Pooling by np.argmax over a window-last copy (K, Q, 4) into a preallocated index buffer."""
    for net in model._nets.values():
        for pool in (net.pool1, net.pool2):
            _argmax_pool(pool)


def relu_before_pooling(model: BuffersCNN) -> None:
    """ReLU on the whole convolution output (4x the elements), then pooling, as the layers are listed."""
    for net in model._nets.values():
        for pool in (net.pool1, net.pool2):
            _relu_first(pool)


def _relu_first(pool: PoolRelu) -> None:
    conv_out = pool.windows
    zeros = np.zeros(conv_out.shape)
    flag = np.empty(conv_out.shape, dtype=bool)
    mask = np.empty(conv_out.shape)
    original_forward, original_backward = pool.forward, pool.backward

    def forward() -> None:
        np.maximum(conv_out, zeros, out=conv_out)
        original_forward()

    def backward(dout: np.ndarray) -> None:
        np.greater(conv_out, 0.0, out=flag)  # before the pool's gradient overwrites conv_out
        original_backward(dout)
        np.copyto(mask, flag)
        np.multiply(pool.windows_grad, mask, out=pool.windows_grad)

    pool.forward = forward  # type: ignore[method-assign]
    pool.backward = backward  # type: ignore[method-assign]


def scalar_relu(model: BuffersCNN) -> None:
    """ReLU in the pools as np.maximum(x, 0.0) instead of against a zero buffer."""
    for net in model._nets.values():
        for pool in (net.pool1, net.pool2):
            pool._zeros = np.zeros(())


def default_ufunc_buffers(model: BuffersCNN) -> None:
    """NumPy's default ufunc buffer size (8192 elements) during the epoch."""
    model._bench_bufsize = 8192  # type: ignore[attr-defined]


@contextmanager
def ufunc_buffers_of(model: BuffersCNN) -> Iterator[None]:
    """Let the model's epochs use the ufunc buffer size its ablation asks for, if any."""
    size = getattr(model, "_bench_bufsize", None)
    if size is None:
        yield
        return
    original = buffers_module.small_ufunc_buffers
    buffers_module.small_ufunc_buffers = partial(original, size)  # type: ignore[assignment]
    try:
        yield
    finally:
        buffers_module.small_ufunc_buffers = original


def _batch_bounds(model: BuffersCNN) -> list[tuple[int, int]]:
    size = model.config.batch_size
    return [(start, start + batch.n) for start, batch in zip(range(0, 150, size), model._batches, strict=True)]


def _wrap_forward(net: BatchNet, before: Callable[[Batch], None]) -> None:
    original = net.forward

    def forward(batch: Batch, loss: bool = True) -> float:
        before(batch)
        return original(batch, loss)

    net.forward = forward  # type: ignore[method-assign]


def _argmax_pool(pool: PoolRelu) -> None:
    shape = pool.out.shape
    stacked = np.empty((*shape, WINDOWS))
    index = np.empty(shape, dtype=np.intp)
    flag = np.empty(shape, dtype=bool)
    mask, positive = np.empty(shape), np.empty(shape)
    w_views = pool._w

    def forward() -> None:
        for w in range(WINDOWS):
            np.copyto(stacked[..., w], w_views[w])
        np.argmax(stacked, axis=-1, out=index)
        np.max(stacked, axis=-1, out=pool.out)
        np.maximum(pool.out, 0.0, out=pool.out)

    def backward(dout: np.ndarray) -> None:
        np.greater(pool.out, 0.0, out=flag)
        np.copyto(mask, flag)
        np.multiply(dout, mask, out=positive)
        for w in range(WINDOWS):
            np.equal(index, w, out=flag)
            np.copyto(mask, flag)
            np.multiply(positive, mask, out=pool.windows_grad[w])

    pool.forward = forward  # type: ignore[method-assign]
    pool.backward = backward  # type: ignore[method-assign]


ABLATIONS: dict[str, Ablation | None] = {
    "all techniques": None,
    "conv1 im2col every batch (preallocated)": im2col_conv1_every_batch,
    "im2col allocating new arrays (DLFS style)": allocating_im2col,
    "pooling by argmax over a window-last copy": argmax_pooling,
    "ReLU on the conv output, then pooling": relu_before_pooling,
    "ReLU as np.maximum(x, 0.0)": scalar_relu,
    "default ufunc buffers (8192)": default_ufunc_buffers,
}


def best_cpu_seconds(functions: dict[str, Callable[[], object]], calls: int, repeats: int) -> dict[str, float]:
    """Best CPU seconds per call of each function, timed round-robin."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for label, function in functions.items():
            start = time.process_time()
            for _ in range(calls):
                function()
            best[label] = min(best[label], (time.process_time() - start) / calls)
    return best


def layer_products(kernels: int, depth: int, q: int, calls: int, repeats: int) -> dict[str, float]:
    """CPU seconds of one layer's forward and weight-gradient products, window blocks vs one wide GEMM."""
    rng = np.random.default_rng(0)
    weight = rng.random((kernels, depth))
    cols4, cols = rng.random((WINDOWS, depth, q)), rng.random((depth, WINDOWS * q))
    d4, d = rng.random((WINDOWS, kernels, q)), rng.random((kernels, WINDOWS * q))
    out4, out = np.empty((WINDOWS, kernels, q)), np.empty((kernels, WINDOWS * q))
    parts, grad = np.empty((WINDOWS, kernels, depth)), np.empty((kernels, depth))
    cols4_t, cols_t = cols4.transpose(0, 2, 1), cols.T

    def weight_grad_blocked() -> None:
        np.matmul(d4, cols4_t, out=parts)
        np.add.reduce(parts, axis=0, out=grad)

    functions: dict[str, Callable[[], object]] = {
        "forward blocked": lambda: np.matmul(weight, cols4, out=out4),
        "forward wide": lambda: np.matmul(weight, cols, out=out),
        "weight gradient blocked": weight_grad_blocked,
        "weight gradient wide": lambda: np.matmul(d, cols_t, out=grad),
    }
    return best_cpu_seconds(functions, calls, repeats)


def product_layouts(n: int, calls: int = 200, repeats: int = 5) -> list[tuple[str, float, float]]:
    """(product, blocked us, wide us): four window-block GEMMs vs one GEMM over all columns, same FLOPs."""
    rows = []
    for layer, kernels, depth, q in (("conv1", 10, 10, 25 * n), ("conv2", 20, 41, 4 * n)):
        seconds = layer_products(kernels, depth, q, calls, repeats)
        for product in ("forward", "weight gradient"):
            blocked, wide = seconds[f"{product} blocked"], seconds[f"{product} wide"]
            rows.append((f"{layer} {product}", blocked * 1e6, wide * 1e6))
    return rows


def build(config: RunConfig, ablation: Ablation | None) -> BuffersCNN:
    """A model with one technique undone (or none)."""
    model = BuffersCNN(config)
    if ablation is not None:
        ablation(model)
    return model


def run_model(model: BuffersCNN, epochs: int) -> tuple[float, float]:
    """measure() under the ufunc buffer size the ablation asks for."""
    with ufunc_buffers_of(model):
        return measure(model, epochs)


def peak_of(model: BuffersCNN) -> int:
    """epoch_peak_bytes() under the ablation's ufunc buffer size."""
    with ufunc_buffers_of(model):
        return epoch_peak_bytes(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="epochs per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    parser.add_argument("--batch-size", type=int, default=150)
    parser.add_argument("--fc-only", action="store_true")
    parser.add_argument("--ablations", action="store_true", help="time each technique undone, round-robin")
    args = parser.parse_args()

    config = RunConfig(epochs=args.epochs, batch_size=args.batch_size, options={"fc_only": args.fc_only})
    chosen = ABLATIONS if args.ablations else {"all techniques": None}
    models = {name: build(config, ablation) for name, ablation in chosen.items()}
    for model in models.values():
        measure(model, 20)  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            w, c = run_model(model, args.epochs)
            wall[name].append(w)
            cpu[name].append(c)

    sizes = [batch.n for batch in models["all techniques"]._batches]
    flops = epoch_flops(sizes, 30, fc_only=args.fc_only)
    wall_rate, cpu_rate = matmul_rate(), matmul_rate(clock=time.process_time)
    wall_limit, cpu_limit = wall_rate / flops, cpu_rate / flops
    environment = {name: os.environ.get(name) for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    print(f"numpy {np.__version__}, BLAS threads pinned to 1; {environment}; load average {os.getloadavg()[0]:.1f}")
    print(f"batch size {args.batch_size}{' fc_only' if args.fc_only else ''}: {len(sizes)} batches per epoch")
    print(f"FLOPs per epoch (products, from layer shapes): {flops:,}")
    print(
        f"float64 matmul 1024^3 on one thread: {wall_rate / 1e9:.1f} GFLOP/s wall, {cpu_rate / 1e9:.1f} CPU"
        f" -> limit {wall_limit:.0f} epochs/s wall, {cpu_limit:.0f} CPU"
    )
    wall_base, cpu_base = statistics.median(wall["all techniques"]), statistics.median(cpu["all techniques"])
    width = max(len(name) for name in models)
    print(f"{'':{width}}  epochs/s wall  of limit  epochs/s CPU  of limit  vs all (wall, CPU)  epoch peak")
    for name, model in models.items():
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"{name:{width}}  {w:13.0f}  {w / wall_limit:8.0%}  {c:12.0f}  {c / cpu_limit:8.0%}"
            f"  {w / wall_base:9.2f} {c / cpu_base:8.2f}  {peak_of(model):10,} B"
        )
    if args.ablations:
        print(f"products for {args.batch_size} samples, CPU us per call: 4 window blocks vs one wide GEMM")
        for name, blocked, wide in product_layouts(args.batch_size):
            print(f"  {name:22s} blocked {blocked:7.1f}  wide {wide:7.1f}  wide/blocked {wide / blocked:5.2f}")


if __name__ == "__main__":
    main()
