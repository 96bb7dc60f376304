"""Guard train_torch.py's memory through `run --script`, and catch its leak (needs torch)."""

from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).with_name("train_torch.py")


def test_train_torch_memory_stays_flat(leakbench_guard):
    leakbench_guard(script=SCRIPT, args=["--epochs", "40"], max_growth="64 KiB")


def test_train_torch_graph_leak_is_caught(leakbench_guard):
    leakbench_guard(script=SCRIPT, args=["--epochs", "40", "--leak"], expect="leak")
