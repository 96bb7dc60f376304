"""The loader variant (variants.loader): numpy's numbers through forked workers, its two leaks, clean shutdown.

The numbers are checked against the numpy variant, which trains the same
batches in the same order in one process; the memory tests read the workers'
USS (``/proc/PID/smaps_rollup``) on a small training set, so they take seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import numpy as np
import psutil
import pytest

from harness.errors import UsageError
from harness.interface import RunConfig
from harness.loops import VARIANTS
from variants.data import make_dataset
from variants.flops import epoch_flops
from variants.loader import LoaderCNN
from variants.loader.dataset import ArrayStore, ListStore, batch_bounds, draw_training_set
from variants.loader.options import DEFAULT_SAMPLES, DEFAULT_WORKERS
from variants.loader.workers import LoaderError
from variants.numpy import BuffersCNN

EPOCHS = 3
TOLERANCE = 1e-9
SEED = 5
MIB = 2**20
LEAKS = [None, "copy-on-read", "worker-cache"]


def config(leak: str | None = None, batch_size: int = 150, epochs: int = EPOCHS, **options: Any) -> RunConfig:
    return RunConfig(seed=SEED, epochs=epochs, batch_size=batch_size, leak=leak, options=options)


def train(cls: type, run: RunConfig) -> list[dict[str, float]]:
    """Every epoch's metrics of one loop, closed afterwards."""
    loop = cls(run)
    try:
        return [dict(loop.train_epoch(epoch)) for epoch in range(1, run.epochs + 1)]
    finally:
        getattr(loop, "close", lambda: None)()


def children() -> set[int]:
    """Live child processes of this test process (a child that ends while being read is not live)."""
    live = set()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() != psutil.STATUS_ZOMBIE:
                live.add(child.pid)
    return live


@pytest.fixture
def loop_factory() -> Iterator[Any]:
    """Builds LoaderCNNs and closes every one at the end, whatever the test did."""
    built: list[LoaderCNN] = []

    def build(run: RunConfig) -> LoaderCNN:
        built.append(LoaderCNN(run))
        return built[-1]

    yield build
    for loop in built:
        loop.close()


# -- the numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [150, 40], ids=["one-batch", "four-batches"])
@pytest.mark.parametrize("leak", LEAKS, ids=["fixed", "copy-on-read", "worker-cache"])
def test_loader_agrees_with_numpy_at_the_seeds_150_images(leak: str | None, batch_size: int) -> None:
    # GIVEN the seed's training set (samples=150) and the numpy variant on the same seed and batches
    want = train(BuffersCNN, config(batch_size=batch_size))
    # WHEN the loader trains 3 epochs on batches from its two default workers, with or without a leak
    got = train(LoaderCNN, config(leak, batch_size=batch_size, samples=150))
    # THEN every epoch's loss, accuracy and correct_prob equal numpy's to 1e-9
    for epoch, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        for key in ("loss", "accuracy", "correct_prob"):
            assert abs(g[key] - w[key]) <= TOLERANCE, f"epoch {epoch} {key}: {g[key]!r} != {w[key]!r}"


def test_fc_only_agrees_with_numpy() -> None:
    # GIVEN only the fully connected layers learning, at a rate that makes it differ from full training
    want = train(BuffersCNN, RunConfig(seed=0, epochs=EPOCHS, learning_rate=2.0, options={"fc_only": True}))
    got = train(
        LoaderCNN, RunConfig(seed=0, epochs=EPOCHS, learning_rate=2.0, options={"fc_only": True, "samples": 150})
    )
    # THEN the loader's numbers are numpy's
    np.testing.assert_allclose([list(m.values()) for m in got], [list(m.values()) for m in want], rtol=0, atol=1e-9)


@pytest.mark.parametrize("leak", LEAKS, ids=["fixed", "copy-on-read", "worker-cache"])
def test_the_number_of_workers_changes_no_number(leak: str | None) -> None:
    # GIVEN 400 images in 7 batches of 60 (the last 40), so the batches rotate over the workers every epoch
    runs = {workers: train(LoaderCNN, config(leak, 60, samples=400, workers=workers)) for workers in (0, 1, 2, 3)}
    # THEN in-process loading and 1, 2 or 3 workers give the same numbers, bit for bit
    for workers in (1, 2, 3):
        assert runs[workers] == runs[0], f"workers={workers}"


