"""The torch variant: gradients by finite differences, torch's layers against the seed's
semantics, training against an independent NumPy reference, and the FAQ's graph leak.

The NumPy reference below is written from notes/VARIANT_SEMANTICS.md alone (seed-style
conv backward, first-maximum pooling), so it checks torch.nn, and torch checks it.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from harness.errors import UsageError
from harness.interface import RunConfig, TrainingLoop
from tests.helpers import assert_metrics_close, numeric_gradient, relative_error
from variants.data import initial_parameters, make_dataset
from variants.network import FC_PARAMETERS, PARAMETER_SHAPES

TOLERANCE = 1e-9
TORCH_MISSING = "torch not installed: pip install '.[torch]'"
Params = dict[str, np.ndarray]


@pytest.fixture(scope="module")
def torch() -> Iterator[ModuleType]:
    """PyTorch on one thread, or a skip that says how to install it."""
    module = pytest.importorskip("torch", reason=TORCH_MISSING)
    before = module.get_num_threads()
    # These tensors are tiny; a second OpenMP thread only spins when the shared machine is busy.
    module.set_num_threads(1)
    yield module
    module.set_num_threads(before)


@pytest.fixture(scope="module")
def torch_net(torch: ModuleType) -> ModuleType:
    """The variant's module (imported only once torch is known to be there)."""
    return importlib.import_module("variants.torch.model")


@pytest.fixture(autouse=True)
def keep_thread_count() -> Iterator[None]:
    """The ``threads`` option is process-wide in torch: put it back after each test."""
    module = sys.modules.get("torch")
    before = module.get_num_threads() if module else None
    yield
    if module and before is not None:
        module.set_num_threads(before)


def make(torch_net: ModuleType, **kwargs: Any) -> Any:
    """A TorchCNN for a RunConfig built from ``kwargs``."""
    return torch_net.TorchCNN(RunConfig(**kwargs))


# --- An independent float64 NumPy reference, straight from the semantics note ------------


def conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Valid cross-correlation, stride 1; also the input windows backward needs."""
    windows = sliding_window_view(x, w.shape[2:], axis=(2, 3))  # (n, c, y, x, i, j)
    return np.einsum("ncyxij,kcij->nkyx", windows, w) + b[None, :, None, None], windows


def conv_backward(delta: np.ndarray, windows: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed's way: input delta = correlation of the zero-bordered delta with the flipped kernels."""
    kh, kw = w.shape[2:]
    bordered = np.pad(delta, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    delta_windows = sliding_window_view(bordered, (kh, kw), axis=(2, 3))
    d_input = np.einsum("nkyxij,kcij->ncyx", delta_windows, w[:, :, ::-1, ::-1])
    return d_input, np.einsum("nkyx,ncyxij->kcij", delta, windows), delta.sum(axis=(0, 2, 3))


def pool(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max-pool; the first maximum in row-major order wins (np.argmax keeps the first)."""
    n, c, h, w = x.shape
    windows = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    winner = windows.argmax(axis=-1)
    return np.take_along_axis(windows, winner[..., None], axis=-1)[..., 0], winner


def pool_backward(delta: np.ndarray, winner: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The delta goes only to the recorded winner of each window."""
    n, c, h, w = shape
    windows = np.zeros((n, c, h // 2, w // 2, 4))
    np.put_along_axis(windows, winner[..., None], delta[..., None], axis=-1)
    return windows.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(shape)


def relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.0)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference_forward(p: Params, images: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Softmax probabilities and what backward needs."""
    z1, win1 = conv(images, p["conv1.weight"], p["conv1.bias"])
    p1, arg1 = pool(relu(z1))
    z2, win2 = conv(p1, p["conv2.weight"], p["conv2.bias"])
    p2, arg2 = pool(relu(z2))
    flat = p2.reshape(len(images), -1)
    h_pre = flat @ p["fc1.weight"].T + p["fc1.bias"]
    h = relu(h_pre)
    probs = softmax(h @ p["fc2.weight"].T + p["fc2.bias"])
    return probs, {
        "z1": z1,
        "win1": win1,
        "arg1": arg1,
        "z2": z2,
        "win2": win2,
        "arg2": arg2,
        "p2": p2,
        "flat": flat,
        "h_pre": h_pre,
        "h": h,
    }


def reference_loss_and_gradients(p: Params, images: np.ndarray, labels: np.ndarray) -> tuple[float, Params]:
    """Mean cross-entropy and the mean gradient of every parameter."""
    n = len(labels)
    probs, s = reference_forward(p, images)
    loss = float(-np.log(probs[np.arange(n), labels]).mean())
    d = (probs - np.eye(probs.shape[1])[labels]) / n  # mean over the batch
    g = {"fc2.weight": d.T @ s["h"], "fc2.bias": d.sum(axis=0)}
    dh = (d @ p["fc2.weight"]) * (s["h_pre"] > 0)
    g["fc1.weight"], g["fc1.bias"] = dh.T @ s["flat"], dh.sum(axis=0)
    d2 = pool_backward((dh @ p["fc1.weight"]).reshape(s["p2"].shape), s["arg2"], s["z2"].shape) * (s["z2"] > 0)
    d_p1, g["conv2.weight"], g["conv2.bias"] = conv_backward(d2, s["win2"], p["conv2.weight"])
    d1 = pool_backward(d_p1, s["arg1"], s["z1"].shape) * (s["z1"] > 0)
    _, g["conv1.weight"], g["conv1.bias"] = conv_backward(d1, s["win1"], p["conv1.weight"])
    return loss, g


def reference_training(seed: int, epochs: int, batch_size: int, fc_only: bool) -> list[dict[str, float]]:
    """The seed's training loop in the reference: per-batch mean gradient, plain descent."""
    data, p = make_dataset(seed), initial_parameters(seed)
    learning = FC_PARAMETERS if fc_only else tuple(PARAMETER_SHAPES)
    n, history = len(data.train_labels), []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, n, batch_size):
            images, labels = (
                data.train_images[start : start + batch_size],
                data.train_labels[start : start + batch_size],
            )
            loss, grads = reference_loss_and_gradients(p, images, labels)
            total += loss * len(labels)
            for name in learning:
                p[name] = p[name] - 0.1 * grads[name]
        probs, _ = reference_forward(p, data.test_images)
        rows = np.arange(len(data.test_labels))
        history.append(
            {
                "loss": total / n,
                "accuracy": float((probs.argmax(axis=1) == data.test_labels).mean()),
                "correct_prob": float(probs[rows, data.test_labels].mean()),
            }
        )
    return history


def random_parameters(seed: int) -> Params:
    """Initial weights with non-zero biases and last layer, so no gradient is trivially zero."""
    rng = np.random.default_rng(seed)
    p = initial_parameters(seed)
    for name in ("conv1.bias", "conv2.bias", "fc1.bias", "fc2.bias"):
        p[name] = rng.normal(0.0, 0.1, PARAMETER_SHAPES[name])
    p["fc2.weight"] = rng.normal(0.0, 0.5, PARAMETER_SHAPES["fc2.weight"])
    return p


# --- Import without torch ----------------------------------------------------------------


def test_missing_torch_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN torch cannot be imported (None in sys.modules makes `import torch` fail)
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "variants.torch", raising=False)
    monkeypatch.delitem(sys.modules, "variants.torch.model", raising=False)
    # WHEN the variant is imported THEN the error says how to install it
    with pytest.raises(ImportError, match=r"pip install '\.\[torch\]'"):
        importlib.import_module("variants.torch")


# --- torch's layers against the seed's semantics -------------------------------------------


def test_conv2d_is_the_seeds_correlation_and_backward(torch: ModuleType) -> None:
    # GIVEN random input, kernels, bias and upstream delta of conv2's shape
    rng = np.random.default_rng(1)
    x, w, b = rng.normal(size=(3, 10, 5, 5)), rng.normal(size=(20, 10, 2, 2)), rng.normal(size=20)
    layer = torch.nn.Conv2d(10, 20, 2, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(w))
        layer.bias.copy_(torch.from_numpy(b))
    xt = torch.from_numpy(x).requires_grad_(True)
    out = layer(xt)
    delta = rng.normal(size=tuple(out.shape))
    # WHEN torch's autograd runs backward
    out.backward(torch.from_numpy(delta))
    # THEN forward and all three gradients equal the seed's formulas
    want_out, windows = conv(x, w, b)
    want_dx, want_dw, want_db = conv_backward(delta, windows, w)
    np.testing.assert_allclose(out.detach().numpy(), want_out, rtol=0, atol=1e-12)
    np.testing.assert_allclose(xt.grad.numpy(), want_dx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.numpy(), want_dw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.numpy(), want_db, rtol=0, atol=1e-12)


def test_max_pool_ties_go_to_the_first_maximum(torch: ModuleType) -> None:
    # GIVEN binary images like the seed's, so many windows hold exactly equal maxima
    rng = np.random.default_rng(2)
    x = np.where(rng.random((6, 10, 10, 10)) < 0.5, 0.5, 0.0)
    windows = x.reshape(6, 10, 5, 2, 5, 2).transpose(0, 1, 2, 4, 3, 5).reshape(6, 10, 5, 5, 4)
    tied = ((windows == windows.max(axis=-1, keepdims=True)).sum(axis=-1) > 1).mean()
    assert tied > 0.5  # the test is only worth something if ties are common
    xt = torch.from_numpy(x).requires_grad_(True)
    out = torch.nn.MaxPool2d(2)(xt)
    delta = rng.normal(size=tuple(out.shape))
    # WHEN the delta flows back through torch's max-pool
    out.backward(torch.from_numpy(delta))
    # THEN it reaches exactly the first maximum of each window in row-major order, nothing else
    want_out, winner = pool(x)
    np.testing.assert_array_equal(out.detach().numpy(), want_out)
    np.testing.assert_array_equal(xt.grad.numpy(), pool_backward(delta, winner, x.shape))


def test_relu_derivative_is_zero_at_exactly_zero(torch: ModuleType) -> None:
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    torch.nn.ReLU()(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0]


# --- Gradients of the whole network ------------------------------------------------------------


def test_gradients_match_central_differences(torch_net: ModuleType) -> None:
    # GIVEN the network at random parameters (non-zero biases and last layer) and 8 samples
    loop = make(torch_net, seed=4)
    params = random_parameters(4)
    loop.set_parameters(params)
    data = make_dataset(4)
    images, labels = data.train_images[:8], data.train_labels[:8]
    _, grads = loop.loss_and_gradients(images, labels)
    rng = np.random.default_rng(0)

    def loss_at(name: str, value: np.ndarray) -> float:
        loop.set_parameters(params | {name: value})
        return loop.loss_and_gradients(images, labels)[0]

    for name, shape in PARAMETER_SHAPES.items():
        # WHEN up to 25 entries of each parameter are moved by +-1e-6
        flat = rng.choice(int(np.prod(shape)), size=min(25, int(np.prod(shape))), replace=False)
        indices = [np.unravel_index(i, shape) for i in flat]
        numeric = numeric_gradient(lambda value, name=name: loss_at(name, value), params[name].copy(), indices)
        analytic = np.array([grads[name][i] for i in indices])
        # THEN the central differences match autograd's gradient (and it is not trivially zero)
        assert np.linalg.norm(analytic) > 1e-6, name
        error = relative_error(analytic, numeric)
        assert error < 1e-6, f"{name}: relative error {error:.2e}"


@pytest.mark.parametrize("fc_only", [False, True], ids=["all", "fc_only"])
def test_loss_and_gradients_match_reference(torch_net: ModuleType, fc_only: bool) -> None:
    # GIVEN the same random parameters in the variant (fc_only freezes conv for training) and the reference
    loop = make(torch_net, seed=6, options={"fc_only": fc_only})
    params = random_parameters(6)
    loop.set_parameters(params)
    data = make_dataset(6)
    # WHEN both compute the mean loss and gradients on 20 samples
    loss, grads = loop.loss_and_gradients(data.train_images[:20], data.train_labels[:20])
    want_loss, want_grads = reference_loss_and_gradients(params, data.train_images[:20], data.train_labels[:20])
    # THEN all 8 gradients agree to 1e-9, and nothing was updated
    assert loss == pytest.approx(want_loss, abs=TOLERANCE)
    assert set(grads) == set(PARAMETER_SHAPES)
    for name in PARAMETER_SHAPES:
        np.testing.assert_allclose(grads[name], want_grads[name], rtol=0, atol=TOLERANCE, err_msg=name)
        np.testing.assert_array_equal(loop.get_parameters()[name], params[name])


# --- Training --------------------------------------------------------------------------------


@pytest.mark.parametrize("leak", [None, "graph"], ids=["fixed", "leaky"])
@pytest.mark.parametrize(
    ("batch_size", "fc_only"), [(150, False), (64, False), (150, True)], ids=["seed", "batch64", "fc_only"]
)
def test_training_matches_reference(torch_net: ModuleType, leak: str | None, batch_size: int, fc_only: bool) -> None:
    # GIVEN the variant, with or without its leak, and the NumPy reference for the same seed
    loop = make(torch_net, seed=5, leak=leak, batch_size=batch_size, options={"fc_only": fc_only})
    assert isinstance(loop, TrainingLoop)
    # WHEN both train 3 epochs
    got = [loop.train_epoch(epoch) for epoch in (1, 2, 3)]
    # THEN every epoch's metrics agree to 1e-9 and are plain floats
    assert_metrics_close(got, reference_training(5, 3, batch_size, fc_only), TOLERANCE)
    assert all(type(value) is float for metrics in got for value in metrics.values())


@pytest.mark.parametrize("leak", [None, "graph"], ids=["fixed", "leaky"])
def test_training_matches_numpy_variant(torch_net: ModuleType, leak: str | None) -> None:
    # GIVEN the numpy variant (BuffersCNN), when it is there, and this one for the same seed
    try:
        from variants.numpy import BuffersCNN
    except ImportError as error:
        pytest.skip(f"variants.numpy not importable yet: {error}")
    loop, numpy_loop = make(torch_net, seed=5, leak=leak), BuffersCNN(RunConfig(seed=5))
    # WHEN both train 3 epochs THEN loss, accuracy and correct_prob agree to 1e-9
    got = [loop.train_epoch(epoch) for epoch in (1, 2, 3)]
    try:
        want = [numpy_loop.train_epoch(epoch) for epoch in (1, 2, 3)]
    finally:
        getattr(numpy_loop, "close", lambda: None)()
    assert_metrics_close(got, want, TOLERANCE)


@pytest.mark.parametrize("batch_size", [150, 40])
def test_leak_changes_no_number(torch_net: ModuleType, batch_size: int) -> None:
    # GIVEN two runs of the same seed, one with the graph leak WHEN both train 3 epochs
    leaky_loop = make(torch_net, seed=3, batch_size=batch_size, leak="graph")
    fixed_loop = make(torch_net, seed=3, batch_size=batch_size)
    fixed = [fixed_loop.train_epoch(e) for e in (1, 2, 3)]
    leaky = [leaky_loop.train_epoch(e) for e in (1, 2, 3)]
    # THEN the numbers are identical, bit for bit
    assert leaky == fixed


@pytest.mark.parametrize("fc_only", [False, True], ids=["all", "fc_only"])
def test_fc_only_updates_only_fc_layers(torch_net: ModuleType, fc_only: bool) -> None:
    # GIVEN parameters where every layer has a non-zero gradient (the seed's zero fc2 would hide conv)
    loop = make(torch_net, seed=1, options={"fc_only": fc_only})
    loop.set_parameters(random_parameters(1))
    # WHEN one epoch trains
    before = loop.get_parameters()
    loop.train_epoch(1)
    after = loop.get_parameters()
    # THEN the fc layers move, and the conv layers move only when all layers learn
    for name in PARAMETER_SHAPES:
        moved = not np.array_equal(after[name], before[name])
        assert moved == (name in FC_PARAMETERS or not fc_only), name


def test_update_is_the_same_as_torch_sgd(torch: ModuleType, torch_net: ModuleType) -> None:
    # GIVEN the variant and a copy of its network trained with torch.optim.SGD (lr 0.1, no momentum)
    loop = make(torch_net, seed=2)
    net = torch_net.SeedNet()
    net.load_state_dict(loop.net.state_dict())
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.0)
    # WHEN both take 5 full-batch steps
    for epoch in range(1, 6):
        loop.train_epoch(epoch)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(loop.train_images), loop.train_labels).backward()
        optimizer.step()
    # THEN the parameters agree to rounding (SGD's add_ with alpha rounds differently, ~1e-17)
    for name, parameter in net.named_parameters():
        np.testing.assert_allclose(parameter.detach().numpy(), loop.get_parameters()[name], rtol=0, atol=1e-14)


