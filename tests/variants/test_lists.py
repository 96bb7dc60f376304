"""The lists variant: every layer's backward against finite differences, the whole network, the leak."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from harness.errors import UsageError
from harness.interface import RunConfig
from tests.helpers import numeric_gradient, relative_error
from variants.data import initial_parameters, make_dataset
from variants.lists import ListsCNN
from variants.lists.layers import (
    ConvLayer,
    FlattenLayer,
    FullLayer,
    MaxPoolLayer,
    ReluLayer,
    SoftmaxLayer,
    backward_layer,
    cross_entropy,
    forward_layer,
    output_delta,
    softmax,
)
from variants.network import CONV_PARAMETERS, FC_PARAMETERS, PARAMETER_SHAPES

TOLERANCE = 1e-6


def projected(layer: Any, image: Any, upstream: np.ndarray) -> float:
    """S = sum(upstream * layer output): its gradient is what backward returns for ``upstream``."""
    output = forward_layer(layer, image)[0]
    return float(np.sum(upstream * np.asarray(output)))


def layer_gradients(
    layer_type: Any, w: np.ndarray, b: np.ndarray, x: np.ndarray, g: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Central differences of sum(g * layer(x)), layer = layer_type(w, b): by x, by w and by b."""

    def through(weights: np.ndarray, biases: np.ndarray, image: np.ndarray) -> float:
        return projected(layer_type(weights.tolist(), biases.tolist()), image.tolist(), g)

    return (
        numeric_gradient(lambda v: through(w, b, v), x.copy()),
        numeric_gradient(lambda v: through(v, b, x), w.copy()),
        numeric_gradient(lambda v: through(w, v, x), b.copy()),
    )


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed random stream per test."""
    return np.random.default_rng(1234)


@pytest.mark.parametrize(("channels", "kernels", "size", "s"), [(1, 4, 6, 3), (3, 4, 5, 2)])
def test_conv_backward_matches_finite_differences(
    rng: np.random.Generator, channels: int, kernels: int, size: int, s: int
) -> None:
    # GIVEN a convolution, an input and an upstream delta, all random
    w = rng.normal(size=(kernels, channels, s, s))
    b = rng.normal(size=kernels)
    x = rng.normal(size=(channels, size, size))
    g = rng.normal(size=(kernels, size - s + 1, size - s + 1))
    layer = ConvLayer(w.tolist(), b.tolist())
    # WHEN it propagates the delta back (zero border and flipped kernels)
    kept = forward_layer(layer, x.tolist())[1]
    delta, diff = backward_layer(layer, kept, g.tolist())
    # THEN input delta, kernel and bias gradients are the derivatives of sum(g * output)
    num_x, num_w, num_b = layer_gradients(ConvLayer, w, b, x, g)
    assert relative_error(delta, num_x) < TOLERANCE
    assert relative_error(diff.kernels, num_w) < TOLERANCE
    assert relative_error(diff.biases, num_b) < TOLERANCE


def test_conv_backward_skips_the_delta_only_when_asked(rng: np.random.Generator) -> None:
    # GIVEN a convolution and a delta
    layer = ConvLayer(rng.normal(size=(2, 1, 3, 3)).tolist(), [0.1, -0.2])
    x = rng.normal(size=(1, 5, 5)).tolist()
    g = rng.normal(size=(2, 3, 3)).tolist()
    # WHEN the first layer of the network is walked (no layer above needs its delta)
    delta, diff = backward_layer(layer, x, g, need_delta=False)
    # THEN no delta is computed but the gradients are the same
    assert delta is None
    assert diff.kernels == backward_layer(layer, x, g)[1].kernels


def test_relu_backward_matches_finite_differences(rng: np.random.Generator) -> None:
    # GIVEN pre-activations well away from the kink at 0, of both signs
    x = rng.uniform(0.1, 1.0, size=(3, 4, 4)) * rng.choice([-1.0, 1.0], size=(3, 4, 4))
    g = rng.normal(size=x.shape)
    # WHEN the delta goes back through ReLU
    delta, _ = backward_layer(ReluLayer(), x.tolist(), g.tolist())
    # THEN it is the derivative of sum(g * relu(x))
    num = numeric_gradient(lambda v: projected(ReluLayer(), v.tolist(), g), x.copy())
    assert relative_error(delta, num) < TOLERANCE


def test_relu_passes_no_delta_at_exactly_zero() -> None:
    # GIVEN pre-activations 0.0 (as an all-zero patch with a zero bias gives), positive and negative
    kept = forward_layer(ReluLayer(), [[[0.0, 2.0, -1.0]]])[1]
    # WHEN a delta comes back THEN only the strictly positive one passes (derivative 0 at 0)
    assert backward_layer(ReluLayer(), kept, [[[5.0, 5.0, 5.0]]])[0] == [[[0.0, 5.0, 0.0]]]


def test_pool_backward_matches_finite_differences(rng: np.random.Generator) -> None:
    # GIVEN distinct random pixels (no ties) and an upstream delta
    x = rng.normal(size=(2, 4, 6))
    g = rng.normal(size=(2, 2, 3))
    layer = MaxPoolLayer(2)
    # WHEN the delta goes back to the recorded maxima
    positions = forward_layer(layer, x.tolist())[1]
    delta, _ = backward_layer(layer, positions, g.tolist())
    # THEN it is the derivative of sum(g * pool(x))
    num = numeric_gradient(lambda v: projected(layer, v.tolist(), g), x.copy())
    assert relative_error(delta, num) < TOLERANCE


def test_pool_gives_a_tie_to_the_first_maximum_in_row_major_order() -> None:
    # GIVEN a window whose maximum 0.5 appears at (0, 1) and (1, 0)
    image = [[[0.0, 0.5], [0.5, 0.2]]]
    layer = MaxPoolLayer(2)
    # WHEN it is pooled and a delta comes back
    output, positions = forward_layer(layer, image)
    delta, _ = backward_layer(layer, positions, [[[3.0]]])
    # THEN the first maximum (row-major) takes the whole delta
    assert output == [[[0.5]]]
    assert delta == [[[0.0, 3.0], [0.0, 0.0]]]


def test_flatten_backward_matches_finite_differences(rng: np.random.Generator) -> None:
    # GIVEN an image and an upstream delta for its flat form
    x = rng.normal(size=(2, 3, 4))
    g = rng.normal(size=(1, 1, x.size))
    # WHEN the flat delta goes back
    delta, _ = backward_layer(FlattenLayer(), forward_layer(FlattenLayer(), x.tolist())[1], g.tolist())
    # THEN it is the derivative of sum(g * flatten(x)), so channel, row, column order on both ways
    num = numeric_gradient(lambda v: projected(FlattenLayer(), v.tolist(), g), x.copy())
    assert relative_error(delta, num) < TOLERANCE
    assert forward_layer(FlattenLayer(), x.tolist())[0] == [[x.reshape(-1).tolist()]]


def test_fully_connected_backward_matches_finite_differences(rng: np.random.Generator) -> None:
    # GIVEN a fully connected layer, an input row and an upstream delta
    w = rng.normal(size=(4, 6))
    b = rng.normal(size=4)
    x = rng.normal(size=(1, 1, 6))
    g = rng.normal(size=(1, 1, 4))
    layer = FullLayer(w.tolist(), b.tolist())
    # WHEN the delta goes back
    delta, diff = backward_layer(layer, x.tolist(), g.tolist())
    # THEN delta, weight and bias gradients are the derivatives of sum(g * (W x + b))
    num_x, num_w, num_b = layer_gradients(FullLayer, w, b, x, g)
    assert relative_error(delta, num_x) < TOLERANCE
    assert relative_error(diff.weights, num_w) < TOLERANCE
    assert relative_error(diff.biases, num_b) < TOLERANCE


@pytest.mark.parametrize("label", [0, 1, 2])
def test_softmax_cross_entropy_delta_matches_finite_differences(rng: np.random.Generator, label: int) -> None:
    # GIVEN the softmax's input
    z = rng.normal(size=3) * 3.0

    def loss(v: np.ndarray) -> float:
        return cross_entropy(forward_layer(SoftmaxLayer(), [[v.tolist()]])[0][0][0], label)

    # WHEN the output delta is taken and handed through the softmax layer
    delta, _ = backward_layer(SoftmaxLayer(), [[z.tolist()]], output_delta(softmax(z.tolist()), label))
    # THEN it is the derivative of -log softmax(z)[label]
    assert relative_error(delta[0][0], numeric_gradient(loss, z.copy())) < TOLERANCE


def numpy_forward(params: dict[str, np.ndarray], image: np.ndarray) -> np.ndarray:
    """An independent NumPy forward pass of the seed's network, written from VARIANT_SEMANTICS.md."""

    def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        k, _, s, _ = w.shape
        n = x.shape[1] - s + 1
        out = np.empty((k, n, n))
        for y in range(n):
            for xx in range(n):
                out[:, y, xx] = np.tensordot(w, x[:, y : y + s, xx : xx + s], axes=3) + b
        return out

    def pool(x: np.ndarray) -> np.ndarray:
        c, n, _ = x.shape
        return x.reshape(c, n // 2, 2, n // 2, 2).max(axis=(2, 4))

    a = pool(np.maximum(conv(image, params["conv1.weight"], params["conv1.bias"]), 0))
    a = pool(np.maximum(conv(a, params["conv2.weight"], params["conv2.bias"]), 0)).reshape(-1)
    h = np.maximum(params["fc1.weight"] @ a + params["fc1.bias"], 0)
    z = params["fc2.weight"] @ h + params["fc2.bias"]
    e = np.exp(z - z.max())
    return e / e.sum()


def random_parameters(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """All parameters non-zero (fc2 and biases too) so that every gradient is non-trivial."""
    params = initial_parameters(0)
    for name, shape in PARAMETER_SHAPES.items():
        params[name] = params[name] + rng.normal(scale=0.3, size=shape)
    return params


@pytest.fixture(scope="module")
def network() -> tuple[ListsCNN, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """A network with random non-zero parameters and three training samples (one per class)."""
    model = ListsCNN(RunConfig(seed=0))
    params = random_parameters(np.random.default_rng(7))
    model.set_parameters(params)
    data = make_dataset(0)
    return model, params, data.train_images[:3], data.train_labels[:3]


def test_forward_agrees_with_an_independent_numpy_forward(network: Any) -> None:
    # GIVEN the network and its parameters in canonical form
    model, params, images, labels = network
    # WHEN the loss is computed by the lists variant and by NumPy
    loss, _ = model.loss_and_gradients(images, labels)
    expected = np.mean([-np.log(numpy_forward(params, x)[y]) for x, y in zip(images, labels)])
    # THEN they agree to rounding
    assert loss == pytest.approx(expected, rel=1e-12)


def test_network_gradients_match_finite_differences(network: Any) -> None:
    # GIVEN the network with random non-zero parameters and three samples
    model, params, images, labels = network
    _, grads = model.loss_and_gradients(images, labels)
    pick = np.random.default_rng(3)

    def loss_with(name: str, value: np.ndarray) -> float:
        model.set_parameters(params | {name: value})
        return model.loss_and_gradients(images, labels)[0]

    try:
        for name, shape in PARAMETER_SHAPES.items():
            # WHEN a few entries of each parameter are nudged both ways
            flat = [
                tuple(i) for i in pick.choice(list(np.ndindex(shape)), size=min(6, int(np.prod(shape))), replace=False)
            ]
            numeric = numeric_gradient(
                lambda value, name=name: loss_with(name, value), params[name].copy(), flat, step=1e-5
            )
            # THEN the analytic gradient of the mean loss agrees in each parameter
            analytic = [grads[name][index] for index in flat]
            assert relative_error(analytic, numeric) < TOLERANCE, name
    finally:
        model.set_parameters(params)


def test_loss_and_gradients_covers_all_parameters_without_updating(network: Any) -> None:
    # GIVEN the network
    model, params, images, labels = network
    # WHEN gradients are asked for
    _, grads = model.loss_and_gradients(images, labels)
    # THEN every canonical parameter has a non-zero gradient of its shape and nothing moved
    assert {name: g.shape for name, g in grads.items()} == PARAMETER_SHAPES
    assert all(np.any(g != 0) for g in grads.values())
    assert all(np.array_equal(model.get_parameters()[name], params[name]) for name in params)


def test_set_parameters_refuses_a_wrong_shape() -> None:
    # GIVEN a parameter set with one wrong shape
    params = initial_parameters(0) | {"fc1.bias": np.zeros(3)}
    # WHEN it is set THEN a one-line usage error names the parameter
    with pytest.raises(UsageError, match=r"fc1\.bias"):
        ListsCNN(RunConfig(seed=0)).set_parameters(params)


def test_unknown_leak_raises_usage_error() -> None:
    # GIVEN a leak name the variant does not have WHEN it is built THEN the error names it and the accepted ones
    with pytest.raises(UsageError, match=r"'nope'.*recursion"):
        ListsCNN(RunConfig(seed=0, leak="nope"))


def test_recursion_leak_refuses_more_epochs_than_it_can_recurse() -> None:
    # GIVEN far more epochs than the C stack can nest WHEN built with the leak THEN a usage error says so
    with pytest.raises(UsageError, match="at most"):
        ListsCNN(RunConfig(seed=0, epochs=10**6, leak="recursion"))


def test_fc_only_leaves_conv_parameters_unchanged() -> None:
    # GIVEN the seed's second column: only the fully connected layers learn
    model = ListsCNN(RunConfig(seed=0, options={"fc_only": True}))
    before = model.get_parameters()
    # WHEN two epochs are trained (fc1 only gets a gradient once fc2 has moved off zero)
    model.train_epoch(1)
    model.train_epoch(2)
    after = model.get_parameters()
    # THEN conv parameters are bit for bit the same and the fc ones moved
    assert all(np.array_equal(before[name], after[name]) for name in CONV_PARAMETERS)
    assert all(not np.array_equal(before[name], after[name]) for name in FC_PARAMETERS)


EPOCHS = 3


def run(leak: str | None) -> tuple[list[dict[str, float]], list[int]]:
    """Metrics and allocated memory blocks after each of three epochs."""
    model = ListsCNN(RunConfig(seed=0, epochs=EPOCHS, leak=leak))
    metrics, blocks = [], []
    for epoch in range(1, EPOCHS + 1):
        metrics.append(model.train_epoch(epoch))
        gc.collect()
        blocks.append(sys.getallocatedblocks())
    model.close()
    return metrics, blocks


@pytest.fixture(scope="module")
def runs() -> dict[str | None, tuple[list[dict[str, float]], list[int]]]:
    """The fixed and the leaky loop, three epochs each."""
    return {leak: run(leak) for leak in (None, "recursion")}


def test_fixed_and_leaky_loops_give_identical_metrics(runs: Any) -> None:
    # GIVEN the same seed trained with and without the leak WHEN three epochs run
    fixed, leaky = runs[None][0], runs["recursion"][0]
    # THEN every metric is identical, and training made progress
    assert fixed == leaky
    assert set(fixed[0]) == {"loss", "accuracy", "correct_prob"}
    assert all(type(v) is float for m in fixed for v in m.values())
    assert fixed[-1]["correct_prob"] > fixed[0]["correct_prob"] > 1 / 3


# One epoch's per-sample differences: a float (one memory block) per parameter per sample.
DIFFERENCE_BLOCKS = 150 * sum(int(np.prod(shape)) for shape in PARAMETER_SHAPES.values())


def test_recursion_leak_keeps_every_epochs_differences(runs: Any) -> None:
    # GIVEN memory blocks counted after epochs 1 and 3 of the leaky loop
    blocks = runs["recursion"][1]
    # WHEN two more epochs have run
    growth = blocks[-1] - blocks[0]
    # THEN at least the per-sample differences of those two epochs are still allocated
    assert growth > 2 * DIFFERENCE_BLOCKS, f"grew {growth} blocks; expected > {2 * DIFFERENCE_BLOCKS}"


def test_fixed_loop_lets_the_differences_go(runs: Any) -> None:
    # GIVEN memory blocks counted after epochs 1 and 3 of the fixed loop
    blocks = runs[None][1]
    # WHEN two more epochs have run
    growth = blocks[-1] - blocks[0]
    # THEN almost nothing stayed behind (less than 2 % of one epoch's differences)
    assert growth < DIFFERENCE_BLOCKS // 50, f"grew {growth} blocks"


def at_depth(frames: int, work: Callable[[], Any]) -> Any:
    """Call ``work`` from ``frames`` Python frames further down the stack (as a deep harness might)."""
    return work() if frames == 0 else at_depth(frames - 1, work)


def test_recursion_leak_runs_the_seeds_500_epochs_from_deep_in_a_stack() -> None:
    # GIVEN the leaky loop built and driven 450 frames down, on one sample (so 500 epochs are quick):
    # 450 + 500 epoch levels + the layers' recursion exceed Python's default limit of 1000
    limit = sys.getrecursionlimit()
    model = at_depth(450, lambda: ListsCNN(RunConfig(seed=0, epochs=500, leak="recursion")))
    model._batches = [model._batches[0][:1]]
    model._test = model._test[:1]
    try:
        # WHEN it trains the seed's planned 500 epochs, one recursion level each
        losses = at_depth(450, lambda: [model.train_epoch(epoch)["loss"] for epoch in range(1, 501)])
        # THEN the loop made room for its recursion and the loss kept falling
        assert losses[-1] < losses[0]
    finally:
        model.close()
        sys.setrecursionlimit(limit)
