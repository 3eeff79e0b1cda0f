"""The Sensor Logger aligner (features/streaming_align.py) against the file path on the whole
stream: irregular timestamps, pauses, batches cut anywhere and shuffled within. One sensor
gives ``resample_uniform``'s rows; two sensors give each track interpolated on their common
grid (``np.interp``, an implementation the aligner does not use)."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from features.resample import resample_uniform
from features.streaming_align import ImuAligner

MAX_GAP_S = 0.5


@st.composite
def recordings(draw: st.DrawFn) -> dict[str, Any]:
    n_segments = draw(st.integers(1, 3))
    return {
        "rate_hz": draw(st.sampled_from([20.0, 50.0, 100.0])),
        "sensor_rates": draw(st.lists(st.sampled_from([37.0, 50.0, 100.0, 200.0]), min_size=2, max_size=2)),
        "durations": draw(st.lists(st.floats(0.0, 3.0), min_size=n_segments, max_size=n_segments)),
        "pauses": draw(st.lists(st.floats(MAX_GAP_S + 0.05, 30.0), min_size=n_segments, max_size=n_segments)),
        "batches": draw(st.lists(st.floats(0.02, 1.5), min_size=1, max_size=10)),  # batch lengths, s
        "start": draw(st.floats(0.0, 1e4)),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def segment_starts(case: dict[str, Any]) -> np.ndarray:
    return case["start"] + np.cumsum([0.0] + [d + p for d, p in zip(case["durations"], case["pauses"])])[:-1]


def sensor_times(case: dict[str, Any], sensor_rate: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Each segment's reading times: jittered around ``sensor_rate``, the first within half a tick
    of the segment's start, the last at most ``duration`` after it."""
    segments = []
    for at, duration in zip(segment_starts(case), case["durations"]):
        steps = rng.uniform(0.2, 1.8, int(duration * sensor_rate) + 1) / sensor_rate
        t = at + rng.uniform(0, 0.5) / sensor_rate + np.cumsum(steps) - steps[0]
        segments.append(t[(t <= at + duration) | (np.arange(len(t)) == 0)])
    return segments


def batch_bounds(case: dict[str, Any]) -> list[tuple[float, float]]:
    """Batches of the given lengths, repeated; a pause always falls between two batches."""
    bounds, at = [], case["start"] - 1.0
    for start, duration in zip(segment_starts(case), case["durations"]):
        at = max(at, start - 1.0)  # the first batch of a segment begins in the pause before it
        end = start + duration + 0.05  # past the segment's last reading, before the next pause ends
        while at < end:
            for length in case["batches"]:
                bounds.append((at, min(at + length, end)))
                at = min(at + length, end)
    return bounds


def push_in_batches(
    aligner: ImuAligner,
    tracks: list[tuple[np.ndarray, np.ndarray]],
    bounds: list[tuple[float, float]],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """All the rows the aligner gives, and their grid times."""
    rows, times = [np.empty((0, 3 * len(tracks)), np.float32)], [np.empty(0)]
    for a, b in bounds:
        batches = []
        for t, v in tracks:
            inside = np.flatnonzero((t >= a) & (t < b))
            rng.shuffle(inside)  # a push may list readings out of order
            batches.append((t[inside], v[inside]))
        aligned = aligner.push(batches)
        if aligned is not None:
            rows.append(aligned[1])
            times.append(aligned[0] + np.arange(len(aligned[1])) / aligner.rate_hz)
    return np.concatenate(times), np.concatenate(rows)


@settings(max_examples=150, deadline=None)
@given(recordings())
def test_one_sensor_gives_resample_uniforms_rows_over_any_batches(case: dict[str, Any]) -> None:
    rng = np.random.default_rng(case["seed"])
    t = np.concatenate(sensor_times(case, case["sensor_rates"][0], rng))
    values = rng.normal(size=(len(t), 3))
    got_t, got_rows = push_in_batches(ImuAligner(case["rate_hz"], 1, MAX_GAP_S), [(t, values)], batch_bounds(case), rng)
    segments = resample_uniform(t, values, case["rate_hz"], MAX_GAP_S)
    np.testing.assert_allclose(got_t, np.concatenate([new_t for new_t, _, _ in segments]), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got_rows, np.concatenate([v for _, v, _ in segments]), rtol=1e-5, atol=1e-5)


@settings(max_examples=150, deadline=None)
@given(recordings())
def test_two_sensors_are_interpolated_on_their_common_grid(case: dict[str, Any]) -> None:
    rng = np.random.default_rng(case["seed"])
    per_sensor = [sensor_times(case, rate, rng) for rate in case["sensor_rates"]]
    tracks = [(np.concatenate(segments), rng.normal(size=(sum(map(len, segments)), 3))) for segments in per_sensor]
    got_t, got_rows = push_in_batches(ImuAligner(case["rate_hz"], 2, MAX_GAP_S), tracks, batch_bounds(case), rng)
    want_t, want_rows = [np.empty(0)], [np.empty((0, 6))]
    for acc_t, gyro_t in zip(*per_sensor):  # one segment: from the later first reading to the earlier last
        origin, until = max(acc_t[0], gyro_t[0]), min(acc_t[-1], gyro_t[-1])
        grid = origin + np.arange(int(np.floor((until - origin) * case["rate_hz"] + 1e-9)) + 1) / case["rate_hz"]
        columns = [np.interp(grid, t, v[:, axis]) for t, v in tracks for axis in range(3)]
        want_t.append(grid)
        want_rows.append(np.column_stack(columns) if len(grid) else np.empty((0, 6)))
    np.testing.assert_allclose(got_t, np.concatenate(want_t), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got_rows, np.concatenate(want_rows), rtol=1e-5, atol=1e-5)
