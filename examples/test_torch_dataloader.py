"""Guard the DataLoader example on the process tree's PSS: its workers' memory, which the loop's own RSS cannot see.

Needs torch, and leakbench's tree measures (issue 12: ``measure="tree-pss"``).
"""

import pytest

pytest.importorskip("torch")

from torch_dataloader import TorchLoaderLoop  # only once torch is known to be there


def test_torch_dataloader_tree_stays_flat(leakbench_guard):
    leakbench_guard(TorchLoaderLoop, epochs=15, measure="tree-pss", max_growth="1 MiB")


def test_torch_dataloader_copy_on_read_is_caught(leakbench_guard):
    leakbench_guard(TorchLoaderLoop, leak="copy-on-read", epochs=15, measure="tree-pss", expect="leak")
