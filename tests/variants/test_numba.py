"""The numba variant: its compiled kernels give exactly the numpy layers' numbers.

Finite-difference gradients and zero allocation per epoch are checked for both
variants in tests/variants/test_numpy.py.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba", reason="numba not installed: pip install '.[numba]'")

from harness.errors import UsageError
from harness.interface import RunConfig, TrainingLoop
from harness.loops import VARIANTS
from variants.data import make_dataset
from variants.network import PARAMETER_SHAPES
from variants.numba.kernels import pool_relu_forward
from variants.numba.model import FusedConvOnBuffer, FusedPoolRelu, NumbaCNN
from variants.numpy.conv import WINDOWS, ConvOnBuffer
from variants.numpy.layers import PoolRelu
from variants.numpy.memory import Arena
from variants.numpy.model import BuffersCNN


def tied_windows(rng: np.random.Generator, kernels: int, columns: int) -> np.ndarray:
    """Window blocks (4, K, Q) drawn from five values, negatives included: many ties, many closed windows."""
    return rng.choice([-1.0, -0.25, 0.0, 0.5, 2.0], size=(WINDOWS, kernels, columns))


@pytest.mark.parametrize(("kernels", "columns"), [(10, 3750), (20, 600)])
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


@pytest.mark.parametrize("n", [150, 7])
def test_compiled_col2im_gives_the_numpy_input_gradient(n: int) -> None:
    # GIVEN conv2's layer in both forms over the same input buffer and weights
    rng = np.random.default_rng(n)
    source = rng.normal(size=(10, 5, 5, n))
    weight = rng.normal(size=(20, 41))
    layers = [
        cls(weight, np.zeros_like(weight), source, 2, Arena(), "conv2") for cls in (ConvOnBuffer, FusedConvOnBuffer)
    ]
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


def test_network_gradients_equal_numpy_bit_for_bit() -> None:
    # GIVEN both variants at the same random parameters (test_numpy checks both by finite differences)
    data = make_dataset(3)
    images, labels = data.train_images[:8], data.train_labels[:8]
    fused, reference = NumbaCNN(RunConfig(seed=3)), BuffersCNN(RunConfig(seed=3))
    rng = np.random.default_rng(5)
    params = {name: rng.normal(0, 0.3, shape) for name, shape in PARAMETER_SHAPES.items()}
    fused.set_parameters(params)
    reference.set_parameters(params)
    # WHEN each computes the loss and its gradients on binary images (pooling ties are common)
    loss, grads = fused.loss_and_gradients(images, labels)
    want_loss, want = reference.loss_and_gradients(images, labels)
    # THEN they are numpy's to the last bit, and not trivially zero
    assert loss == want_loss
    for name in PARAMETER_SHAPES:
        np.testing.assert_array_equal(grads[name], want[name], err_msg=name)
        assert np.abs(grads[name]).max() > 1e-6, name


@pytest.mark.parametrize("batch_size", [150, 40])
def test_trains_exactly_like_numpy(batch_size: int) -> None:
    # GIVEN both variants with the same seed and batch size
    config = RunConfig(seed=1, epochs=100, batch_size=batch_size)
    fused, reference = NumbaCNN(config), BuffersCNN(config)
    # WHEN they train 100 epochs THEN every epoch's metrics are identical
    for epoch in range(1, 101):
        assert fused.train_epoch(epoch) == reference.train_epoch(epoch), f"epoch {epoch}"
    # AND they learned (the comparison is not between two stuck models)
    assert fused.history[-1, 2] > fused.history[0, 2]


def test_is_registered_trains_and_names_itself_in_errors() -> None:
    assert VARIANTS["numba"] == "variants.numba:NumbaCNN"
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
