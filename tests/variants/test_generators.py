"""The generators variant: every layer's backward against finite differences, the network's
forward against an independent NumPy reference, training semantics, and the ``thunks`` leak."""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

import numpy as np
import pytest

from harness.errors import UsageError
from harness.interface import RunConfig, TrainingLoop
from tests.helpers import numeric_gradient, relative_error
from variants.data import make_dataset
from variants.generators.layers import Conv, Layer, Trace
from variants.generators.model import LAYERS, OUTPUT, GeneratorsCNN
from variants.network import CONV_PARAMETERS, FC_PARAMETERS, PARAMETER_SHAPES

MAX_RELATIVE_ERROR = 1e-6


def layer_forward(layer: Layer, params: dict[str, list[float]], x: list[float]) -> list[float]:
    """One sample through one layer's forward generator."""
    (trace,) = layer.forward(params, [Trace(list(x))])
    return list(trace.value)


def layer_backward(
    layer: Layer, params: dict[str, list[float]], x: list[float], upstream: list[float]
) -> tuple[list[float], dict[str, list[float]]]:
    """One sample forward then backward through one layer: (input delta, parameter gradients)."""
    (trace,) = layer.forward(params, [Trace(list(x))])
    trace.value = list(upstream)
    (trace,) = layer.backward(params, [trace])
    assert trace.caches == [], "backward must consume exactly what forward cached"
    return list(trace.value), trace.grads


def check_layer(layer: Layer, params: dict[str, list[float]], x: list[float], check_input: bool = True) -> None:
    """Gradients of f = upstream . layer(x) against central differences, for the input and every parameter."""
    rng = np.random.default_rng(1)
    upstream = rng.normal(size=len(layer_forward(layer, params, x))).tolist()
    dx, grads = layer_backward(layer, params, x, upstream)

    def f(xx: list[float], pp: dict[str, list[float]]) -> float:
        return float(np.dot(upstream, layer_forward(layer, pp, xx)))

    if check_input:
        numeric = numeric_gradient(lambda xx: f(xx.tolist(), params), np.array(x))
        assert relative_error(dx, numeric) < MAX_RELATIVE_ERROR
    assert set(grads) == set(params)
    for name, value in params.items():
        numeric = numeric_gradient(lambda vv, name=name: f(x, params | {name: vv.tolist()}), np.array(value))
        assert relative_error(grads[name], numeric) < MAX_RELATIVE_ERROR, name


def random_layer_params(names: Sequence[str]) -> dict[str, list[float]]:
    rng = np.random.default_rng(7)
    return {name: rng.normal(0, 0.5, PARAMETER_SHAPES[name]).ravel().tolist() for name in names}


