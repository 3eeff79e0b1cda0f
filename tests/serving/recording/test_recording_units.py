"""Units of serving/recording: the timeline on the model's grid, the checks of a record request,
and the atomic write of a part."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from features.resample import resample_uniform
from serving.recording import files
from serving.recording.files import MANIFEST_FILE, ManifestEntry, RecordedPart, write_part
from serving.recording.request import RecordRefused, check_allowed, parse_record
from serving.recording.timeline import RecordingTimeline

CLASSES = ("lying", "sitting", "walking")


def push_all(
    timeline: RecordingTimeline, values: np.ndarray, cuts: list[int], t0: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    times, samples, start, k = [], [], 0, 0
    while start < len(values):
        rows = cuts[k % len(cuts)]
        stamp = None if t0 is None else t0 + start / timeline.in_rate
        first, s = timeline.push(values[start : start + rows], stamp)
        times.append(first + np.arange(len(s)) / timeline.out_rate)
        samples.append(s)
        start, k = start + rows, k + 1
    return np.concatenate(times), np.concatenate(samples)


def test_frames_of_any_size_give_the_whole_streams_resampling() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(537, 6)).astype(np.float32)
    times, samples = push_all(RecordingTimeline(100.0, 50.0, 0.5), values, [7, 50, 13, 1, 120], t0=3.0)
    [(expected_t, expected, _)] = resample_uniform(3.0 + np.arange(537) / 100.0, values, 50.0, 0.5)
    np.testing.assert_allclose(times, expected_t, atol=1e-9)
    np.testing.assert_allclose(samples, expected, atol=1e-5)


def test_a_gap_starts_a_new_grid_at_its_t0_and_jitter_does_not() -> None:
    timeline = RecordingTimeline(50.0, 50.0, 0.5)
    ones = np.ones((50, 3), np.float32)
    timeline.push(ones, 10.0)
    jittered, _ = timeline.push(ones, 11.1)  # 0.1 s late: jitter, the timeline goes on
    after_gap, samples = timeline.push(ones, 20.0)
    assert jittered == pytest.approx(11.0) and after_gap == 20.0 and len(samples) == 50
    times = timeline.times([10.0, jittered, after_gap], [50, 50, 50])
    assert times[49] == pytest.approx(10.98) and times[50] == pytest.approx(11.0) and times[-1] == pytest.approx(20.98)


def test_without_t0_times_go_on_from_the_sessions_time() -> None:
    timeline = RecordingTimeline(50.0, 50.0, 0.5, origin=4.0)
    first, samples = timeline.push(np.ones((3, 6), np.float32), None)
    np.testing.assert_allclose(timeline.times([first], [len(samples)]), [4.0, 4.02, 4.04])


def test_a_resumed_session_records_the_rows_sent_again_once() -> None:
    timeline = RecordingTimeline(50.0, 50.0, 0.5, origin=10.0, replaying=True)
    rows = np.arange(100, dtype=np.float32).reshape(50, 2)
    first, samples = timeline.push(rows, 9.5)  # 25 rows the session had already
    assert first == 10.0 and len(samples) == 25 and samples[0, 0] == rows[25, 0]
    first, samples = timeline.push(rows, 10.5)
    assert first == 10.5 and len(samples) == 50


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (None, "must be an object"),
        ({"label": "dancing", "subject": "a"}, "not one of the model's classes"),
        ({"label": 3, "subject": "a"}, "not one of the model's classes"),
        ({"label": "sitting", "subject": ""}, "subject"),
        ({"label": "sitting", "subject": ".hidden"}, "subject"),
        ({"label": "sitting", "subject": "a/b"}, "subject"),
        ({"label": "sitting", "subject": "x" * 65}, "subject"),
        ({"label": "sitting", "subject": "bob", "when": 1}, "only label and subject"),
    ],
)
def test_a_bad_record_request_names_what_is_wrong(raw: object, needle: str) -> None:
    with pytest.raises(RecordRefused) as refused:
        parse_record(raw, CLASSES)
    assert refused.value.code == "bad_record" and needle in refused.value.detail


def test_a_good_record_request() -> None:
    request = parse_record({"label": "sitting", "subject": "alice.b-2"}, CLASSES)
    assert (request.label, request.subject) == ("sitting", "alice.b-2")


def test_permission_needs_recording_on_and_the_record_scope() -> None:
    check_allowed(True, None, None)  # keys not required
    check_allowed(True, frozenset({"record"}), "lab")
    with pytest.raises(RecordRefused, match="POSTURE_RECORDING_ENABLED"):
        check_allowed(False, frozenset({"record"}), "lab")
    with pytest.raises(RecordRefused, match="--scope record") as refused:
        check_allowed(True, frozenset(), "fleet")
    assert refused.value.code == "recording_forbidden"


def part(n: int = 10) -> RecordedPart:
    entry = ManifestEntry(
        file="alice/sitting/s1-k-000.parquet",
        device="abc",
        subject="alice",
        label="sitting",
        recording="s1-k-000",
        session_id="s1",
        source="ws",
        samples=n,
        rate_hz=50.0,
        channels=["ax", "ay", "az"],
        t_start=0.0,
        t_end=(n - 1) / 50.0,
        started_at="2026-12-06T00:00:00+00:00",
        ended_at="2026-12-06T00:00:01+00:00",
        model_version="1",
    )
    return RecordedPart(np.arange(n) / 50.0, np.ones((n, 3), np.float32), entry)


def test_a_part_is_written_whole_with_its_manifest_line(tmp_path: Path) -> None:
    import pandas as pd

    path = write_part(tmp_path, part())
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["timestamp", "ax", "ay", "az", "label", "subject", "recording"] and len(frame) == 10
    assert (tmp_path / MANIFEST_FILE).read_text().count("\n") == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_failed_write_leaves_no_file_and_no_manifest_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        write_part(tmp_path, part())
    assert not list(tmp_path.rglob("*.parquet*")) and not (tmp_path / MANIFEST_FILE).exists()
