"""The /v1/stream wire protocol (docs/protocol.md): parse client frames, build server messages.

Pure functions, no I/O. A frame that breaks the protocol raises ``FrameError`` (the
session answers with an error message and goes on) or ``FrameTooBig`` (the session is
closed with 1009).
"""

from __future__ import annotations

import json
import re
import reprlib
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson

from features.contract import ALL_CHANNELS
from serving.client_text import text_problem
from serving.stream.json_samples import parse_samples_json

CLOSE_GOING_AWAY = 1001  # server shutting down
CLOSE_POLICY_VIOLATION = 1008  # flooding past the rate limit
CLOSE_TOO_BIG = 1009  # frame over max_frame_bytes or max_samples_per_frame
CLOSE_INTERNAL_ERROR = 1011  # the server cannot go on (e.g. the new model needs channels the client lacks)

MAX_RATE_HZ = 2000.0
MAX_ABS_T0_S = 1e15  # ~30 million years: any clock in seconds; microsecond and nanosecond stamps are refused
NUMBER_TYPES = frozenset({int, float})  # what JSON numbers parse to (bool is not one)
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what a resuming hello may name
BINARY_DTYPE = np.dtype("<f4")  # little-endian float32, rows of the declared channels


class FrameError(ValueError):
    """A frame the server rejects; the session goes on. ``code`` is stable, ``detail`` human."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class FrameTooBig(ValueError):
    """A frame over the documented size limits; the session is closed with 1009."""


@dataclass(frozen=True)
class Hello:
    device_id: str | None
    rate_hz: float | None
    channels: tuple[str, ...] | None
    session_id: str | None = None  # an earlier session to resume
    record: Any = None  # the "record" object as sent; the session checks it after ready (serving/recording)


@dataclass(frozen=True)
class LabelChange:
    """``{"type": "label", "label": ..., "subject": ...}``: record under another label from now on
    (null: stop recording); the values as sent, checked by the session's recording."""

    label: Any
    subject: Any = None


@dataclass(frozen=True)
class Samples:
    values: np.ndarray  # (n_rows, n_declared_channels) float32
    t0: float | None  # time of the first row, seconds (client clock), when given


def parse_text(text: str | bytes, n_channels: int, max_samples: int) -> Hello | Samples | LabelChange:
    """A JSON text frame: a hello, samples (``{"samples": [[...], ...], "t0": ...}``) or a label change.

    ``text`` as received: a WebSocket's str, or an MQTT payload's bytes (UTF-8, else
    ``UnicodeDecodeError``). Well-formed samples take the compiled fast path (``json_samples``)."""
    raw = text if isinstance(text, bytes) else text.encode() if text.isascii() else None
    if raw is not None and n_channels > 0:
        fast = parse_samples_json(raw, n_channels, max_samples)
        if fast is not None:
            return Samples(fast[0], _optional_time(fast[1]))
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        message = _loads(text)
    except ValueError as err:
        raise FrameError("bad_json", f"frame is not JSON: {err}") from None
    if not isinstance(message, dict):
        raise FrameError("bad_frame", "frame must be a JSON object")
    kind = message.get("type", "samples" if "samples" in message else None)
    if kind == "hello":
        return parse_hello(message)
    if kind == "label":
        if "label" not in message:
            raise FrameError("bad_label", 'a label message needs "label": one of the model\'s classes, or null to stop')
        return LabelChange(message["label"], message.get("subject"))
    if kind != "samples":
        raise FrameError("unknown_type", f"unknown message type {_shown(kind)}; send 'hello', 'samples' or 'label'")
    values = _sample_rows(message.get("samples"), n_channels, max_samples)
    return Samples(values, _optional_time(message.get("t0")))


