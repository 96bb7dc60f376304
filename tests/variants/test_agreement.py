"""Every variant trains the same network: same seed, same numbers, with and without its leak.

The numpy variant is the reference; the others are independent implementations
(pure-Python lists, generator pipelines, torch.nn), so agreement to 1e-9 checks
each of them against the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

from harness.interface import RunConfig
from harness.loops import OPTIONAL, VARIANTS
from tests.helpers import assert_metrics_close
from variants.data import make_dataset

EPOCHS = 3
TOLERANCE = 1e-9
FAST_RATE = 2.0
OTHERS = [name for name in VARIANTS if name != "numpy"]
# Options that make a variant train on the seed's data: the loader draws 22,500 images unless told 150.
SEED_DATA: dict[str, dict[str, Any]] = {"loader": {"samples": 150}}


def load_class(name: str) -> Any:
    """The variant's class, or a skip when its optional dependency is missing."""
    module_name, _, class_name = VARIANTS[name].partition(":")
    needed = OPTIONAL.get(name)
    if needed is not None:
        pytest.importorskip(needed, reason=f"{needed} not installed: pip install '.[{needed}]'")
    return getattr(importlib.import_module(module_name), class_name)


def train(name: str, leak: str | None, seed: int, learning_rate: float = 0.1, **options: Any) -> list[dict[str, float]]:
    """Metrics of the first EPOCHS epochs of one variant."""
    options = SEED_DATA.get(name, {}) | options
    config = RunConfig(seed=seed, epochs=EPOCHS, learning_rate=learning_rate, leak=leak, options=options)
    loop = load_class(name)(config)
    try:
        return [dict(loop.train_epoch(epoch)) for epoch in range(1, EPOCHS + 1)]
    finally:
        getattr(loop, "close", lambda: None)()


def leaks_of(name: str) -> list[str]:
    """The variant's leaks (one each, two for the loader)."""
    leaks = list(load_class(name).LEAKS)
    assert leaks, f"{name} has no leak"
    return leaks


@pytest.fixture(scope="module")
def reference() -> dict[tuple[int, str], list[dict[str, float]]]:
    """numpy's metrics for the seeds and modes used below, computed once."""
    runs = {(seed, "seed-rate"): train("numpy", None, seed) for seed in (0, 5)}
    # fc2 starts at zero, so the conv layers barely move in the first epochs at the seed's rate:
    # a larger rate makes fc-only training differ from full training within 3 epochs.
    runs[(0, "fast-full")] = train("numpy", None, 0, learning_rate=FAST_RATE)
    runs[(0, "fast-fc-only")] = train("numpy", None, 0, learning_rate=FAST_RATE, fc_only=True)
    return runs


@pytest.mark.parametrize("name", OTHERS)
@pytest.mark.parametrize("leaky", [False, True], ids=["fixed", "leaky"])
def test_variant_agrees_with_numpy(name: str, leaky: bool, reference: dict) -> None:
    # GIVEN the same seed WHEN a variant trains 3 epochs, without a leak or with each of its leaks
    for leak in leaks_of(name) if leaky else [None]:
        got = train(name, leak, seed=5)
        # THEN every epoch's loss, accuracy and correct_prob equal numpy's to 1e-9
        assert_metrics_close(got, reference[(5, "seed-rate")], TOLERANCE)


@pytest.mark.parametrize("name", OTHERS)
def test_fc_only_agrees_with_numpy(name: str, reference: dict) -> None:
    assert_metrics_close(
        train(name, None, seed=0, learning_rate=FAST_RATE, fc_only=True), reference[(0, "fast-fc-only")], TOLERANCE
    )


def test_fc_only_reference_differs_from_full_training(reference: dict) -> None:
    # Without this, a variant that ignored fc_only would still pass the test above.
    full, fc_only = reference[(0, "fast-full")][-1], reference[(0, "fast-fc-only")][-1]
    assert abs(full["correct_prob"] - fc_only["correct_prob"]) > 1000 * TOLERANCE


def test_numpy_leak_changes_no_number(reference: dict) -> None:
    (leak,) = leaks_of("numpy")
    assert_metrics_close(train("numpy", leak, seed=0), reference[(0, "seed-rate")], TOLERANCE)


def test_learning_happens_so_agreement_is_not_trivial(reference: dict) -> None:
    # The first update moves the zero-initialised last layer, so the metrics change between epochs.
    losses = [m["loss"] for m in reference[(0, "seed-rate")]]
    assert losses[0] == pytest.approx(np.log(3), abs=1e-12)  # all-zero last layer: uniform softmax
    assert losses[2] < losses[1] < losses[0]


@pytest.mark.parametrize("name", OTHERS)
def test_gradients_agree_with_numpy(name: str) -> None:
    # GIVEN the same non-trivial parameters (random last layer) in two variants
    data = make_dataset(2)
    images, labels = data.train_images[:6], data.train_labels[:6]
    ref = load_class("numpy")(RunConfig(seed=2))
    other = load_class(name)(RunConfig(seed=2))
    params = ref.get_parameters()
    params["fc2.weight"] = np.random.default_rng(0).normal(0, 0.5, params["fc2.weight"].shape)
    ref.set_parameters(params)
    other.set_parameters(params)
    # WHEN both compute the loss and its gradient
    ref_loss, ref_grads = ref.loss_and_gradients(images, labels)
    loss, grads = other.loss_and_gradients(images, labels)
    # THEN they agree for every parameter
    assert loss == pytest.approx(ref_loss, abs=TOLERANCE)
    assert set(grads) == set(ref_grads)
    for key in ref_grads:
        np.testing.assert_allclose(grads[key], ref_grads[key], rtol=0, atol=TOLERANCE, err_msg=key)
