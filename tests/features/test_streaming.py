"""The streaming forms of resampling and windowing (features/streaming*.py) against the file
path's functions on the whole stream: random streams at random rates, with gaps, cut into
random frames (empty ones too), with frame times that jitter, and a restore from a
JSON-round-tripped state in the middle."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.errors import DataError
from features.resample import resample_uniform
from features.spec import WindowSpec
from features.streaming import StreamingWindower
from features.streaming_resample import StreamResampler
from features.streaming_windows import WindowCutter
from features.windows import sliding_windows, window_starts

MAX_GAP_S = 0.5
SPECS = [
    WindowSpec(rate_hz=50.0, window_s=1.0, hop_s=0.5, channels=("ax", "ay", "az")),
    WindowSpec(rate_hz=20.0, window_s=0.5, hop_s=0.5, channels=("ax", "ay", "az")),  # no overlap
    WindowSpec(rate_hz=25.0, window_s=1.2, hop_s=0.32, channels=("ax", "ay", "az")),  # hop not dividing the window
]


def as_plain_data(state: dict[str, Any]) -> dict[str, Any]:
    """A state as a saved session carries it: through JSON, arrays as nested lists."""
    return json.loads(json.dumps(state, default=lambda a: a.tolist()))


def file_path(t: np.ndarray, values: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """What `posture predict` cuts from the whole stream: resample, then windows per segment."""
    windows, starts = [np.empty((0, spec.window_samples, values.shape[1]))], [np.empty(0)]
    for new_t, new_values, _ in resample_uniform(t, values, spec.rate_hz, MAX_GAP_S):
        samples = new_values.astype(np.float32)
        windows.append(sliding_windows(samples, spec.window_samples, spec.hop_samples))
        starts.append(new_t[window_starts(len(samples), spec.window_samples, spec.hop_samples)])
    return np.concatenate(windows), np.concatenate(starts)


FRAME_SIZES = st.lists(st.integers(0, 40), min_size=1, max_size=60).filter(any)  # empty frames too


@st.composite
def streams(draw: st.DrawFn) -> dict[str, Any]:
    """Segments of rows at one steady rate, separated by gaps, each cut into frames."""
    spec = draw(st.sampled_from(SPECS))
    rate_hz = draw(st.sampled_from([spec.rate_hz, 2 * spec.rate_hz, 33.3, 120.0, 0.6 * spec.rate_hz]))
    n_segments = draw(st.integers(1, 3))
    lengths = draw(st.lists(st.integers(1, 160), min_size=n_segments, max_size=n_segments))
    # A gap counts from one sample period past the last row (where the stream expects the next).
    gaps = draw(st.lists(st.floats(0.05, 30.0), min_size=n_segments, max_size=n_segments))
    frames = [draw(FRAME_SIZES) for _ in lengths]
    return {
        "spec": spec,
        "rate_hz": rate_hz,
        "lengths": lengths,
        "origins": np.cumsum(
            [draw(st.floats(0.0, 1000.0))] + [n / rate_hz + MAX_GAP_S + g for n, g in zip(lengths, gaps)]
        ),
        "frames": frames,
        "jitter": draw(st.floats(-0.9 * MAX_GAP_S, 0.9 * MAX_GAP_S)),
        "timed": draw(st.booleans()),  # later frames carry (jittered) times, or none
        "restore_at": draw(st.integers(0, 200)),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def cut(length: int, sizes: list[int]) -> list[slice]:
    """Frames of the given sizes, repeated until the segment is covered."""
    bounds, at = [], 0
    while at < length:
        for size in sizes:
            bounds.append(slice(at, min(at + size, length)))
            at += size
    return bounds


@settings(max_examples=150, deadline=None)
@given(streams())
def test_streaming_windows_equal_the_file_paths_over_any_cut(case: dict[str, Any]) -> None:
    spec, rate_hz = case["spec"], case["rate_hz"]
    values = np.random.default_rng(case["seed"]).normal(size=(sum(case["lengths"]), 3)).astype(np.float32)
    t = np.concatenate([origin + np.arange(n) / rate_hz for origin, n in zip(case["origins"], case["lengths"])])
    windower = StreamingWindower(spec, rate_hz, MAX_GAP_S)
    got_windows, got_starts, pushed, first_row = [], [], 0, 0
    for origin, length, sizes in zip(case["origins"], case["lengths"], case["frames"]):
        for frame in cut(length, sizes):
            if pushed == case["restore_at"]:  # a session saved here resumes on another instance
                state = as_plain_data(windower.state())
                windower = StreamingWindower(spec, rate_hz, MAX_GAP_S)
                windower.restore(state)
            exact = origin + frame.start / rate_hz  # a segment's first frame has its exact time
            t0 = exact if frame.start == 0 else (exact + case["jitter"] if case["timed"] else None)
            windows, starts = windower.push(values[first_row + frame.start : first_row + frame.stop], t0)
            got_windows.append(windows)
            got_starts.append(starts)
            pushed += 1
        first_row += length
    want_windows, want_starts = file_path(t, values.astype(np.float64), spec)
    np.testing.assert_allclose(np.concatenate(got_windows), want_windows, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.concatenate(got_starts), want_starts, rtol=0, atol=1e-9)


def test_a_resampled_stream_with_a_gap_and_a_restore() -> None:
    """One case of the property by hand, so that its machinery is seen to cut windows in two
    segments, across a restore, with resampling."""
    spec = SPECS[0]
    rate_hz, origins = 120.0, [10.0, 10.0 + 240 / 120.0 + 3.0]
    values = np.random.default_rng(0).normal(size=(390, 3)).astype(np.float32)
    t = np.concatenate([origins[0] + np.arange(240) / rate_hz, origins[1] + np.arange(150) / rate_hz])
    windower = StreamingWindower(spec, rate_hz, MAX_GAP_S)
    pushed = [windower.push(values[:70], origins[0])]
    resumed = StreamingWindower(spec, rate_hz, MAX_GAP_S)
    resumed.restore(as_plain_data(windower.state()))
    pushed += [resumed.push(values[70:240], None), resumed.push(values[240:], origins[1])]
    want_windows, want_starts = file_path(t, values.astype(np.float64), spec)
    np.testing.assert_allclose(want_starts, [10.0, 10.5, 11.0, origins[1]])  # 100 samples, then 63
    np.testing.assert_allclose(np.concatenate([s for _, s in pushed]), want_starts, atol=1e-9)
    np.testing.assert_allclose(np.concatenate([w for w, _ in pushed]), want_windows, atol=1e-5)


def test_a_frame_back_in_time_is_refused() -> None:
    windower = StreamingWindower(SPECS[0], 50.0, MAX_GAP_S)
    windower.push(np.zeros((60, 3), np.float32), 100.0)
    assert windower.next_t == pytest.approx(101.2)
    with pytest.raises(DataError, match="goes back in time"):
        windower.push(np.zeros((1, 3), np.float32), 100.0)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(0, 400),
    hop=st.integers(1, 50),
    overlap=st.integers(0, 50),  # a spec's hop is never longer than its window (HopError)
    sizes=st.lists(st.integers(0, 60), min_size=1, max_size=20).filter(any),
    restore_at=st.integers(0, 30),
)
def test_the_window_cutter_equals_sliding_windows(
    n: int, hop: int, overlap: int, sizes: list[int], restore_at: int
) -> None:
    window = hop + overlap
    samples = np.random.default_rng(n).normal(size=(n, 2)).astype(np.float32)
    cutter, windows, starts = WindowCutter(window, hop, 2), [], []
    for k, frame in enumerate(cut(n, sizes)):
        if k == restore_at:
            state = as_plain_data(cutter.state())
            cutter = WindowCutter(window, hop, 2)
            cutter.restore(state)
        got, at = cutter.extend(samples[frame])
        windows.extend(got)
        starts.extend(at.tolist())
    np.testing.assert_array_equal(np.array(windows).reshape(-1, window, 2), sliding_windows(samples, window, hop))
    assert starts == window_starts(n, window, hop).tolist()


def test_resampler_matches_resampling_the_whole_stream() -> None:
    values = np.random.default_rng(2).normal(size=(997, 3))
    expected = resample_uniform(np.arange(997) / 120.0, values, 50.0, max_gap_s=1.0)[0][1]
    resampler = StreamResampler(120.0, 50.0)
    chunks = [resampler.push(values[i : i + 37]) for i in range(0, 997, 37)]
    np.testing.assert_allclose(np.concatenate(chunks), expected, atol=1e-5)