def test_k_150_is_the_seeds_training_set_and_more_images_extend_it() -> None:
    # GIVEN the seed's data
    seed = make_dataset(SEED)
    # WHEN K images are drawn
    images, labels = draw_training_set(SEED, 150)
    # THEN K = 150 is make_dataset's training set exactly
    assert np.array_equal(images, seed.train_images) and np.array_equal(labels, seed.train_labels)
    # AND fewer are its first images; more start with all of it and go on interleaving the classes
    small_images, _ = draw_training_set(SEED, 20)
    assert np.array_equal(small_images, seed.train_images[:20])
    big_images, big_labels = draw_training_set(SEED, 1000)
    assert big_images.shape == (1000, 1, 12, 12) and np.array_equal(big_images[:150], seed.train_images)
    assert np.array_equal(big_labels, np.arange(1000) % 3)
    assert set(np.unique(big_images)) == {0.0, 0.5}
    # AND the extra images are not a repeat of the seed's
    assert not np.array_equal(big_images[150:300], seed.train_images)


def test_both_stores_give_the_same_batches() -> None:
    images, labels = draw_training_set(SEED, 300)
    for start, stop in batch_bounds(300, 70):
        from_array, from_lists = (
            ArrayStore(images, labels).batch(start, stop),
            ListStore(images, labels).batch(start, stop),
        )
        assert np.array_equal(from_array[0], from_lists[0]) and np.array_equal(from_array[1], from_lists[1])
        assert from_lists[0].dtype == np.float64 and from_lists[0].shape == (stop - start, 1, 12, 12)


def test_flops_count_k_images(loop_factory: Any) -> None:
    # GIVEN K = 150 THEN an epoch costs what numpy's does
    assert loop_factory(config(samples=150, workers=0)).flops_per_epoch() == BuffersCNN(config()).flops_per_epoch()
    # AND with 300 images (two batches of 150) it is two batches' worth and the seed's 30 test images
    assert loop_factory(config(samples=300, workers=0)).flops_per_epoch() == epoch_flops([150, 150], 30)


def test_registered_after_numba_with_two_leaks() -> None:
    assert VARIANTS["loader"] == "variants.loader:LoaderCNN"
    names = list(VARIANTS)
    assert names.index("loader") == names.index("numba") + 1
    assert set(LoaderCNN.LEAKS) == {"copy-on-read", "worker-cache"}


# -- the defaults and the options -------------------------------------------------------------------


