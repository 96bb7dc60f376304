"""The /proc layer and the parent's tree sampler, on a fake /proc: parsing, membership, pid reuse, the cap's bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.recording.tree import TreeSampler
from harness.worker import procfs

MiB = 1024 * 1024
PAGE = procfs.PAGE_SIZE
ROOT = 100  # the keeper


class FakeProc:
    """A directory laid out as /proc: PID/stat, PID/smaps_rollup and, optionally, PID/task/PID/children."""

    def __init__(self, path: Path, children_files: bool) -> None:
        self.path = path
        self.children_files = children_files
        self.processes: dict[int, dict[str, object]] = {}
        if children_files:  # the probe looks at this very process's own task directory
            (path / str(os.getpid()) / "task" / str(os.getpid())).mkdir(parents=True)
            (path / str(os.getpid()) / "task" / str(os.getpid()) / "children").write_text("")

    def add(self, pid: int, ppid: int, *, start: int = 1, rss: int = MiB, faults: int = 0, state: str = "S") -> None:
        """A process; its stat line has the fields procfs reads at their real positions."""
        self.processes[pid] = {"ppid": ppid, "start": start, "rss": rss, "faults": faults, "state": state}
        self.write(pid)

    def write(self, pid: int) -> None:
        p = self.processes[pid]
        fields = [p["state"], p["ppid"], pid, pid, 0, -1, 0, p["faults"], 0, 0, 0] + [0] * 8
        fields += [p["start"], 0, int(p["rss"]) // PAGE, 0]  # type: ignore[arg-type]
        directory = self.path / str(pid)
        directory.mkdir(exist_ok=True)
        (directory / "stat").write_text(f"{pid} (odd (name) here) " + " ".join(map(str, fields)) + "\n")
        if self.children_files:
            (directory / "task" / str(pid)).mkdir(parents=True, exist_ok=True)
            kids = [str(c) for c, q in self.processes.items() if q["ppid"] == pid]
            (directory / "task" / str(pid) / "children").write_text(" ".join(kids) + (" " if kids else ""))
            parent = self.processes.get(int(p["ppid"]))  # type: ignore[arg-type]
            if parent is not None:
                self.write(int(p["ppid"]))  # type: ignore[arg-type]

    def rollup(self, pid: int, pss: int, uss: int) -> None:
        (self.path / str(pid) / "smaps_rollup").write_text(
            f"00400000-7fff [rollup]\nRss: {self.processes[pid]['rss'] // 1024} kB\n"  # type: ignore[operator]
            f"Pss: {pss // 1024} kB\nPrivate_Clean: 0 kB\nPrivate_Dirty: {uss // 1024} kB\n"
        )

    def remove(self, pid: int) -> None:
        parent = int(self.processes.pop(pid)["ppid"])  # type: ignore[arg-type]
        for path in sorted((self.path / str(pid)).rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (self.path / str(pid)).rmdir()
        if parent in self.processes:
            self.write(parent)


@pytest.fixture(params=[False, True], ids=["proc-scan", "task-children"])
def fake(tmp_path: Path, request: pytest.FixtureRequest) -> FakeProc:
    proc = FakeProc(tmp_path, children_files=request.param)
    proc.add(1, 0)  # init
    proc.add(ROOT, 1)  # the keeper
    proc.add(101, ROOT, rss=40 * MiB)  # the trainer
    proc.add(102, 101)  # its child
    proc.add(103, ROOT)  # an orphan the keeper adopted (once the trainer's grandchild)
    proc.add(104, 102, state="Z")  # a zombie: no memory, not a member
    proc.add(200, 1)  # a stranger
    proc.add(201, 200)
    return proc


def test_stat_lines_are_read_past_a_command_name_with_spaces_and_parentheses(fake: FakeProc) -> None:
    # GIVEN a process whose name holds ") (" WHEN its stat is read THEN the fields after the name are right
    fake.add(105, 101, start=77, rss=3 * MiB, faults=12)
    stat = procfs.read_stat(105, str(fake.path))
    assert stat == procfs.ProcStat(105, 101, "S", 77, 3 * MiB, 12)
    # AND a gone process reads as None, a zombie as not alive
    assert procfs.read_stat(999, str(fake.path)) is None
    zombie = procfs.read_stat(104, str(fake.path))
    assert zombie is not None and not zombie.alive


def test_rollups_give_pss_and_uss_and_none_for_an_empty_file(fake: FakeProc) -> None:
    fake.rollup(101, pss=30 * MiB, uss=25 * MiB)
    assert procfs.read_rollup(101, str(fake.path)) == procfs.Rollup(40 * MiB, 30 * MiB, 25 * MiB)
    (fake.path / "102" / "smaps_rollup").write_text("")  # a zombie's or a kernel thread's
    assert procfs.read_rollup(102, str(fake.path)) is None


def test_the_tree_is_every_live_descendant_of_the_keeper_and_nothing_else(fake: FakeProc) -> None:
    # GIVEN the keeper's tree (trainer, its child, an adopted orphan, a zombie) among strangers
    scanner = procfs.Scanner(ROOT, str(fake.path))
    # WHEN its members are found, by either method THEN they are exactly the live descendants
    assert scanner.method == ("task-children" if fake.children_files else "proc-scan")
    assert sorted(stat.pid for stat in scanner.members()) == [101, 102, 103]
    assert sorted(stat.pid for stat in procfs.descendants(ROOT, str(fake.path))) == [101, 102, 103]
    # AND a process forked since, two levels down, is found on the next look
    fake.add(106, 102)
    fake.add(107, 106)
    assert sorted(stat.pid for stat in scanner.members()) == [101, 102, 103, 106, 107]


def test_the_scan_reads_strangers_once_and_judges_a_reused_pid_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a /proc without children files, and a count of stat reads per pid
    fake = FakeProc(tmp_path, children_files=False)
    for pid, ppid in [(1, 0), (ROOT, 1), (101, ROOT), (200, 1), (201, 200)]:
        fake.add(pid, ppid)
    reads: dict[int, int] = {}
    real = procfs.read_stat

    def counting(pid: int, proc: str = procfs.PROC) -> procfs.ProcStat | None:
        reads[pid] = reads.get(pid, 0) + 1
        return real(pid, proc)

    monkeypatch.setattr(procfs, "read_stat", counting)
    scanner = procfs.Scanner(ROOT, str(fake.path), refresh_s=3600)
    # WHEN it looks three times
    for _ in range(3):
        assert [stat.pid for stat in scanner.members()] == [101]
    # THEN strangers were read once, members every time, the keeper never
    assert (reads[200], reads[201], reads[101], reads.get(ROOT, 0)) == (1, 1, 3, 0)
    # WHEN a stranger's pid is taken by a process of the tree (it left the listing in between)
    fake.remove(201)
    scanner.members()
    fake.add(201, 101, start=9)
    # THEN the new process is judged, and found
    assert sorted(stat.pid for stat in scanner.members()) == [101, 201]
    # AND a member whose pid now names another process (another start time) is judged again
    fake.remove(201)
    fake.add(101, 200, start=5)
    assert [stat.pid for stat in scanner.members()] == []


def test_the_capped_figure_is_exact_when_read_and_an_upper_bound_between(fake: FakeProc) -> None:
    # GIVEN a sampler that has read the tree's PSS once (trainer 30 MiB, its child 2, the orphan 1)
    path = str(fake.path)
    for pid, pss in [(101, 30 * MiB), (102, 2 * MiB), (103, 1 * MiB)]:
        fake.rollup(pid, pss=pss, uss=pss // 2)
    sampler = TreeSampler(ROOT, interval_s=3600, proc=path)
    sampler.trainer = 101
    first = sampler.read(cap=None)
    assert first.exact and first.capped_bytes == 33 * MiB and first.figures.tree_pss_bytes == 33 * MiB
    assert (first.worker_rss, first.figures.children, first.figures.children_rss_bytes) == (40 * MiB, 2, 2 * MiB)
    # WHEN the child gains 5 MiB of RSS, a new child of 4 MiB appears and the orphan exits
    fake.add(102, 101, rss=6 * MiB)
    fake.add(108, 101, rss=4 * MiB)
    fake.remove(103)
    later = sampler.read(cap=None)
    # THEN between exact readings the figure is the last PSS plus what can have been added: 33 + 5 + 4
    assert not later.exact and later.capped_bytes == 42 * MiB
    assert later.figures.tree_pss_bytes is None and sampler.for_epoch().tree_pss_bytes == 33 * MiB
    # WHEN the bound passes the cap THEN the reading is exact at once and decides
    fake.rollup(102, pss=6 * MiB, uss=6 * MiB)
    fake.rollup(108, pss=1 * MiB, uss=1 * MiB)
    capped = sampler.read(cap=40 * MiB)
    assert capped.exact and capped.capped_bytes == 37 * MiB


def test_copy_on_write_faults_bring_an_exact_reading_forward_only_near_the_cap(fake: FakeProc) -> None:
    # GIVEN a tree read exactly at 33 MiB, then a child that faulted 1000 pages in without growing
    for pid, pss in [(101, 30 * MiB), (102, 2 * MiB), (103, 1 * MiB)]:
        fake.rollup(pid, pss=pss, uss=pss)
    sampler = TreeSampler(ROOT, interval_s=3600, proc=str(fake.path))
    sampler.read(cap=None)
    fake.add(102, 101, faults=1000)
    # WHEN the cap is far THEN no exact reading; WHEN faults could have reached it THEN one is taken
    assert not sampler.read(cap=1024 * MiB).exact
    time.sleep(0.05)  # the near-cap budget: four times the last reading's cost since it
    assert sampler.read(cap=33 * MiB + 1000 * PAGE - 1).exact


def test_a_signal_never_reaches_a_process_that_took_a_known_pid() -> None:
    # GIVEN a live process and a record of it with another start time (as if its pid had been reused)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        stat = procfs.read_stat(child.pid)
        assert stat is not None
        stale = procfs.ProcStat(stat.pid, stat.ppid, stat.state, stat.start + 1, stat.rss_bytes, stat.faults)
        # WHEN the stale record is signalled THEN nothing is sent; WHEN the right one is THEN it dies
        assert not procfs.signal_process(stale, signal.SIGKILL)
        time.sleep(0.1)
        assert child.poll() is None
        assert procfs.signal_process(stat, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
