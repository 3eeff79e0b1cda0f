"""The fast path of a JSON samples frame: the rows parsed straight from the bytes into float32.

``orjson.loads`` makes a Python float for every value and a list for every row, and numpy then
checks and converts them one by one: ~30 us of a 50-row frame's CPU, the largest single cost
of an MQTT frame (bench/mqtt_load.py under py-spy). Here a compiled scanner reads the
``"samples"`` array itself, and orjson parses only the rest of the object (``t0``, ``type``).

It takes only what it can read exactly as the general path does (``protocol.parse_text``):
well-formed rows of ``n_channels`` JSON numbers. With up to 15 significant digits and a
decimal exponent within +-22, one multiplication or division of two exact doubles gives the
correctly rounded double (Clinger's fast path), then float32 as numpy rounds it. Otherwise
(16-18 digits, as JavaScript and Python print a float32 sample; an exponent within +-44) a
value is taken only when its float32 cannot depend on the last ulps of the double.
Anything else (another shape, a string, a long or huge number, a second ``"samples"``, a
frame over the limits) returns None and the general path parses the frame and names the
problem.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from numba import njit

EXACT_DIGITS = 15  # significant digits that fit a double exactly
# More (a float32 printed as a double: 0.10000000149011612) are read through the float32 check.
MAX_DIGITS = 18  # an int64 holds them
DOUBLE_SLACK = 4.5e-16  # 2 ulp: the roundings of the mantissa and of up to two scalings
MAX_EXP10 = 22  # 10**22 is the largest power of ten a double holds exactly
FLOAT32_MAX = float(np.finfo(np.float32).max)
SAMPLES_KEY = b'"samples"'
_POWERS = np.array([10.0**k for k in range(MAX_EXP10 + 1)])


def parse_samples_json(payload: bytes, n_channels: int, max_samples: int) -> tuple[np.ndarray, Any] | None:
    """(rows as float32 (n, n_channels), the message's ``t0`` as sent) of a samples frame, or
    None when the general path must parse it (anything unusual, every error included)."""
    start = payload.find(SAMPLES_KEY)
    if start < 0 or payload.find(SAMPLES_KEY, start + 1) >= 0:
        return None
    data = np.frombuffer(payload, dtype=np.uint8)
    # Room for max_samples rows, or for as many as the payload can hold ("[0,0,...]," each),
    # whichever is fewer: a frame over the limit still reaches the general path's refusal.
    out = np.empty((min(max_samples, len(payload) // (2 * n_channels + 1) + 1), n_channels))
    rows, begin, end = _scan_rows(data, start + len(SAMPLES_KEY), n_channels, out, _POWERS)
    if rows <= 0:
        return None
    try:
        rest = orjson.loads(payload[:begin] + b"0" + payload[end:])
    except orjson.JSONDecodeError:
        return None
    # The scanned array must be the object's own "samples" (not text inside a string or a
    # nested object), and the message a samples one.
    if type(rest) is not dict or type(rest.get("samples")) is not int or rest.get("type", "samples") != "samples":
        return None
    return out[:rows].astype(np.float32), rest.get("t0")


def warm_up() -> None:
    """Load the compiled scanner (or compile it, on a machine's first run: ~2 s) before the
    first frame needs it."""
    parse_samples_json(b'{"samples":[[0.5]]}', 1, 1)


@njit(cache=True, nogil=True, inline="always")
def _skip_space(data: np.ndarray, i: int) -> int:
    n = len(data)
    while i < n and (data[i] == 32 or data[i] == 9 or data[i] == 10 or data[i] == 13):
        i += 1
    return i


@njit(cache=True, nogil=True, inline="always")
def _scan_number(data: np.ndarray, i: int, powers: np.ndarray) -> tuple[float, int]:
    """(the value, the index after it) of the JSON number at ``i``; index -1 when it is not
    one, or not one the fast path reads exactly."""
    n = len(data)
    negative = i < n and data[i] == 45  # '-'
    if negative:
        i += 1
    integer = True  # no fraction, no exponent: orjson reads an int, and -0 is then +0.0
    if i >= n or not 48 <= data[i] <= 57:
        return 0.0, -1
    mantissa, digits, exponent = 0, 0, 0
    if data[i] == 48:  # a leading 0 stands alone
        i += 1
    else:
        while i < n and 48 <= data[i] <= 57:
            if mantissa or data[i] != 48:
                digits += 1
            mantissa = mantissa * 10 + (data[i] - 48)
            i += 1
            if digits > MAX_DIGITS:
                return 0.0, -1
    if i < n and data[i] == 46:  # '.'
        integer = False
        i += 1
        if i >= n or not 48 <= data[i] <= 57:
            return 0.0, -1
        while i < n and 48 <= data[i] <= 57:
            if mantissa or data[i] != 48:
                digits += 1
            mantissa = mantissa * 10 + (data[i] - 48)
            exponent -= 1
            i += 1
            if digits > MAX_DIGITS:
                return 0.0, -1
    if i < n and (data[i] == 101 or data[i] == 69):  # 'e', 'E'
        integer = False
        i += 1
        sign = 1
        if i < n and (data[i] == 43 or data[i] == 45):
            sign = -1 if data[i] == 45 else 1
            i += 1
        if i >= n or not 48 <= data[i] <= 57:
            return 0.0, -1
        written = 0
        while i < n and 48 <= data[i] <= 57:
            written = written * 10 + (data[i] - 48)
            i += 1
            if written > 1000:
                return 0.0, -1
        exponent += sign * written
    if mantissa == 0:
        return (0.0 if integer or not negative else -0.0), i
    exact = digits <= EXACT_DIGITS and -MAX_EXP10 <= exponent <= MAX_EXP10
    if 0 <= exponent <= MAX_EXP10:
        value = float(mantissa) * powers[exponent]
    elif -MAX_EXP10 <= exponent < 0:
        value = float(mantissa) / powers[-exponent]
    elif MAX_EXP10 < exponent <= 2 * MAX_EXP10:
        value = float(mantissa) * powers[MAX_EXP10] * powers[exponent - MAX_EXP10]
    elif -2 * MAX_EXP10 <= exponent < -MAX_EXP10:
        value = float(mantissa) / powers[MAX_EXP10] / powers[-exponent - MAX_EXP10]
    else:
        return 0.0, -1
    if not exact:
        # Within 1.5 ulp of the correctly rounded double, not exact: take its float32 only when
        # every double that close rounds to the same float32 (then so does the exact one).
        low, high = np.float32(value * (1.0 - DOUBLE_SLACK)), np.float32(value * (1.0 + DOUBLE_SLACK))
        if low != high:
            return 0.0, -1
        value = float(low)
    return (-value if negative else value), i


@njit(cache=True, nogil=True)
def _scan_rows(data: np.ndarray, i: int, n_channels: int, out: np.ndarray, powers: np.ndarray) -> tuple[int, int, int]:
    """After the key at ``i``: ``: [[n, ...], ...]``. (rows read, the array's first index, the
    index after it); rows 0 when the array is not one the fast path takes."""
    i = _skip_space(data, i)
    if i >= len(data) or data[i] != 58:  # ':'
        return 0, 0, 0
    begin = i = _skip_space(data, i + 1)
    if i >= len(data) or data[i] != 91:  # '['
        return 0, 0, 0
    rows = 0
    while True:
        i = _skip_space(data, i + 1)
        if i >= len(data) or data[i] != 91 or rows == len(out):
            return 0, 0, 0
        for column in range(n_channels):
            i = _skip_space(data, i + 1)
            value, i = _scan_number(data, i, powers)
            if i < 0 or abs(value) > FLOAT32_MAX:
                return 0, 0, 0
            out[rows, column] = value
            i = _skip_space(data, i)
            if i >= len(data) or data[i] != (93 if column == n_channels - 1 else 44):  # ']' or ','
                return 0, 0, 0
        rows += 1
        i = _skip_space(data, i + 1)
        if i >= len(data):
            return 0, 0, 0
        if data[i] == 93:  # ']': the end of the array
            return rows, begin, i + 1
        if data[i] != 44:
            return 0, 0, 0
