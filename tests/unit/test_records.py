"""The records a run stores: epoch records on the wire, samples, stops and metadata checking their fields."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest

from harness import records
from tests.helpers import run_meta


def epoch_record(epoch: int, rss: int, heap: int | None = None) -> records.EpochRecord:
    return records.EpochRecord(
        epoch, rss, rss, heap, 1000 + epoch, 0.01, 0.01 * epoch, {"loss": 1.0 / epoch, "accuracy": 0.5}
    )


def test_epoch_records_round_trip_through_the_wire_format() -> None:
    # GIVEN a record WHEN sent as a dict and rebuilt THEN it is equal, metrics as plain floats
    record = records.EpochRecord(2, 10, 12, None, 5, 0.5, 1.0, {"loss": np.float64(0.25)})
    again = records.EpochRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again == record and type(again.metrics["loss"]) is float
    assert again.row(("loss", "missing")) == [2, 10, 12, None, 5, 0.5, 1.0, None, None, None, None, None, 0.25, None]


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"epoch": 0}, "epoch must be an integer >= 1"),
        ({"rss_bytes": -1}, "rss_bytes must be an integer >= 0"),
        ({"rss_bytes": 1.5}, "rss_bytes must be an integer"),
        ({"heap_bytes": True}, "heap_bytes must be an integer"),
        ({"epoch_s": float("nan")}, "epoch_s must be a non-negative number"),
        ({"metrics": {"loss": "low"}}, "metric 'loss' must be a number, got 'low'"),
        ({"metrics": {"loss": True}}, "metric 'loss' must be a number"),
        ({"metrics": {"rss_bytes": 1.0}}, "clashes with a column"),
        ({"metrics": [1.0]}, "must return a mapping"),
    ],
)
def test_epoch_records_refuse_bad_fields(changes: dict[str, Any], fragment: str) -> None:
    # GIVEN a record with one bad field WHEN built THEN it refuses, naming the field
    fields = epoch_record(1, 100).to_dict() | changes
    with pytest.raises((TypeError, ValueError), match=re.escape(fragment)):
        records.EpochRecord(**fields)


def test_epoch_record_from_dict_refuses_unknown_or_missing_keys() -> None:
    # GIVEN a wire dict with a misspelt key WHEN rebuilt THEN both the missing and the unknown key are named
    data = epoch_record(1, 100).to_dict()
    data["rss"] = data.pop("rss_bytes")
    with pytest.raises(ValueError, match=r"missing \['rss_bytes'\], unknown \['rss'\]"):
        records.EpochRecord.from_dict(data)


def test_metrics_accept_none_and_numpy_scalars() -> None:
    # GIVEN a loop that returns None or NumPy numbers WHEN checked THEN they become plain floats
    assert records.check_metrics(None) == {}
    assert records.check_metrics({"loss": np.float32(0.5), "n": 3}) == {"loss": 0.5, "n": 3.0}


def test_samples_stop_info_and_meta_check_their_fields() -> None:
    # GIVEN bad samples, stops and metadata WHEN built THEN each refuses
    with pytest.raises(ValueError, match="t_s must be a finite number"):
        records.Sample(float("inf"), 1, 0)
    with pytest.raises(ValueError, match="stop reason must be one of"):
        records.StopInfo("completed", 1, 1, 0)
    with pytest.raises(ValueError, match="ended_at must be null exactly while the run is running"):
        records.RunMeta.from_dict(run_meta() | {"status": "running"})
    with pytest.raises(ValueError, match=r"meta\.json lacks run_id"):
        records.RunMeta.from_dict({k: v for k, v in run_meta().items() if k != "run_id"})
    assert records.StopInfo("failed", 2, None, 1, ["a", "b"]).to_dict()["stderr_tail"] == ["a", "b"]


def test_every_final_status_has_a_distinct_exit_code() -> None:
    # GIVEN the statuses a run can end with THEN each maps to its own exit code, none the usage error's
    finals = [status for status in records.STATUSES if status != records.RUNNING]
    codes = [records.EXIT_CODES[status] for status in finals]
    assert len(set(codes)) == len(codes) and records.USAGE_EXIT_CODE not in codes
    assert records.EXIT_CODES[records.COMPLETED] == 0