# --- The graph leak -----------------------------------------------------------------------------


def live_graph_nodes(torch: ModuleType) -> int:
    """Autograd nodes reachable from every live tensor: what a leaked graph keeps alive."""
    gc.collect()
    seen: set[Any] = set()
    stack = [obj.grad_fn for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor) and obj.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(parent for parent, _ in node.next_functions)
    return len(seen)


def test_graph_leak_keeps_every_epochs_graph(torch: ModuleType, torch_net: ModuleType) -> None:
    # GIVEN the leaky loop WHEN it trains 1 epoch, then 2 more
    loop = make(torch_net, seed=0, leak="graph")
    start = live_graph_nodes(torch)
    loop.train_epoch(1)
    one = live_graph_nodes(torch) - start
    loop.train_epoch(2)
    loop.train_epoch(3)
    three = live_graph_nodes(torch) - start
    # THEN each epoch's whole graph (conv, pool, fc, loss nodes) stays alive, and nothing frees it
    assert one >= 15
    assert three == 3 * one - 16  # the parameters' 8 gradient accumulators are shared between epochs


def test_fixed_loop_keeps_no_graph(torch: ModuleType, torch_net: ModuleType) -> None:
    loop = make(torch_net, seed=0)
    start = live_graph_nodes(torch)
    for epoch in (1, 2, 3):
        loop.train_epoch(epoch)
    assert live_graph_nodes(torch) == start
    assert all(type(total) is float for total in loop.loss_history)


# --- Configuration -----------------------------------------------------------------------------


def test_threads_option_sets_torch_threads(torch: ModuleType, torch_net: ModuleType) -> None:
    make(torch_net, options={"threads": 1})
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2", True])
def test_bad_threads_option_is_a_usage_error(torch_net: ModuleType, threads: Any) -> None:
    with pytest.raises(UsageError, match="threads must be a positive integer"):
        make(torch_net, options={"threads": threads})


def test_unknown_leak_is_a_usage_error_naming_the_accepted_ones(torch_net: ModuleType) -> None:
    with pytest.raises(UsageError, match=r"no leak 'tensors'; accepted: graph"):
        make(torch_net, leak="tensors")


def test_set_parameters_refuses_wrong_shapes(torch_net: ModuleType) -> None:
    loop = make(torch_net)
    params = loop.get_parameters()
    params["fc1.weight"] = params["fc1.weight"].T
    with pytest.raises(UsageError, match=r"fc1.weight must have shape \(20, 80\)"):
        loop.set_parameters(params)
