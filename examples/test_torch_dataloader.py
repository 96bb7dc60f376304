"""Guard the DataLoader example on the process tree's PSS: its workers' memory, which the loop's own RSS cannot see.

Copy-on-read grows the workers until each holds a copy of the data set, then stops: a peak budget on the
tree's PSS catches it (measured over 30 epochs in two environments: the fixed tree peaks at 399-422 MiB,
copy-on-read at 660-690 MiB; the budget sits between, more than 100 MiB from each).
Needs torch.
"""

import pytest

pytest.importorskip("torch")

from torch_dataloader import TorchLoaderLoop  # only once torch is known to be there

PEAK = "540 MiB"


def test_torch_dataloader_tree_stays_within_its_peak(leakbench_guard):
    leakbench_guard(TorchLoaderLoop, epochs=30, measure="tree-pss", max_peak=PEAK)


def test_torch_dataloader_copy_on_read_is_caught(leakbench_guard):
    leakbench_guard(TorchLoaderLoop, leak="copy-on-read", epochs=30, measure="tree-pss", expect="leak", max_peak=PEAK)
