"""The seed's data generator and initial parameters: shapes, statistics, determinism."""

from __future__ import annotations

import math

import numpy as np

from variants.data import TEST_P, TRAIN_P, initial_parameters, make_dataset
from variants.network import PARAMETER_SHAPES


def band_rate(images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Share of 'on' pixels inside each image's own band rows and outside them."""
    rows = np.arange(12) // 4
    in_band = rows[None, :] == labels[:, None]  # (n, 12)
    on = images[:, 0] == 0.5  # (n, 12, 12)
    inside = on[np.broadcast_to(in_band[:, :, None], on.shape)].mean()
    outside = on[np.broadcast_to(~in_band[:, :, None], on.shape)].mean()
    return float(inside), float(outside)


def test_dataset_has_the_seeds_sizes_and_values() -> None:
    # GIVEN any seed WHEN the data is made
    data = make_dataset(7)
    # THEN 150 training and 30 test images of 1x12x12, pixels 0 or 0.5, balanced classes
    assert data.train_images.shape == (150, 1, 12, 12)
    assert data.test_images.shape == (30, 1, 12, 12)
    assert set(np.unique(data.train_images)) <= {0.0, 0.5}
    assert np.bincount(data.train_labels).tolist() == [50, 50, 50]
    assert np.bincount(data.test_labels).tolist() == [10, 10, 10]


def test_band_rows_are_on_with_probability_p() -> None:
    # GIVEN many seeds' training and test sets pooled (enough pixels for tight estimates)
    train = [make_dataset(s) for s in range(20)]
    tr_in, tr_out = band_rate(
        np.concatenate([d.train_images for d in train]), np.concatenate([d.train_labels for d in train])
    )
    te_in, te_out = band_rate(
        np.concatenate([d.test_images for d in train]), np.concatenate([d.test_labels for d in train])
    )
    # THEN own-band pixels are on with p and the others with 1 - p (binomial s.e. is below 0.003)
    assert abs(tr_in - TRAIN_P) < 0.01 and abs(tr_out - (1 - TRAIN_P)) < 0.01
    assert abs(te_in - TEST_P) < 0.01 and abs(te_out - (1 - TEST_P)) < 0.01


def test_same_seed_same_numbers_other_seed_other_numbers() -> None:
    a, b, c = make_dataset(1), make_dataset(1), make_dataset(2)
    assert np.array_equal(a.train_images, b.train_images)
    assert not np.array_equal(a.train_images, c.train_images)
    pa, pb = initial_parameters(1), initial_parameters(1)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_initial_parameters_follow_the_seeds_rules() -> None:
    params = initial_parameters(3)
    assert {k: v.shape for k, v in params.items()} == PARAMETER_SHAPES
    # conv bounds: sqrt(6 / (fan_in + fan_out)), fan_out divided by the 2x2 pool area
    a1 = math.sqrt(6 / (9 + 10 * 9 / 4))
    a2 = math.sqrt(6 / (40 + 20 * 4 / 4))
    assert 0.8 * a1 < np.abs(params["conv1.weight"]).max() <= a1
    assert 0.8 * a2 < np.abs(params["conv2.weight"]).max() <= a2
    assert 0.8 / 80 < np.abs(params["fc1.weight"]).max() <= 1 / 80
    # the last layer and every bias start at zero, so the first output is exactly 1/3 per class
    assert not params["fc2.weight"].any()
    for name in ("conv1.bias", "conv2.bias", "fc1.bias", "fc2.bias"):
        assert not params[name].any()