def away_from_zero(n: int, seed: int = 3) -> list[float]:
    """Random values with |v| >= 0.1, so no ReLU kink or pooling tie lies within the 1e-6 step."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.1, 1.0, n) * rng.choice([-1.0, 1.0], n)
    return values.tolist()


# ---- every layer type against finite differences -------------------------------------------------


def test_conv_layer_gradients_match_finite_differences() -> None:
    # GIVEN the network's conv2 (it computes an input delta) with random kernels, biases and input
    conv2 = LAYERS[3]
    params = random_layer_params(["conv2.weight", "conv2.bias"])
    # WHEN / THEN its input delta and dW, db match central differences
    check_layer(conv2, params, away_from_zero(10 * 5 * 5))


def test_conv_layer_without_input_delta_still_gives_parameter_gradients() -> None:
    # GIVEN the network's conv1, which skips the input delta the seed never needs
    conv1 = LAYERS[0]
    params = random_layer_params(["conv1.weight", "conv1.bias"])
    # THEN its dW and db match central differences
    check_layer(conv1, params, away_from_zero(12 * 12), check_input=False)


def test_conv_input_delta_on_a_non_square_channel_count() -> None:
    # GIVEN a small conv with several channels and a 3x3 kernel (border of 2 in the backward pass)
    conv = Conv("small", channels=2, size=6, kernels=3, ksize=3)
    rng = np.random.default_rng(4)
    params = {"small.weight": rng.normal(size=3 * 2 * 9).tolist(), "small.bias": rng.normal(size=3).tolist()}
    check_layer(conv, params, away_from_zero(2 * 36))


@pytest.mark.parametrize("index", [1, 8], ids=["relu-conv", "relu-fc"])
def test_relu_gradient_matches_finite_differences(index: int) -> None:
    check_layer(LAYERS[index], {}, away_from_zero(1000 if index == 1 else 20))


@pytest.mark.parametrize(("index", "size"), [(2, 1000), (5, 320)], ids=["pool1", "pool2"])
def test_pool_gradient_matches_finite_differences(index: int, size: int) -> None:
    check_layer(LAYERS[index], {}, away_from_zero(size))


def test_pool_first_maximum_wins_ties() -> None:
    # GIVEN a window whose maximum appears twice (row-major positions 1 and 3)
    pool = LAYERS[5]  # 20 channels 4x4 -> 2x2
    x = [0.0] * 320
    x[1], x[4 + 1] = 2.0, 2.0  # channel 0, window (0, 0): positions (0,1) and (1,1)
    # WHEN the delta goes back
    dx, _ = layer_backward(pool, {}, x, [1.0] + [0.0] * 79)
    # THEN only the first maximum in row-major order receives it
    assert dx[1] == 1.0 and dx[5] == 0.0 and sum(dx) == 1.0


def test_flatten_gradient_matches_finite_differences() -> None:
    check_layer(LAYERS[6], {}, away_from_zero(80))


def test_dense_gradients_match_finite_differences() -> None:
    check_layer(LAYERS[7], random_layer_params(["fc1.weight", "fc1.bias"]), away_from_zero(80))


def test_softmax_cross_entropy_delta_matches_finite_differences() -> None:
    # GIVEN logits and a label
    logits, label = [0.3, -1.2, 2.0], 1

    def loss(z: list[float]) -> float:
        (trace,) = OUTPUT.forward({}, [Trace(z, label)])
        return trace.loss

    # WHEN backward starts from the output
    (trace,) = OUTPUT.backward({}, OUTPUT.forward({}, [Trace(logits, label)]))
    # THEN softmax - onehot is the derivative of -log softmax[label]
    assert (
        relative_error(trace.value, numeric_gradient(lambda z: loss(z.tolist()), np.array(logits))) < MAX_RELATIVE_ERROR
    )


# ---- the whole network ---------------------------------------------------------------------------


def random_parameters(seed: int) -> dict[str, np.ndarray]:
    """Non-trivial parameters: seed initial weights plus random fc2 weights and random non-zero biases.

    Non-zero biases keep every pre-activation off exactly 0.0 (the images have all-zero patches),
    where a central difference would straddle a ReLU kink.
    """
    loop = GeneratorsCNN(RunConfig(seed=seed))
    params = loop.get_parameters()
    rng = np.random.default_rng(seed + 100)
    params["fc2.weight"] = rng.normal(0, 0.5, params["fc2.weight"].shape)
    for name in PARAMETER_SHAPES:
        if name.endswith(".bias"):
            params[name] = rng.normal(0, 0.1, params[name].shape)
    return params


def test_network_gradients_match_finite_differences() -> None:
    # GIVEN random non-trivial parameters and a few training samples
    data = make_dataset(3)
    images, labels = data.train_images[:4], data.train_labels[:4]
    loop = GeneratorsCNN(RunConfig(seed=3))
    params = random_parameters(3)
    loop.set_parameters(params)
    # WHEN the variant computes the mean loss and its gradient
    _, grads = loop.loss_and_gradients(images, labels)
    assert set(grads) == set(PARAMETER_SHAPES)
    rng = np.random.default_rng(0)
    for name, value in params.items():
        flat = value.ravel().copy()
        # every bias and fc2 entry, and a random sample of each larger weight, to stay fast
        indices = range(flat.size) if flat.size <= 20 else rng.choice(flat.size, 12, replace=False)

        def loss(vv: np.ndarray, name: str = name, value: np.ndarray = value) -> float:
            loop.set_parameters(params | {name: np.array(vv).reshape(value.shape)})
            return loop.loss_and_gradients(images, labels)[0]

        numeric = numeric_gradient(loss, flat, indices)
        analytic = grads[name].ravel()[list(indices)]
        # THEN every parameter's gradient matches central differences
        assert relative_error(analytic, numeric) < MAX_RELATIVE_ERROR, name


def reference_probabilities(params: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
    """The seed's network written independently with NumPy (sliding windows and einsum)."""

    def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[-2:], axis=(2, 3))
        return np.einsum("ncyxij,kcij->nkyx", windows, w) + b[None, :, None, None]

    def pool(x: np.ndarray) -> np.ndarray:
        n, c, h, w = x.shape
        return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))

    x = pool(np.maximum(conv(images, params["conv1.weight"], params["conv1.bias"]), 0))
    x = pool(np.maximum(conv(x, params["conv2.weight"], params["conv2.bias"]), 0)).reshape(len(images), -1)
    x = np.maximum(x @ params["fc1.weight"].T + params["fc1.bias"], 0)
    z = x @ params["fc2.weight"].T + params["fc2.bias"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_forward_pass_matches_an_independent_numpy_reference() -> None:
    # GIVEN random parameters and training images
    data = make_dataset(1)
    images, labels = data.train_images[:12], data.train_labels[:12]
    params = random_parameters(1)
    loop = GeneratorsCNN(RunConfig(seed=1))
    loop.set_parameters(params)
    # WHEN both compute the mean loss
    loss, _ = loop.loss_and_gradients(images, labels)
    probs = reference_probabilities(params, images)
    want = float(np.mean(-np.log(probs[np.arange(len(labels)), labels])))
    # THEN they agree (orientation of kernels, flatten order, pooling, softmax)
    assert loss == pytest.approx(want, rel=1e-12)


def test_one_epoch_in_batches_is_gradient_descent_on_consecutive_chunks() -> None:
    # GIVEN batches of 100: one full chunk and a last, smaller chunk of 50
    data = make_dataset(0)
    loop = GeneratorsCNN(RunConfig(seed=0, batch_size=100))
    reference = GeneratorsCNN(RunConfig(seed=0))
    start = reference.get_parameters()
    # WHEN the loop trains one epoch
    loop.train_epoch(1)
    # THEN it equals two explicit steps W <- W - 0.1 * mean gradient of each chunk in order
    _, g1 = reference.loss_and_gradients(data.train_images[:100], data.train_labels[:100])
    middle = {name: start[name] - 0.1 * g1[name] for name in start}
    reference.set_parameters(middle)
    _, g2 = reference.loss_and_gradients(data.train_images[100:], data.train_labels[100:])
    got = loop.get_parameters()
    for name in start:
        np.testing.assert_allclose(got[name], middle[name] - 0.1 * g2[name], rtol=0, atol=1e-12, err_msg=name)
    assert not np.array_equal(middle["fc2.weight"], got["fc2.weight"])  # the second step moved something


# ---- the training loop ---------------------------------------------------------------------------


def run(leak: str | None, epochs: int, **options: object) -> tuple[GeneratorsCNN, list[dict[str, float]]]:
    loop = GeneratorsCNN(RunConfig(seed=4, epochs=epochs, leak=leak, options=options))
    return loop, [loop.train_epoch(epoch) for epoch in range(1, epochs + 1)]


def test_satisfies_the_training_interface() -> None:
    loop = GeneratorsCNN(RunConfig(seed=0))
    assert isinstance(loop, TrainingLoop)
    assert GeneratorsCNN.DESCRIPTION and set(GeneratorsCNN.LEAKS) == {"thunks"}


def test_leak_changes_no_number() -> None:
    # GIVEN the same seed WHEN the fixed and the leaky loop train 3 epochs
    fixed_loop, fixed = run(None, 3)
    leaky_loop, leaky = run("thunks", 3)
    # THEN every metric and every parameter is identical, and training did move the metrics
    assert leaky == fixed
    assert all(isinstance(v, float) for m in fixed for v in m.values())
    assert set(fixed[0]) == {"loss", "accuracy", "correct_prob"}
    assert fixed[2]["loss"] < fixed[0]["loss"]
    for name, value in fixed_loop.get_parameters().items():
        assert np.array_equal(value, leaky_loop.get_parameters()[name]), name


def test_fc_only_leaves_conv_parameters_unchanged() -> None:
    # GIVEN a loop where only the fully connected layers learn
    loop = GeneratorsCNN(RunConfig(seed=2, options={"fc_only": True}))
    before = loop.get_parameters()
    # WHEN it trains two epochs
    loop.train_epoch(1)
    loop.train_epoch(2)
    after = loop.get_parameters()
    # THEN the conv parameters are untouched and the fc ones moved
    for name in CONV_PARAMETERS:
        assert np.array_equal(before[name], after[name]), name
    for name in FC_PARAMETERS:
        assert not np.array_equal(before[name], after[name]), name


def test_unknown_leak_is_a_usage_error_naming_the_accepted_ones() -> None:
    with pytest.raises(UsageError, match=r"'drip'.*accepted: thunks"):
        GeneratorsCNN(RunConfig(leak="drip"))


def test_wrong_parameter_shape_is_a_usage_error() -> None:
    loop = GeneratorsCNN(RunConfig(seed=0))
    params = loop.get_parameters()
    params["fc1.weight"] = np.zeros((80, 20))
    with pytest.raises(UsageError, match=r"fc1\.weight.*\(20, 80\)"):
        loop.set_parameters(params)


# ---- the thunks leak -----------------------------------------------------------------------------


def live_traces() -> int:
    """How many per-sample traces are still reachable anywhere after a full collection."""
    gc.collect()
    # issubclass(type(...)), not isinstance: isinstance asks a weakref proxy (numba makes some) for its
    # referent's class, which raises ReferenceError once the referent is gone.
    return sum(issubclass(type(obj), Trace) for obj in gc.get_objects())


def growth_over_epochs(leak: str | None, epochs: int = 3) -> tuple[float, int, int]:
    """Python blocks kept per epoch after a warm-up epoch, live traces, and the thunk chain length at the end.

    Counted in allocator blocks, not RSS: inside a test process that has already run
    other tests, freed memory gets reused and RSS understates what is kept (the RSS
    figure, ~15.7 MiB/epoch, comes from a worker: tests/integration/test_guard_variants.py).
    """
    loop = GeneratorsCNN(RunConfig(seed=0, epochs=epochs + 1, leak=leak))
    loop.train_epoch(1)  # warm-up: caches and free lists fill on the first epoch
    gc.collect()
    start = sys.getallocatedblocks()
    for epoch in range(2, epochs + 2):
        loop.train_epoch(epoch)
    gc.collect()
    return (sys.getallocatedblocks() - start) / epochs, live_traces(), loop.chain_length()


PARAMETER_COUNT = 2603  # every weight and bias of the seed's network


def test_thunk_leak_keeps_a_growing_chain_reachable() -> None:
    # GIVEN the traces other tests may have left reachable
    before = live_traces()
    # WHEN the fixed, then the leaky loop train 1 + 3 epochs
    fixed_blocks, fixed_traces, fixed_chain = growth_over_epochs(None)
    leaky_blocks, leaky_traces, leaky_chain = growth_over_epochs("thunks")
    # THEN the leaky one keeps every update (one per epoch at the default batch), the per-sample
    # records of every epoch: at least one float object per parameter per sample, every epoch
    assert leaky_chain == 1 + 4
    assert leaky_traces - before == 4 * 150
    assert leaky_blocks > 150 * PARAMETER_COUNT, f"leak kept only {leaky_blocks:,.0f} blocks per epoch"
    # AND the fixed one keeps only its current parameters, no sample records, and stays flat
    assert fixed_chain == 1
    assert fixed_traces - before == 0
    assert fixed_blocks < 1000, f"fixed loop kept {fixed_blocks:,.0f} blocks per epoch"


def test_close_lets_go_of_the_chain() -> None:
    loop, _ = run("thunks", 2)
    assert loop.chain_length() == 3
    loop.close()
    assert loop.chain_length() == 1


def test_label_outside_the_classes_is_a_usage_error() -> None:
    loop = GeneratorsCNN(RunConfig(seed=0))
    images = make_dataset(0).test_images[:2]
    with pytest.raises(UsageError, match=r"labels must be class numbers 0 to 2"):
        loop.loss_and_gradients(images, np.array([0, 3]))
