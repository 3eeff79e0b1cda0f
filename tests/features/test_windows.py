"""sliding_windows, window_starts and windows_for_spec against direct slicing."""

from __future__ import annotations

import numpy as np
import pytest

from features.errors import HopError, SpecError
from features.spec import WindowSpec
from features.windows import sliding_windows, window_starts, windows_for_spec


def recording(n: int, channels: int = 6) -> np.ndarray:
    return np.arange(n * channels, dtype=float).reshape(n, channels)


@pytest.mark.parametrize(("n", "window", "hop"), [(100, 10, 5), (100, 10, 10), (101, 10, 3), (10, 10, 4), (37, 5, 1)])
def test_windows_equal_direct_slices(n: int, window: int, hop: int) -> None:
    samples = recording(n)
    windows = sliding_windows(samples, window, hop)
    starts = window_starts(n, window, hop)
    expected = [samples[s : s + window] for s in range(0, n - window + 1, hop)]
    assert windows.shape == (len(expected), window, 6)
    assert len(starts) == len(expected)
    for start, got, want in zip(starts, windows, expected):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, samples[start : start + window])


def test_tail_shorter_than_a_window_is_left_out() -> None:
    windows = sliding_windows(recording(25), 10, 10)
    assert windows.shape == (2, 10, 6)
    assert windows[-1, -1, 0] == recording(25)[19, 0]
    np.testing.assert_array_equal(window_starts(25, 10, 10), [0, 10])


def test_too_short_recording_gives_no_windows() -> None:
    windows = sliding_windows(recording(9, 3), 10, 5)
    assert windows.shape == (0, 10, 3)
    assert windows.dtype == np.float64
    assert window_starts(9, 10, 5).shape == (0,)


def test_windows_are_a_read_only_view() -> None:
    samples = recording(50)
    windows = sliding_windows(samples, 10, 5)
    assert np.shares_memory(windows, samples)
    with pytest.raises(ValueError):
        windows[0, 0, 0] = 1.0


def test_rejects_non_2d_samples() -> None:
    with pytest.raises(ValueError, match="2-D"):
        sliding_windows(np.zeros(10), 5, 1)


def test_windows_for_spec_uses_spec_sizes() -> None:
    spec = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0)
    windows = windows_for_spec(recording(250), spec)
    assert windows.shape == (4, 100, 6)
    np.testing.assert_array_equal(windows[1], recording(250)[50:150])


def test_windows_for_spec_too_short_names_the_length() -> None:
    spec = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0)
    with pytest.raises(SpecError, match="99 samples"):
        windows_for_spec(recording(99), spec)


@pytest.mark.parametrize("hop_s", [3.0, 0.001])
def test_a_bad_hop_is_named_in_spec_terms_not_flags(hop_s: float) -> None:
    with pytest.raises(HopError) as err:
        WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=hop_s)
    assert err.value.problem == f"Hop {hop_s} s must be positive and at most the window (2.0 s)."
    assert err.value.fix == "use a hop between one sample (1/rate) and the window length."
