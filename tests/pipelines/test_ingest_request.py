"""IngestRequest carries the one ReadOptions, and it survives the JSON Prefect stores parameters as."""

from __future__ import annotations

import pytest

from features.errors import DataError
from pipelines.ingest import IngestRequest
from pipelines.read_options import ReadOptions


def test_read_options_round_trip_through_json() -> None:
    options = ReadOptions(column_map={"ax": "accX"}, acc_units="g", rate_hz=10.0, ts_channels=("ax", "ay"))
    request = IngestRequest(dataset_dir="data/x", read_options=options)
    again = IngestRequest.model_validate_json(request.model_dump_json())
    assert again.read_options == options


def test_read_options_from_json_are_checked_like_flags() -> None:
    with pytest.raises(DataError, match="for the accelerometer"):
        IngestRequest.model_validate({"dataset_dir": "data/x", "read_options": {"acc_units": "furlongs"}})
