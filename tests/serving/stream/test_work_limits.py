"""Bounded work per input and strict frame decoding, unit by unit: the rate floor and grid cap
(serving/stream/work_limits.py), the windower's and the Sensor Logger aligner's refusals, the stream
parser on values that used to end a session with 1011, and the log filter for 1007 closes.
The same inputs against the real server are in tests/serving/test_serve_bad_input.py."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest

from features.spec import WindowSpec
from features.streaming_resample import StreamResampler
from features.windows import sliding_windows
from serving.logs import UVICORN_INVALID_UTF8, ClientFaultFilter, JsonLinesFormatter
from serving.stream.buffer import StreamWindower
from features.streaming_align import ImuAligner, TooManyRows
from serving.stream.protocol import FrameError, Samples, parse_text
from serving.stream.work_limits import WorkLimits

CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")
SPEC = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0, channels=CHANNELS)
LIMITS = WorkLimits(max_upsampling=10.0, max_samples_per_frame=1000)
HUGE_INT = "1" + "0" * 400  # an integer literal beyond float range


def test_the_rate_floor_and_the_grid_cap() -> None:
    assert LIMITS.min_rate_hz(50.0) == 5.0 and LIMITS.max_grid_samples == 10_000
    assert LIMITS.rate_problem(5.0, 50.0) is None and LIMITS.rate_problem(2000.0, 50.0) is None
    problem = LIMITS.rate_problem(0.01, 50.0)
    assert problem is not None and "below 5 Hz" in problem and "POSTURE_MAX_UPSAMPLING" in problem
    assert LIMITS.grid_problem(10_000, "a frame") is None
    assert "limit is 10000" in str(LIMITS.grid_problem(10_001, "a frame"))
    # Tokens by samples on the grid: a full frame at the model's rate costs one, as before.
    assert [LIMITS.tokens(n) for n in (1, 1000, 1001, 10_000)] == [1, 1, 2, 10]


@pytest.mark.parametrize(("in_rate", "sizes"), [(5.0, [1, 7, 1000, 3]), (120.0, [37] * 20), (33.3, [1] * 50 + [999])])
def test_the_resampler_counts_what_it_makes(in_rate: float, sizes: list[int]) -> None:
    resampler = StreamResampler(in_rate, 50.0)
    rng = np.random.default_rng(4)
    for size in sizes:
        predicted = resampler.count(size)
        assert len(resampler.push(rng.normal(size=(size, 6)).astype(np.float32))) == predicted


def test_the_windower_refuses_a_frame_over_the_cap_and_loses_nothing_else() -> None:
    """A 2 Hz stream (a session from before the floor, or a reload to a faster model): 25x."""
    rng = np.random.default_rng(5)
    first, second = rng.normal(size=(400, 6)).astype(np.float32), rng.normal(size=(401, 6)).astype(np.float32)
    capped = StreamWindower(SPEC, CHANNELS, 2.0, max_gap_s=1.0, max_samples=LIMITS.max_grid_samples)
    free = StreamWindower(SPEC, CHANNELS, 2.0, max_gap_s=1.0)
    for windower in (capped, free):
        windower.push(first, t0=0.0)  # 400 rows make 9,976 samples: under the cap
    with pytest.raises(FrameError) as refused:
        capped.push(second, t0=200.0)  # 401 more make 10,025
    assert refused.value.code == "too_many_samples" and "10025 samples" in refused.value.detail
    for start in range(0, 401, 100):  # the refused rows again, in frames under the cap: the same windows
        rows, t0 = second[start : start + 100], 200.0 + start / 2.0
        (got, got_starts), (want, want_starts) = capped.push(rows, t0), free.push(rows, t0)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got_starts, want_starts)


def test_the_windower_at_the_models_rate_is_unchanged_by_the_cap() -> None:
    values = np.random.default_rng(6).normal(size=(1000, 6)).astype(np.float32)
    windower = StreamWindower(SPEC, CHANNELS, 50.0, max_gap_s=0.5, max_samples=LIMITS.max_grid_samples)
    windows, _ = windower.push(values, None)
    np.testing.assert_array_equal(windows, sliding_windows(values, 100, 50))


def _readings(times_s: list[float]) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(times_s), np.tile([0.1, 9.7, 0.3], (len(times_s), 1))


def test_the_aligner_refuses_sparse_timestamps_then_aligns_the_next_batch() -> None:
    aligner = ImuAligner(50.0, 2, max_gap_s=0.5, max_rows=LIMITS.max_grid_samples)
    with pytest.raises(TooManyRows) as refused:
        aligner.push([_readings([0.0, 10_000.0]), _readings([0.0, 10_000.0])])
    assert refused.value.rows == 500_001
    steady = [k / 100 for k in range(300)]  # 3 s at 100 Hz
    aligned = aligner.push([_readings([10_010.0 + t for t in steady]), _readings([10_010.0 + t for t in steady])])
    assert aligned is not None
    t0, rows = aligned
    assert t0 == 10_010.0 and rows.shape == (150, 6)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (f'{{"samples": [[1, 2, 3, 4, 5, {HUGE_INT}]]}}', "non_finite"),
        (f'{{"samples": [[1, 2, 3, 4, 5, 6]], "t0": {HUGE_INT}}}', "bad_frame"),
        ('{"samples": [[1, 2, 3, 4, 5, 6]], "t0": -1e308}', "bad_frame"),  # overflowed a resumed session's replay
        ('{"samples": [[1, 2, 3, 4, 5, 6]], "t0": 1.7e18}', "bad_frame"),  # nanoseconds, not seconds
        ("[" * 5000 + "]" * 5000, "bad_json"),
        ('{"samples": [[NaN, 2, 3, 4, 5, 6]], "deep": ' + "[" * 3000 + "]" * 3000 + "}", "bad_json"),
        ('{"samples": ' + "[" * 1000 + "]" * 1000 + "}", "bad_frame"),  # orjson reads it; no row of numbers
        ('{"samples": [["0.1", "9.7", "0.3", "0", "0", "0"]]}', "bad_frame"),
        ('{"samples": [[true, false, true, 0, 0, 0]]}', "bad_frame"),
        ('{"samples": [0.1, 9.7, 0.3, 0, 0, 0]}', "bad_frame"),
        ('{"samples": ["abcdef"]}', "bad_frame"),
        ('{"type": "hello", "rate_hz": ' + "[" * 1000 + "]" * 1000 + "}", "bad_hello"),  # echoed: RecursionError
        ('{"samples": [[1, 2, 3, 4, 5, 6]], "t0": ' + "[" * 1000 + "]" * 1000 + "}", "bad_frame"),
        ('{"type": ' + "[" * 1000 + "]" * 1000 + "}", "unknown_type"),
    ],
)
def test_frames_that_used_to_close_the_session_get_a_code(frame: str, code: str) -> None:
    with pytest.raises(FrameError) as raised:
        parse_text(frame, 6, 1000)
    assert raised.value.code == code and 0 < len(raised.value.detail) < 200  # no client value echoed at length


def test_numbers_still_parse_whatever_their_json_form() -> None:
    samples = parse_text('{"samples": [[0, 9, 1e-3, -2, 18446744073709551615, 1.5]], "t0": 1e14}', 6, 10)
    assert isinstance(samples, Samples)
    assert samples.values.dtype == np.float32 and samples.values[0, 4] == np.float32(2.0**64) and samples.t0 == 1e14
    samples = parse_text(json.dumps({"samples": [[0.0] * 6] * 10, "t0": 12}), 6, 10)
    assert isinstance(samples, Samples)
    assert samples.values.shape == (10, 6) and samples.t0 == 12.0


def test_uvicorn_invalid_utf8_error_becomes_one_warning_line() -> None:
    try:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    except UnicodeDecodeError:
        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, UVICORN_INVALID_UTF8, None, sys.exc_info()
        )
    other = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", None, None)
    assert ClientFaultFilter().filter(record) and ClientFaultFilter().filter(other)
    line = json.loads(JsonLinesFormatter().format(record))
    assert line == {**line, "level": "warning", "event": "frame_not_utf8", "close_code": 1007}
    assert "exception" not in line and other.levelno == logging.ERROR
