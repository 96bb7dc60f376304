"""The record pipe's messages: epoch frames and JSON lines, written by EpochSender and read back by MessageReader."""

from __future__ import annotations

import fcntl
import gc
import itertools
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness import records, storage
from harness.worker import epochs, protocol
from harness.worker.epochs import BadMetrics, EpochSender
from harness.worker.gc_readings import GcReadings
from harness.worker.protocol import Channel, MessageReader


class _Pipe:
    """A Channel on a real pipe, and everything written to it so far."""

    def __init__(self) -> None:
        self.read_fd, write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.channel = Channel(write_fd)

    def take(self) -> bytes:
        data = b""
        while True:
            try:
                chunk = os.read(self.read_fd, 1 << 16)
            except BlockingIOError:
                return data
            data += chunk

    def close(self) -> None:
        os.close(self.read_fd)
        self.channel.close()


@pytest.fixture
def pipe() -> Iterator[_Pipe]:
    opened = _Pipe()
    yield opened
    opened.close()


def _sent(pipe: _Pipe, epochs: list[Any]) -> list[bytes]:
    """Each epoch's metrics sent through an EpochSender: the bytes each send wrote."""
    sender = EpochSender(pipe.channel, None, t0=100.0)
    written = []
    for index, metrics in enumerate(epochs):
        sender.send(metrics, 100.0 + index, 100.5 + index)
        written.append(pipe.take())
    return written