def _loads(text: str) -> Any:
    """orjson (~4x faster) for well-formed frames; the standard library for the rest, which
    also reads NaN and Infinity, so such frames get ``non_finite`` rather than ``bad_json``.

    The fallback reads integers as floats: one beyond float range (which orjson refuses) is
    then infinity, which the checks refuse (``non_finite``, or ``bad_frame`` for ``t0``)
    instead of an OverflowError. It recurses per nesting level: past ~1,000 levels it
    raises RecursionError (orjson refuses over 1,024 levels)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text, parse_int=float)
    except RecursionError:
        raise ValueError("arrays or objects nested over 1,000 levels deep") from None


def parse_binary(data: bytes, n_channels: int, max_samples: int) -> Samples:
    """A binary frame: little-endian float32 rows, ``n_channels`` values each, no header."""
    row_bytes = BINARY_DTYPE.itemsize * n_channels
    if not data or len(data) % row_bytes:
        raise FrameError(
            "bad_frame",
            f"binary frame of {len(data)} bytes is not whole rows of {n_channels} float32 ({row_bytes} bytes)",
        )
    if len(data) // row_bytes > max_samples:
        raise FrameTooBig(f"{len(data) // row_bytes} rows in one frame; the limit is {max_samples}")
    values = np.frombuffer(data, dtype=BINARY_DTYPE).reshape(-1, n_channels).astype(np.float32)
    _check_finite(values)
    return Samples(values, None)


def parse_hello(message: dict[str, Any]) -> Hello:
    device_id = message.get("device_id")
    problem = None if device_id is None else text_problem(device_id)
    if problem is not None:  # the same check as every other edge: fit for both stores and the HMAC
        raise FrameError("bad_hello", f"device_id {problem}")
    rate = message.get("rate_hz")
    if rate is not None and (not _is_number(rate) or not 0 < rate <= MAX_RATE_HZ):
        raise FrameError("bad_hello", f"rate_hz must be a number in (0, {MAX_RATE_HZ:g}], got {_shown(rate)}")
    channels = message.get("channels")
    if channels is not None:
        if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
            raise FrameError("bad_hello", "channels must be a non-empty list of channel names")
        unknown = [c for c in channels if c not in ALL_CHANNELS]
        if unknown or len(set(channels)) != len(channels):
            raise FrameError(
                "bad_hello", f"channels must be distinct names from {list(ALL_CHANNELS)}, got {_shown(channels)}"
            )
    session_id = message.get("session_id")
    if session_id is not None and (not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id)):
        raise FrameError("bad_hello", "session_id must be the session_id of an earlier ready message")
    return Hello(
        device_id,
        float(rate) if rate is not None else None,
        tuple(channels) if channels else None,
        session_id,
        message.get("record"),
    )


def _sample_rows(rows: Any, n_channels: int, max_samples: int) -> np.ndarray:
    if not isinstance(rows, list) or not rows:
        raise FrameError("bad_frame", "samples must be a non-empty list of rows")
    if len(rows) > max_samples:
        raise FrameTooBig(f"{len(rows)} rows in one frame; the limit is {max_samples}")
    if not _all_numbers(rows):
        raise FrameError(
            "bad_frame", f"samples must be rows (lists) of {n_channels} numbers; strings and booleans are not numbers"
        )
    try:
        with np.errstate(over="ignore"):  # the model's precision; overflow shows up as inf below
            values = np.array(rows, dtype=np.float32)
    except (ValueError, TypeError):
        raise FrameError("bad_frame", f"samples must be rows of {n_channels} numbers") from None
    if values.ndim != 2 or values.shape[1] != n_channels:
        raise FrameError("bad_frame", f"samples must be rows of {n_channels} numbers, got shape {list(values.shape)}")
    _check_finite(values)
    return values


def _all_numbers(rows: list[Any]) -> bool:
    """Every value of every row a JSON number: numpy would also take "1.5" and true. The set
    of types is built in C, ~4 us for 25 rows of 6 (the conversion to float32 takes ~7 us)."""
    try:
        return set(map(type, chain.from_iterable(rows))) <= NUMBER_TYPES
    except TypeError:  # a row that is not a list
        return False


def _check_finite(values: np.ndarray) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise FrameError("non_finite", f"row {int(row)}, column {int(column)} is not a finite number")


def _optional_time(t0: Any) -> float | None:
    if t0 is None:
        return None
    if not _is_number(t0) or not abs(t0) <= MAX_ABS_T0_S:  # also false for NaN
        raise FrameError("bad_frame", f"t0 must be a number of seconds within +-{MAX_ABS_T0_S:g}, got {_shown(t0)}")
    return float(t0)


def _shown(value: Any) -> str:
    """A client's value for an error's detail (and the log): a few elements and levels at most.
    A plain repr of JSON nested ~1,000 deep raises RecursionError, and of a long one echoes it all."""
    return reprlib.repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def error_message(code: str, detail: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "detail": detail}


def recording_message(
    active: bool, label: str | None, subject: str, seconds: dict[str, float], files: int
) -> dict[str, Any]:
    """Whether the session records now, under which label and subject, the seconds recorded per
    label and the files written: sent when recording starts, changes, stops, or writes a file."""
    return {
        "type": "recording",
        "recording": active,
        "label": label,
        "subject": subject,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "files": files,
    }


def ready_message(
    session_id: str,
    model: dict[str, Any],
    rate_hz: float,
    channels: tuple[str, ...],
    limits: dict[str, float],
    next_t: float | None = None,
) -> dict[str, Any]:
    """Sent once, before anything else: the session id, the model, the frame layout in force, the
    limits; and whether an earlier session was resumed (then ``next_t``: the next sample it expects)."""
    message = {
        "type": "ready",
        "session_id": session_id,
        "model": model,
        "rate_hz": rate_hz,
        "channels": list(channels),
        "limits": limits,
        "resumed": next_t is not None,
    }
    if next_t is not None:
        message["next_t"] = next_t
    return message


def prediction_message(
    *,
    session_id: str,
    window_start: float,
    window_end: float,
    classes: tuple[str, ...],
    probabilities: list[float],
    smoothed: list[float],
    model_version: str | None,
    latency_ms: float,
) -> dict[str, Any]:
    """One completed window: the raw and the causally smoothed prediction (rows in ``classes`` order)."""
    best = max(range(len(classes)), key=probabilities.__getitem__)  # the first of ties, as argmax
    smoothed_best = max(range(len(classes)), key=smoothed.__getitem__)
    return {
        "type": "prediction",
        "session_id": session_id,
        "window_start": window_start,
        "window_end": window_end,
        "label": classes[best],
        "confidence": probabilities[best],
        "probabilities": dict(zip(classes, probabilities)),
        "smoothed_label": classes[smoothed_best],
        "smoothed_probabilities": dict(zip(classes, smoothed)),
        "model_version": model_version,
        "latency_ms": latency_ms,
    }
