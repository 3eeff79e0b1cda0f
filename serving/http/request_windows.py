"""A /v1/predict body -> the model's windows, checked at the edge with errors naming the field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi.exceptions import RequestValidationError

from features.resample import resample_uniform
from features.spec import WindowSpec
from features.windows import sliding_windows, window_starts
from serving.http.schemas import PredictRequest
from serving.stream.work_limits import WorkLimits


def invalid(field: Sequence[str | int], message: str) -> RequestValidationError:
    """A 422 in FastAPI's own format: ``{"detail": [{"loc": ["body", field...], "msg": ...}]}``."""
    return RequestValidationError([{"type": "value_error", "loc": ("body", *field), "msg": message, "input": None}])


def request_windows(body: PredictRequest, spec: WindowSpec, limits: WorkLimits) -> tuple[np.ndarray, np.ndarray]:
    """(windows (n, window_samples, channels) float32 in the model's channel order, start times).

    Ready windows are taken as consecutive, one hop apart from ``t0``: nominal times. Samples
    at another rate are resampled within ``limits``: a rate floor, and a cap on what it makes.
    """
    channels = _channel_order(body, spec)
    if body.windows is not None:
        windows = _ready_windows(body, spec, channels)
        return windows, body.t0 + np.arange(len(windows)) * spec.hop_s
    values = _sample_values(body.samples, spec, channels)
    rate = body.rate_hz or spec.rate_hz
    if rate != spec.rate_hz and len(values):  # no samples: the too-short 422 below, not a failed resampling
        _check_work(len(values), rate, spec, limits)
        t = np.arange(len(values)) / rate
        ((_, values, _),) = resample_uniform(t, values, spec.rate_hz, max_gap_s=2.0 / rate)  # an even grid: one segment
    values = values.astype(np.float32)  # the precision training and `posture predict` use
    windows = sliding_windows(values, spec.window_samples, spec.hop_samples)
    if len(windows) == 0:
        raise invalid(
            ("samples",),
            f"{len(values)} samples at {spec.rate_hz:g} Hz are shorter than one window "
            f"({spec.window_samples} samples = {spec.window_s:g} s).",
        )
    starts = body.t0 + window_starts(len(values), spec.window_samples, spec.hop_samples) / spec.rate_hz
    return np.ascontiguousarray(windows), starts


def _check_work(rows: int, rate: float, spec: WindowSpec, limits: WorkLimits) -> None:
    """Refuse, before resampling, a rate below the floor or more samples than the cap."""
    too_slow = limits.rate_problem(rate, spec.rate_hz)
    if too_slow:
        raise invalid(("rate_hz",), too_slow)
    made = int(np.floor((rows - 1) / rate * spec.rate_hz + 1e-9)) + 1  # what resample_uniform makes
    too_many = limits.grid_problem(made, f"resampling {rows} samples from {rate:g} Hz")
    if too_many:
        raise invalid(("samples",), f"{too_many} Fix: send fewer samples per request.")


def _channel_order(body: PredictRequest, spec: WindowSpec) -> list[str]:
    if isinstance(body.samples, dict):
        return list(spec.channels)
    channels = list(body.channels or spec.channels)
    if len(set(channels)) != len(channels):
        raise invalid(("channels",), f"channels must be distinct, got {channels}.")
    missing = [c for c in spec.channels if c not in channels]
    if missing:
        raise invalid(("channels",), f"the model needs channel(s) {', '.join(missing)}.")
    return channels


def _sample_values(samples: Any, spec: WindowSpec, channels: list[str]) -> np.ndarray:
    """Rows or columns -> (n, model channels) float64."""
    if isinstance(samples, dict):
        missing = [c for c in spec.channels if c not in samples]
        if missing:
            raise invalid(("samples",), f"columns lack channel(s) {', '.join(missing)} that the model needs.")
        lengths = {c: len(samples[c]) for c in spec.channels}
        if len(set(lengths.values())) != 1:
            raise invalid(("samples",), f"columns must have equal lengths, got {lengths}.")
        values = np.column_stack([np.asarray(samples[c], dtype=np.float64) for c in spec.channels])
    else:
        rows = [len(row) for row in samples]
        bad = next((i for i, n in enumerate(rows) if n != len(channels)), None)
        if bad is not None:
            raise invalid(
                ("samples", bad), f"row {bad} has {rows[bad]} values; expected {len(channels)} ({', '.join(channels)})."
            )
        values = np.asarray(samples, dtype=np.float64).reshape(len(samples), len(channels))
        values = values[:, [channels.index(c) for c in spec.channels]]
    with np.errstate(over="ignore"):  # 1e300 is finite here and infinite in the model's float32
        _check_finite(values.astype(np.float32), "samples")
    return values


def _ready_windows(body: PredictRequest, spec: WindowSpec, channels: list[str]) -> np.ndarray:
    if body.rate_hz is not None and body.rate_hz != spec.rate_hz:
        raise invalid(("rate_hz",), f"windows must already be at the model's rate, {spec.rate_hz:g} Hz.")
    expected = (spec.window_samples, len(channels))
    try:
        with np.errstate(over="ignore"):  # the model's precision; overflow shows up as inf below
            windows = np.array(body.windows, dtype=np.float32)
    except ValueError:
        raise invalid(("windows",), f"each window must be {expected[0]} rows of {expected[1]} values.") from None
    if windows.ndim != 3 or windows.shape[1:] != expected or len(windows) == 0:
        raise invalid(
            ("windows",), f"windows must have shape (n, {expected[0]}, {expected[1]}), got {list(windows.shape)}."
        )
    _check_finite(windows, "windows")
    if channels == list(spec.channels):
        return windows  # already contiguous, in the model's order
    return np.ascontiguousarray(windows[:, :, [channels.index(c) for c in spec.channels]])


def _check_finite(values: np.ndarray, field: str) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        where = np.argwhere(~finite)[0]
        raise invalid((field, int(where[0])), f"{field} {int(where[0])} holds a non-finite value.")
