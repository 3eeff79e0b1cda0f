"""The compiled fast path of a JSON samples frame reads exactly what the general path reads.

The general path is orjson + numpy (``protocol._loads`` and ``_sample_rows``); every frame the
fast path takes must give the same float32 bits and ``t0``, and every frame it leaves must go to
the general path (which names the problem).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.stream.json_samples import parse_samples_json
from serving.stream.protocol import FrameError, FrameTooBig, Samples, _loads, _sample_rows, parse_text

CHANNELS, MAX_ROWS = 6, 50


def general(payload: bytes) -> tuple[np.ndarray, object]:
    message = _loads(payload.decode())
    return _sample_rows(message["samples"], CHANNELS, MAX_ROWS), message.get("t0")


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and np.array_equal(a.view(np.uint32), b.view(np.uint32))


finite = st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-3e38, max_value=3e38)
sensor = st.floats(allow_nan=False, allow_infinity=False, width=32, min_value=-200, max_value=200)
decimals = st.builds(round, st.floats(min_value=-80, max_value=80, allow_nan=False), st.integers(0, 7))
numbers = st.one_of(finite, sensor, decimals, st.integers(-(10**6), 10**6))
frames = st.lists(st.lists(numbers, min_size=CHANNELS, max_size=CHANNELS), min_size=1, max_size=MAX_ROWS)


@settings(max_examples=400, deadline=None)
@given(rows=frames, t0=st.one_of(st.none(), st.floats(0, 1e9)), spaced=st.booleans(), t0_first=st.booleans())
def test_every_frame_taken_reads_as_the_general_path_reads_it(
    rows: list[list[float]], t0: float | None, spaced: bool, t0_first: bool
) -> None:
    text = json.dumps(rows, separators=(", ", ": ") if spaced else (",", ":"))
    fields = [f'"samples":{text}', f'"t0":{json.dumps(t0)}']
    payload = ("{" + ",".join(reversed(fields) if t0_first else fields) + "}").encode()
    fast = parse_samples_json(payload, CHANNELS, MAX_ROWS)
    values, sent_t0 = general(payload)
    if fast is not None:
        assert same_bits(fast[0], values)
        assert fast[1] == sent_t0


def test_sensor_frames_take_the_fast_path() -> None:
    """What clients send: rounded decimals (IoT boards) and float32 values printed as doubles
    (the browser client, `posture stream`), small and large."""
    rng = np.random.default_rng(7)
    for scale in (1e-5, 1e-2, 1.0, 9.81, 1e3):
        values = (rng.normal(0, 1, (MAX_ROWS, CHANNELS)) * scale).astype(np.float32)
        for rows in (values.tolist(), np.round(values.astype(np.float64), 4).tolist()):
            payload = json.dumps({"samples": rows, "t0": 12.5}).encode()
            fast = parse_samples_json(payload, CHANNELS, MAX_ROWS)
            assert fast is not None, payload[:80]
            assert same_bits(fast[0], general(payload)[0])


def test_minus_zero_is_read_as_the_general_path_reads_it() -> None:
    fast = parse_samples_json(b'{"samples":[[-0,-0.0,-0e0,0,0.0,1]]}', CHANNELS, MAX_ROWS)
    assert fast is not None
    assert np.signbit(fast[0][0]).tolist() == [False, True, True, False, False, False]


@pytest.mark.parametrize(
    "payload",
    [
        b'{"samples":[[1,2,3,4,5,true]]}',  # a boolean is not a number
        b'{"samples":[[1,2,3,4,5,"6"]]}',
        b'{"samples":[[1,2,3,4,5]]}',  # a short row
        b'{"samples":[[1,2,3,4,5,6,7]]}',
        b'{"samples":[]}',
        b'{"samples":[[1,2,3,4,5,01]]}',  # not JSON
        b'{"samples":[[1,2,3,4,5,6]],}',
        b'{"samples":[[1,2,3,4,5,1e39]]}',  # beyond float32: non_finite
        b'{"samples":[[1,2,3,4,5,12345678901234567890]]}',  # more digits than the fast path reads
        b'{"samples":[[1,2,3,4,5,6]],"samples":[[1,2,3,4,5,6]]}',  # which one counts is the general path's call
        b'{"a":"\\"samples\\":[[1,2,3,4,5,6]]","samples":0}',  # the array is text inside a string
        b'{"nested":{"samples":[[1,2,3,4,5,6]]}}',
        b'{"type":"hello","samples":[[1,2,3,4,5,6]]}',
        b'{"samples":[[1,2,3,4,5,6]],"t0":"x"}',  # t0 is checked after either path
    ],
)
def test_anything_unusual_is_left_to_the_general_path(payload: bytes) -> None:
    taken = parse_samples_json(payload, CHANNELS, MAX_ROWS)
    if payload.endswith(b'"t0":"x"}'):
        assert taken is not None  # the rows are fine; parse_text refuses the t0
        with pytest.raises(FrameError, match="t0"):
            parse_text(payload, CHANNELS, MAX_ROWS)
    else:
        assert taken is None


def test_more_rows_than_the_limit_go_to_the_general_path_which_refuses_them() -> None:
    payload = json.dumps({"samples": [[1.0] * CHANNELS] * (MAX_ROWS + 1)}).encode()
    assert parse_samples_json(payload, CHANNELS, MAX_ROWS) is None
    with pytest.raises(FrameTooBig):
        parse_text(payload, CHANNELS, MAX_ROWS)


def test_parse_text_takes_bytes_and_str_alike() -> None:
    payload = b'{"samples": [[0.5, 1, 2, 3, 4, 5]], "t0": 3}'
    for sent in (payload, payload.decode()):
        frame = parse_text(sent, CHANNELS, MAX_ROWS)
        assert isinstance(frame, Samples) and frame.t0 == 3.0
        assert frame.values.tolist() == [[0.5, 1, 2, 3, 4, 5]]
    with pytest.raises(UnicodeDecodeError):
        parse_text(b'{"samples": [[1,2,3,4,5,6]], "x": "\xff"}', CHANNELS, MAX_ROWS)
