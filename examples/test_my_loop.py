"""Guard MyLoop's memory: the test the README tells a user to write."""

from my_loop import MyLoop


def test_my_loop_memory_stays_flat(leakbench_guard):
    leakbench_guard(MyLoop, epochs=30, max_growth="64 KiB")
