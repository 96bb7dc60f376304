"""Guard train_numpy.py's memory: the script runs unchanged, as `python -m harness run --script` runs it."""

from pathlib import Path

SCRIPT = Path(__file__).with_name("train_numpy.py")


def test_train_numpy_memory_stays_flat(leakbench_guard):
    leakbench_guard(script=SCRIPT, args=["--epochs", "30"], max_growth="64 KiB")
