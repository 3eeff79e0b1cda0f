"""Hypothesis strategies for /v1/stream frames, each tagged with what docs/protocol.md promises
for it: predicted (``OK``), an error message and the session goes on (``ERROR``), either of the
two (``ANY``: random JSON, bytes and text, whose validity the test does not re-derive), or a
close with a documented code (``CLOSE``: 1009 too big, 1007 text that is not UTF-8).

Used by tests/serving/stream/test_stream_fuzz.py; the model is the 6-channel one the test suite trains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

OK, ERROR, ANY, CLOSE = "ok", "error", "any", "close"
CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]
MAX_FRAME_BYTES, MAX_ROWS = 65_536, 1_000  # the server's defaults (ready's limits)


@dataclass(frozen=True)
class Frame:
    data: str | bytes
    expect: str
    close_code: int | None = None
    not_utf8: bool = False  # bytes sent as a text frame

    def __repr__(self) -> str:  # short enough to read in a failure's example
        shown = self.data if len(self.data) <= 120 else self.data[:120]
        return f"Frame({shown!r}{'...' if len(self.data) > 120 else ''}, {self.expect}, {self.close_code})"


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=True)  # NaN and Infinity as the stdlib writes them


VALUE = st.floats(-40.0, 40.0, width=32)
EXTREME = st.floats(width=32, allow_nan=False, allow_infinity=False)  # up to +-3.4e38: still valid
ROWS = st.lists(st.lists(VALUE, min_size=6, max_size=6), min_size=1, max_size=40)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)  # a text frame must encode as UTF-8
JSON_TEXT = st.text(max_size=60)  # inside JSON: lone surrogates too, escaped ("\\ud800"), as a client may send
KEYS = st.sampled_from(["samples", "type", "t0", "rate_hz", "channels", "device_id"]) | JSON_TEXT
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=40,
)


def _valid() -> st.SearchStrategy[Frame]:
    as_json = ROWS.map(lambda rows: Frame(_json({"samples": rows}), OK))
    as_binary = ROWS.map(lambda rows: Frame(np.asarray(rows, "<f4").tobytes(), OK))
    extreme = st.lists(st.lists(EXTREME, min_size=6, max_size=6), min_size=1, max_size=5)
    return as_json | as_binary | extreme.map(lambda rows: Frame(np.asarray(rows, "<f4").tobytes(), OK))


def valid_hello() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.just("hello")},
        optional={
            "rate_hz": st.floats(5.0, 2000.0),
            "channels": st.permutations(CHANNELS),
            # any text a store can hold: no lone surrogate, no NUL (serving/client_text.py)
            "device_id": st.text(
                st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=128
            ),
        },
    )


BAD_HELLOS = [
    {"rate_hz": 0.01},
    {"rate_hz": 4.9},
    {"rate_hz": 0},
    {"rate_hz": -50},
    {"rate_hz": 2001},
    {"rate_hz": "50"},
    {"rate_hz": True},
    {"channels": ["ax", "ay", "az"]},
    {"channels": ["ax", "ax"]},
    {"channels": ["zz"]},
    {"channels": []},
    {"device_id": ""},
    {"device_id": "x" * 129},
    {"device_id": "a\x00b"},  # NUL: PostgreSQL text cannot hold it (issue 20)
    {"device_id": "\ud800x"},  # a lone surrogate: no store (nor the HMAC) can encode it; was a 1011
    {"device_id": 7},
    {"session_id": "../etc"},
    {"session_id": 7},
]


REFUSED: list[str | bytes] = [  # refused wherever they come; some once ended the session with 1011
    '{"samples": []}',
    '{"samples": [[1, 2, 3, 4, 5]]}',
    '{"samples": [[1, 2, 3, 4, 5, 6, 7]]}',
    '{"samples": [["0.1", "9.7", "0.3", "0", "0", "0"]]}',
    '{"samples": [[true, false, true, 0, 0, 0]]}',
    '{"samples": [[1, 2, 3, 4, 5, 6]], "t0": "now"}',
    '{"samples": [[1, 2, 3, 4, 5, 6]], "t0": 1.7e18}',
    '{"samples": [[NaN, 2, 3, 4, 5, 6]]}',
    '{"samples": [[1, 2, 3, 4, 5, Infinity]]}',
    '{"samples": [[1e39, 0, 0, 0, 0, 0]]}',
    '{"samples": [[1, 2, 3, 4, 5, 1' + "0" * 400 + "]]}",
    '{"samples": [[1, 2, 3, 4, 5, 6]], "t0": 1' + "0" * 400 + "}",  # beyond float range: was a 1011
    '{"samples": [[1, 2, 3, 4, 5, 6]], "t0": -1' + "0" * 400 + "}",
    '{"samples": ' + "[" * 1100 + "]" * 1100 + "}",  # past the fallback parser's recursion: was a 1011
    '{"type": "\\ud800"}',  # a lone surrogate echoed in the detail
    "[1, 2]",
    '"samples"',
    "null",
    "[" * 3000 + "]" * 3000,
    "",
    np.full((2, 6), np.nan, "<f4").tobytes(),
    b"",
    b"\x00" * 25,
]


def _refused() -> st.SearchStrategy[Frame]:
    """Frames every session must answer with an error message, wherever they come."""
    rows = ROWS.map(lambda r: _json({"samples": r}))
    return st.one_of(
        st.sampled_from(REFUSED).map(lambda data: Frame(data, ERROR)),
        st.sampled_from(BAD_HELLOS).map(lambda extra: Frame(_json({"type": "hello", **extra}), ERROR)),
        TEXT.map(lambda text: Frame("\x01" + text, ERROR)),  # a control character first: never JSON
        st.tuples(rows, st.integers(1, 10_000)).map(lambda p: Frame(p[0][: max(1, len(p[0]) - p[1])], ERROR)),
        TEXT.filter(lambda t: t != "hello").map(lambda kind: Frame(_json({"type": kind}), ERROR)),
    )


def _wild() -> st.SearchStrategy[Frame]:
    return st.one_of(
        JSON_VALUE.map(lambda value: Frame(_json(value), ANY)),
        st.binary(max_size=300).map(lambda data: Frame(data, ANY)),
        TEXT.map(lambda text: Frame(text, ANY)),
        valid_hello().map(lambda hello: Frame(_json(hello), ANY)),  # valid only while nothing set the layout
        st.tuples(ROWS, st.floats(-1e15, 1e15)).map(lambda p: Frame(_json({"samples": p[0], "t0": p[1]}), ANY)),
    )


def _closing() -> st.SearchStrategy[Frame]:
    pad = "x" * (MAX_FRAME_BYTES + 1)
    over = [
        Frame(_json({"samples": [[0.1, 9.7, 0.3, 0, 0, 0]], "pad": pad}), CLOSE, 1009),
        Frame(_json({"samples": [[0, 0, 0, 0, 0, 0]] * (MAX_ROWS + 1)}), CLOSE, 1009),
        Frame(np.zeros((MAX_ROWS + 1, 6), "<f4").tobytes(), CLOSE, 1009),
        Frame(b"\x00" * (MAX_FRAME_BYTES + 5), CLOSE, 1009),
    ]
    not_utf8 = st.binary(max_size=40).map(lambda b: Frame(b'{"samples": [[1, \xff' + b + b"]]}", CLOSE, 1007, True))
    return st.sampled_from(over) | not_utf8


def frames(closing: bool) -> st.SearchStrategy[Frame]:
    """One frame: valid ones about half the time, so that windows complete between the rest."""
    kinds = [_valid(), _valid(), _valid(), _refused(), _wild()]
    return st.one_of(*kinds, _closing()) if closing else st.one_of(*kinds)


def session(min_frames: int, max_frames: int) -> st.SearchStrategy[tuple[dict[str, Any] | None, list[Frame]]]:
    """An optional valid hello, then frames; at most one closing frame, seldom, and last."""
    body = st.lists(frames(False), min_size=min_frames, max_size=max_frames)
    end = st.sampled_from([None] * 5 + [True]).flatmap(lambda c: _closing().map(lambda f: [f]) if c else st.just([]))
    return st.tuples(st.none() | valid_hello(), st.tuples(body, end).map(lambda p: p[0] + p[1]))
