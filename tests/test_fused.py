"""The numba variant: its compiled kernels give exactly the numpy layers' numbers, and it allocates nothing."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

pytest.importorskip("numba", reason="numba not installed: pip install '.[numba]'")

from harness.errors import UsageError
from harness.interface import RunConfig, TrainingLoop
from variants.buffers import BuffersCNN
from variants.buffers_layers import WINDOWS, ConvOnBuffer, PoolRelu
from variants.buffers_memory import Arena
from variants.data import make_dataset
from variants.fused import FusedConvOnBuffer, FusedPoolRelu, NumbaCNN
from variants.fused_kernels import pool_relu_forward
from variants.network import PARAMETER_SHAPES
from variants.registry import VARIANTS

KIB = 1024
STEP = 1e-6


def tied_windows(rng: np.random.Generator, kernels: int, columns: int) -> np.ndarray:
    """Window blocks (4, K, Q) drawn from five values, negatives included: many ties, many closed windows."""
    return rng.choice([-1.0, -0.25, 0.0, 0.5, 2.0], size=(WINDOWS, kernels, columns))


@pytest.mark.parametrize("kernels, columns", [(10, 3750), (20, 600)])
def test_pooling_kernels_give_the_numpy_layer_values_and_gradients_bit_for_bit(kernels: int, columns: int) -> None:
    # GIVEN the same windows, full of ties and of windows that ReLU closes, in both pooling layers
    rng = np.random.default_rng(kernels * columns)
    windows = tied_windows(rng, kernels, columns)
    dout = rng.normal(size=(kernels, columns))
    numpy_pool = PoolRelu(windows.copy(), np.zeros((kernels, columns)), Arena(), "pool")
    fused_pool = FusedPoolRelu(windows.copy(), np.zeros((kernels, columns)), Arena(), "pool")
    # WHEN each runs forward and backward
    for pool in (numpy_pool, fused_pool):
        pool.forward()
        pool.backward(dout)
    # THEN values and window gradients are identical: ties go to the same (first) maximum
    np.testing.assert_array_equal(fused_pool.out, numpy_pool.out)
    np.testing.assert_array_equal(fused_pool.windows_grad, numpy_pool.windows_grad)
    # AND the case is not trivial: some windows tie at their maximum, some are closed
    top = windows.max(axis=0)
    assert np.count_nonzero((windows == top).sum(axis=0) > 1) > columns
    assert np.count_nonzero(numpy_pool.out == 0.0) > columns


@pytest.mark.parametrize(
    "values, winner",
    [
        ((1.0, 1.0, 1.0, 1.0), 0),
        ((0.0, 2.0, 2.0, 1.0), 1),
        ((0.0, 1.0, 2.0, 2.0), 2),
        ((2.0, 1.0, 0.0, 2.0), 0),
        ((0.5, 0.0, 0.0, 0.7), 3),
        ((-3.0, -1.0, -2.0, -1.0), None),
    ],
)
def test_one_window_sends_its_delta_to_the_first_maximum_or_nowhere(values: tuple[float, ...], winner: int | None) -> None:
    # GIVEN one window (0,0), (0,1), (1,0), (1,1), with ties or all negative
    pool = FusedPoolRelu(np.array(values).reshape(WINDOWS, 1, 1), np.zeros((1, 1)), Arena(), "pool")
    # WHEN a delta comes back
    pool.forward()
    pool.backward(np.array([[5.0]]))
    # THEN all of it goes to the first maximum in row-major order; none if ReLU closed the window
    expected = np.zeros(WINDOWS)
    if winner is not None:
        expected[winner] = 5.0
    np.testing.assert_array_equal(pool.windows_grad.ravel(), expected)
    assert pool.out[0, 0] == max(max(values), 0.0)


@pytest.mark.parametrize("n", [150, 7])
def test_compiled_col2im_gives_the_numpy_input_gradient(n: int) -> None:
    # GIVEN conv2's layer in both forms over the same input buffer and weights
    rng = np.random.default_rng(n)
    source = rng.normal(size=(10, 5, 5, n))
    weight = rng.normal(size=(20, 41))
    layers = [cls(weight, np.zeros_like(weight), source, 2, Arena(), "conv2") for cls in (ConvOnBuffer, FusedConvOnBuffer)]
    dout = rng.normal(size=layers[0].out.shape)
    # WHEN each computes the input gradient of the same output gradient
    for layer in layers:
        layer.input_grad.fill(np.nan)  # stale contents must not survive
        layer.backward_input(dout)
    # THEN they agree (the same terms, added in the same order) and every input position got its sum
    numpy_grad, fused_grad = (layer.input_grad for layer in layers)
    np.testing.assert_array_equal(fused_grad, numpy_grad)
    assert np.isfinite(fused_grad).all()


def test_a_buffer_in_another_layout_is_refused_not_run_slowly() -> None:
    # GIVEN windows that are a strided view, not the C-contiguous buffer the kernel was compiled for
    windows = np.zeros((WINDOWS, 3, 8))[:, :, ::2]
    # WHEN the kernel is called THEN numba refuses it
    with pytest.raises(TypeError, match="No matching definition"):
        pool_relu_forward(windows, np.zeros((3, 4)), np.zeros((3, 4), np.int8))


def nontrivial(cls: type[BuffersCNN]) -> BuffersCNN:
    """A model whose last layer and biases are random, so every gradient is non-trivial."""
    model = cls(RunConfig(seed=3))
    params = model.get_parameters()
    rng = np.random.default_rng(5)
    params["fc2.weight"] = rng.normal(0, 0.5, PARAMETER_SHAPES["fc2.weight"])
    for name in ("conv1.bias", "conv2.bias", "fc1.bias", "fc2.bias"):
        params[name] = rng.normal(0, 0.05, PARAMETER_SHAPES[name])
    model.set_parameters(params)
    return model


def test_network_gradients_equal_numpy_and_finite_differences() -> None:
    # GIVEN both variants at the same non-trivial parameters, and 8 binary training images
    data = make_dataset(3)
    images, labels = data.train_images[:8], data.train_labels[:8]
    fused, reference = nontrivial(NumbaCNN), nontrivial(BuffersCNN)
    # WHEN each computes the loss and its gradients
    loss, grads = fused.loss_and_gradients(images, labels)
    want_loss, want = reference.loss_and_gradients(images, labels)
    # THEN they are numpy's (which test_buffers checks by finite differences) to the last bit
    assert loss == want_loss
    for name in PARAMETER_SHAPES:
        np.testing.assert_array_equal(grads[name], want[name], err_msg=name)
    # AND a central difference agrees on conv weights, whose gradients pass through both kernels
    params = fused.get_parameters()
    for name, index in (("conv1.weight", (4, 0, 1, 2)), ("conv2.weight", (7, 3, 1, 0))):
        original = params[name][index]
        losses = []
        for shift in (STEP, -STEP):
            params[name][index] = original + shift
            fused.set_parameters(params)
            losses.append(fused.loss_and_gradients(images, labels)[0])
        params[name][index] = original
        numeric = (losses[0] - losses[1]) / (2 * STEP)
        assert abs(numeric - grads[name][index]) <= 1e-6 * max(1.0, abs(numeric)), name
        assert abs(grads[name][index]) > 1e-6, f"{name}: trivial gradient"


@pytest.mark.parametrize("batch_size", [150, 40])
def test_trains_exactly_like_numpy_and_allocates_nothing_per_epoch(batch_size: int) -> None:
    # GIVEN both variants with the same seed and batch size
    config = RunConfig(seed=1, epochs=200, batch_size=batch_size)
    fused, reference = NumbaCNN(config), BuffersCNN(config)
    # WHEN they train 100 epochs, then the numba one 30 more under tracemalloc
    for epoch in range(1, 101):
        assert fused.train_epoch(epoch) == reference.train_epoch(epoch), f"epoch {epoch}"
    tracemalloc.start()
    try:
        for epoch in range(101, 106):
            fused.train_epoch(epoch)  # NumPy and CPython fill small caches once under tracing
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for epoch in range(106, 136):
            fused.train_epoch(epoch)
        grown = tracemalloc.get_traced_memory()[0] - start
        peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    # THEN every metric was identical, and nothing was kept or allocated beyond a few KiB at once
    assert grown < 1 * KIB, f"grew {grown} B over 30 epochs"
    assert peak < 16 * KIB, f"peak {peak} B"


def test_is_registered_trains_and_names_itself_in_errors() -> None:
    assert VARIANTS["numba"] == "variants.fused:NumbaCNN"
    model = NumbaCNN(RunConfig(epochs=1))
    assert isinstance(model, TrainingLoop)
    assert set(model.train_epoch(1)) == {"loss", "accuracy", "correct_prob"}
    assert set(NumbaCNN.LEAKS) == {"recompile"}
    with pytest.raises(UsageError, match="variant 'numba' has no leak 'history'; accepted: recompile"):
        NumbaCNN(RunConfig(leak="history"))


def test_the_leak_compiles_a_new_kernel_every_epoch_and_changes_no_number() -> None:
    # GIVEN the variant with and without its leak
    fixed, leaky = (NumbaCNN(RunConfig(seed=2, epochs=3, leak=leak)) for leak in (None, "recompile"))
    kernels = []
    # WHEN both train 3 epochs
    for epoch in range(1, 4):
        assert leaky.train_epoch(epoch) == fixed.train_epoch(epoch)
        kernels.append(leaky._epoch_step)
    # THEN the metrics were identical, and the leaky one compiled a distinct kernel each epoch
    assert len({id(kernel) for kernel in kernels}) == 3 and None not in kernels
    assert all(len(kernel.signatures) == 1 for kernel in kernels)  # type: ignore[union-attr]
    assert fixed._epoch_step is None