def test_default_dataset_is_about_100_mib_as_python_lists() -> None:
    # GIVEN 1,000 images as the copy-on-read leak holds them WHEN traced by tracemalloc
    images, labels = draw_training_set(0, 1000)
    tracemalloc.start()
    try:
        store = ListStore(images, labels)
        traced, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store.images) == 1000
    # THEN the default number of images makes one copy about 100 MiB
    default_mib = traced / 1000 * DEFAULT_SAMPLES / MIB
    assert 90 < default_mib < 110, default_mib
    assert DEFAULT_WORKERS == 2


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"workers": -1}, "workers"),
        ({"workers": 1.5}, "workers"),
        ({"workers": "two"}, "workers"),
        ({"workers": True}, "workers"),
        ({"workers": 65}, "workers"),
        ({"samples": 0}, "samples"),
        ({"samples": 2.0}, "samples"),
        ({"samples": None}, "samples"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_bad_options_are_one_line_usage_errors_before_any_fork(options: dict[str, Any], named: str) -> None:
    before = children()
    # WHEN the loop is built with a bad option
    with pytest.raises(UsageError) as caught:
        LoaderCNN(config(**options))
    # THEN one line names the option and the value, and no process was started
    message = str(caught.value)
    assert "\n" not in message and f"option {named}" in message and repr(options[named]) in message
    assert children() == before


def test_zero_workers_loads_in_the_training_process(loop_factory: Any) -> None:
    before = children()
    loop = loop_factory(config(samples=150, workers=0))
    loop.train_epoch(1)
    assert loop.worker_pids == [] and children() == before


# -- workers: persistent, shut down cleanly, never a hang --------------------------------------------


def test_workers_persist_across_epochs_and_close_leaves_no_child() -> None:
    before = children()
    # GIVEN a loop with 3 workers
    loop = LoaderCNN(config(samples=300, batch_size=50, workers=3))
    pids = loop.worker_pids
    assert len(pids) == 3 and set(pids) <= children() - before
    # WHEN it trains 3 epochs THEN the same processes serve every epoch
    for epoch in (1, 2, 3):
        loop.train_epoch(epoch)
        assert loop.worker_pids == pids
    # AND after close() no child of this process is alive; closing again is harmless
    loop.close()
    assert children() == before
    loop.close()


def test_close_after_an_epoch_cut_short_leaves_no_child() -> None:
    before = children()
    # GIVEN an epoch abandoned after its first batch, with requests still in flight
    loop = LoaderCNN(config(samples=600, batch_size=50, workers=2))
    batches = loop._epoch_batches(1)
    next(batches)
    del batches
    # THEN the next epoch still gets its own batches in order (stale ones are dropped), and close() ends all
    assert np.isfinite(loop.train_epoch(2)["loss"])
    loop.close()
    assert children() == before


def test_a_dead_worker_makes_train_epoch_raise_not_hang(loop_factory: Any) -> None:
    # GIVEN a loop whose second worker is killed
    loop = loop_factory(config(samples=300, batch_size=50, workers=2))
    victim = loop.worker_pids[1]
    os.kill(victim, signal.SIGKILL)
    # WHEN an epoch needs it THEN a LoaderError names the worker and how it ended, within a second
    started = time.monotonic()
    with pytest.raises(LoaderError, match=rf"worker 1 \(pid {victim}, killed by signal 9\) died"):
        loop.train_epoch(1)
    assert time.monotonic() - started < 1.0


def test_a_silent_worker_times_out(loop_factory: Any) -> None:
    before = children()
    # GIVEN a worker that is stopped (alive, but sends nothing) and a half-second timeout
    loop = loop_factory(config(samples=150, workers=1, timeout=0.5))
    os.kill(loop.worker_pids[0], signal.SIGSTOP)
    # THEN the epoch raises after the timeout instead of waiting for ever
    with pytest.raises(LoaderError, match=r"sent nothing for 0.5 s \(batch 0 of epoch 1\)"):
        loop.train_epoch(1)
    # AND close() still ends the stopped worker
    loop.close()
    assert children() == before


def test_a_failing_store_is_reported_with_the_workers_traceback(loop_factory: Any) -> None:
    loop = loop_factory(config(samples=150, workers=1))
    # GIVEN a request the store raises on, inside the worker
    loop._bounds = [(0, "nonsense")]
    # THEN the training process raises one line with the worker's exception; its traceback went to stderr
    with pytest.raises(LoaderError, match=r"failed on batch 0 of epoch 1: TypeError: slice indices") as caught:
        loop.train_epoch(1)
    assert "\n" not in str(caught.value)


# -- the leaks, measured on a small training set ------------------------------------------------------


def workers_uss_mib(loop: LoaderCNN) -> list[float]:
    return [psutil.Process(pid).memory_full_info().uss / MIB for pid in loop.worker_pids]


def test_copy_on_read_copies_the_dataset_into_every_worker(loop_factory: Any) -> None:
    # GIVEN 4,500 images (about 20 MiB as lists), two workers, with and without the leak
    samples = 4500
    lists_mib = samples * 4680 / MIB
    fixed = loop_factory(config(samples=samples, epochs=2, workers=2))
    leaky = loop_factory(config("copy-on-read", samples=samples, epochs=2, workers=2))
    # WHEN each trains two epochs (the rotation gives each worker every batch once)
    for loop in (fixed, leaky):
        loop.train_epoch(1)
        loop.train_epoch(2)
    # THEN each leaky worker holds most of a private copy of the lists; a fixed worker only its own few MiB
    # (a forked Python's stack and the pages its reference counts touch: 5-6 MiB here, whatever the data)
    assert all(uss > 0.7 * lists_mib for uss in workers_uss_mib(leaky)), (workers_uss_mib(leaky), lists_mib)
    assert all(uss < 0.4 * lists_mib for uss in workers_uss_mib(fixed)), (workers_uss_mib(fixed), lists_mib)


def test_worker_cache_grows_the_workers_every_epoch_not_the_training_process(loop_factory: Any) -> None:
    # GIVEN 4,500 images (5 MiB as one array) and the worker-cache leak
    loop = loop_factory(config("worker-cache", samples=4500, epochs=6, workers=2))
    array_mib = 4500 * 144 * 8 / MIB
    loop.train_epoch(1)
    workers_before = sum(workers_uss_mib(loop))
    rss_before = psutil.Process().memory_info().rss / MIB
    # WHEN it trains four more epochs
    for epoch in range(2, 6):
        loop.train_epoch(epoch)
    # THEN the workers grew by about one dataset a epoch between them, the training process by almost nothing
    grown = sum(workers_uss_mib(loop)) - workers_before
    assert 0.8 * 4 * array_mib < grown < 1.5 * 4 * array_mib, (grown, array_mib)
    assert psutil.Process().memory_info().rss / MIB - rss_before < array_mib