def _as_lines(reader: MessageReader, messages: Iterable[tuple[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Each message as its JSON line carries it: a frame as the fields its line would have had."""
    return [(protocol.EPOCH, reader.fields(m)) if kind == protocol.FRAME else (kind, m) for kind, m in messages]


def _read(data: bytes, piece: int) -> list[tuple[str, dict[str, Any]]]:
    reader = MessageReader()
    pieces = (data[start : start + piece] for start in range(0, len(data), piece))
    return [message for chunk in pieces for message in _as_lines(reader, reader.feed(chunk))]


@pytest.mark.parametrize("piece", [1, 7, 1 << 16])
def test_later_epochs_go_as_frames_and_read_back_as_the_records_their_json_lines_would_be(pipe: _Pipe, piece: int):
    epochs = [{"loss": 2.5 - i, "accuracy": np.float64(0.1 * i), "nan": float("nan")} for i in range(5)]
    written = _sent(pipe, epochs)
    assert written[0].startswith(b"{") and written[0].endswith(b"\n")
    assert all(data[0] == protocol.FRAME_MARK for data in written[1:])
    assert all(len(data) < len(written[0]) / 2 for data in written[1:])
    reader = MessageReader()
    assert [kind for kind, _ in reader.feed(b"".join(written))] == [protocol.EPOCH] + [protocol.FRAME] * 4
    messages = _read(b"".join(written), piece)
    assert [kind for kind, _ in messages] == [protocol.EPOCH] * 5
    for index, (_, fields) in enumerate(messages):
        record = records.EpochRecord.from_dict(fields)
        assert record.epoch == index + 1
        assert (record.epoch_s, record.elapsed_s) == (0.5, 0.5 + index)
        assert record.rss_bytes > 0 and record.peak_rss_bytes >= record.rss_bytes and record.py_blocks > 0
        assert list(record.metrics) == ["loss", "accuracy", "nan"]  # the first epoch's order
        assert record.metrics["loss"] == 2.5 - index and record.metrics["accuracy"] == 0.1 * index
        assert np.isnan(record.metrics["nan"])
        assert record.heap_bytes is None and record.tracer_bytes is None


def test_epochs_whose_metrics_differ_from_the_first_go_as_checked_json_lines(pipe: _Pipe):
    class Metrics(Mapping[str, float]):  # a mapping that is not a dict
        def __getitem__(self, key: str) -> float:
            return {"loss": 1.0}[key]

        def __iter__(self) -> Iterator[str]:
            return iter(["loss"])

        def __len__(self) -> int:
            return 1

    epochs = [{"loss": 1.0}, {"loss": 0.9}, {"loss": 0.8, "extra": 1.0}, {}, Metrics(), {"loss": "0.5"}, {"loss": 0.4}]
    written = _sent(pipe, epochs)
    assert [data[0] == protocol.FRAME_MARK for data in written] == [False, True, False, False, False, True, True]
    metrics = [fields["metrics"] for _, fields in _read(b"".join(written), 5)]
    assert metrics == [
        {"loss": 1.0},
        {"loss": 0.9},
        {"loss": 0.8, "extra": 1.0},
        {},
        {"loss": 1.0},
        {"loss": 0.5},
        {"loss": 0.4},
    ]


@pytest.mark.parametrize("bad", [{"loss": True}, {"loss": "high"}, {"loss": None}, ["loss"]])
def test_bad_metrics_after_the_first_epoch_are_refused_with_the_checked_message_and_nothing_is_sent(pipe: _Pipe, bad):
    sender = EpochSender(pipe.channel, None, t0=0.0)
    sender.send({"loss": 1.0}, 0.0, 1.0)
    pipe.take()
    with pytest.raises(BadMetrics):
        sender.send(bad, 1.0, 2.0)
    assert pipe.take() == b"" and sender.epoch == 1


def test_a_loop_that_returns_no_metrics_sends_frames_of_none(pipe: _Pipe):
    written = _sent(pipe, [None, None, None])
    assert written[1][0] == protocol.FRAME_MARK
    assert [fields["metrics"] for _, fields in _read(b"".join(written), 3)] == [{}, {}, {}]


def test_the_reader_refuses_what_is_not_a_message_of_ours_and_goes_on_after_it(pipe: _Pipe):
    written = _sent(pipe, [{"loss": 1.0}, {"loss": 0.5}])
    reader = MessageReader()
    with pytest.raises(protocol.BadMessage) as frame_first:
        list(reader.feed(written[1]))  # a frame before any epoch named the metrics
    assert "first epoch record named none" in str(frame_first.value)
    reader = MessageReader()
    with pytest.raises(protocol.BadMessage) as garbage:
        list(reader.feed(written[0] + b"not json\n" + written[1]))
    assert garbage.value.raw == b"not json"
    assert [frame.epoch for _, frame in reader.feed(b"")] == [2]


def test_a_forked_child_writes_nothing_to_the_channel(pipe: _Pipe):
    pid = os.fork()
    if pid == 0:
        pipe.channel.send(protocol.EPOCH, epoch=99)
        pipe.channel.write(b"x")
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    pipe.channel.send(protocol.DONE, stopped=False)
    assert pipe.take() == b'{"type": "done", "stopped": false}\n'


def test_a_closed_channel_leaves_a_file_that_takes_its_number_alone_in_a_forked_child():
    read_fd, write_fd = os.pipe()
    Channel(write_fd).close()
    os.close(read_fd)
    again_read, again_write = os.pipe()  # the lowest free numbers: the write end takes the closed channel's
    assert again_write == write_fd
    pid = os.fork()
    if pid == 0:
        os.write(again_write, b"from the child")
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    os.close(again_write)  # so the read below ends at the end of the file, however little was written
    assert os.read(again_read, 100) == b"from the child"
    os.close(again_read)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_auto_gc_readings_collect_only_after_the_collector_reclaimed_something():
    readings = GcReadings("auto")
    try:
        readings.before_reading(1, 0.1)
        assert (readings.collections, readings.frozen is not None) == (1, True)
        readings.before_reading(2, 0.1)
        assert readings.collections == 1  # nothing was reclaimed since
        _Cycle()
        gc.collect(0)  # the collector finds the cycle on its own
        readings.before_reading(3, 0.1)
        assert readings.collections == 2
        readings.before_reading(4, 0.1)
        assert readings.collections == 2  # the readings' own collection does not count as garbage found
    finally:
        readings.close()
        gc.unfreeze()
    assert readings._reclaimed not in gc.callbacks


def test_a_fast_loop_counts_python_blocks_at_most_every_10_ms_and_a_slow_one_every_epoch(pipe: _Pipe):
    sender = EpochSender(pipe.channel, None, t0=0.0)
    for epoch in range(60):  # 1 ms epochs, then 20 ms ones
        ended = 0.001 * (epoch + 1) if epoch < 30 else 0.03 + 0.02 * (epoch - 29)
        sender.send({"loss": 1.0}, ended - 0.001, ended)
    messages = [fields for _, fields in _read(pipe.take(), 1 << 16)]
    counted = [fields["elapsed_s"] for fields in messages if fields["py_blocks"] is not None]
    assert messages[0]["py_blocks"] is not None
    assert 3 <= sum(t <= 0.03 for t in counted) <= 4  # epochs 1, ~11, ~21 (and ~31) of the fast ones
    assert all(later - earlier >= epochs.BLOCKS_EVERY_S for earlier, later in itertools.pairwise(counted))
    assert all(fields["py_blocks"] is not None for fields in messages[31:])


def test_the_parent_writes_a_frame_as_the_row_of_the_record_its_line_would_have_been(tmp_path: Path):
    # GIVEN the same epochs as records (epoch 1, and the checked path) and as a frame's numbers (later epochs)
    tree = records.TreeFigures(2, 30, None, 60)
    for name in ("records", "frames"):
        (tmp_path / name).mkdir()
    as_records, as_frames = storage.RunWriter(tmp_path / "records"), storage.RunWriter(tmp_path / "frames")
    first = records.EpochRecord(1, 20, 21, None, 10, 0.25, 0.25, {"loss": 0.5, "acc": 0.1}, tree)
    second = records.EpochRecord(2, 22, 23, None, None, 0.5, 0.75, {"loss": float("nan"), "acc": 0.2}, tree)
    for writer in (as_records, as_frames):
        writer.epoch(first)
    as_records.epoch(second)
    as_frames.epoch_values(2, 22, 23, None, 0.5, 0.75, tree, (float("nan"), 0.2))
    # WHEN written THEN both epochs.csv files are the same, byte for byte
    for writer in (as_records, as_frames):
        writer.close()
    assert (tmp_path / "frames" / "epochs.csv").read_bytes() == (tmp_path / "records" / "epochs.csv").read_bytes()
    # AND numbers out of range are refused, as a record would refuse them
    bad = [(0, 1, 1, None, 0.1, 0.1), (2, -1, 1, None, 0.1, 0.1), (2, 1, 1, -2, 0.1, 0.1), (2, 1, 1, 1, -0.1, 0.1)]
    bad += [(2, 1, 1, 1, 0.1, float("inf")), (2, 1, 1, 1, float("nan"), 0.1)]
    for values in bad:
        with pytest.raises(ValueError, match="bad epoch frame"):
            as_frames.epoch_values(*values, tree, (0.0, 0.0))


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="the pipe size can be set on Linux only")
def test_the_record_pipe_holds_seconds_of_a_fast_loops_frames():
    read_fd, write_fd = protocol.record_pipe()
    try:
        # THEN it holds 50 ms of 0.1 ms epochs with 100 metrics (500 frames of 845 bytes), where the system allows
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        assert fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ) == min(protocol.PIPE_BYTES, limit) >= 500 * 845
    finally:
        os.close(read_fd)
        os.close(write_fd)
