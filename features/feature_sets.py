"""Feature-set versions: which signals a model's features are computed on.

A model's spec names its ``feature_set_version``; ``featurize`` and ``feature_names_for``
dispatch on it, so a model keeps predicting after the default changes.

- ``imu-stats-1``: the recorded channels plus the magnitudes ``amag`` and ``gmag``.
- ``imu-stats-2``: those, plus four orientation-robust signals in the frame
  of the window's gravity (its mean acceleration ``g``, unit vector ``u``):
  ``avert = (a - g) . u`` (body acceleration along gravity), ``ahoriz = |a - g - avert u|``
  (across it), ``gvert = w . u`` (turning about the vertical) and ``ghoriz = |w - gvert u|``
  (tilting). A waist phone in another pocket or rotated on the belt sees other axes but
  the same vertical and horizontal motion, which is what tells stairs from level walking.
  Measured leave-one-subject-out on the 21 UCI HAPT users (RF100, bench/bench_quality.py):
  window accuracy 0.918 -> 0.928.
- ``imu-stats-3``: ``imu-stats-2`` plus the window's tilt from the wearer's upright, learned
  causally from their own walking (``features.upright``): 0.928 -> 0.940 (0.943 with
  ``make_forest``'s leaves of 5).
- ``imu-stats-4`` (the default): ``imu-stats-3`` plus the window's tilt from the posture the
  wearer came from (``features.last_posture``): 0.948 -> 0.967 with the rotated copies.
From ``imu-stats-3`` on, windows need their stream's context (``window_contexts``,
``features.stream_context``), so featurizing them takes it as a third argument.

Every signal gets the same per-signal features (``features.extract``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from features.contract import ACC_CHANNELS, GYRO_CHANNELS
from features.errors import SpecError
from features.extract import FEATURE_SET_VERSION as IMU_STATS_1
from features.extract import extract_features, feature_names
from features.gravity_kernel import gravity_frame, tilt_from_reference
from features.spec import WindowSpec
from features.last_posture import POSTURE_CHANGE_FEATURE_NAMES
from features.stream_context import (
    LAST_POSTURE,
    UPRIGHT,
    StreamContext,
    accelerometer_columns,
    stream_contexts,
    unknown_contexts,
)
from features.upright import UPRIGHT_FEATURE_NAMES

IMU_STATS_2 = "imu-stats-2"
IMU_STATS_3 = "imu-stats-3"
IMU_STATS_4 = "imu-stats-4"
DEFAULT_FEATURE_SET = IMU_STATS_4
FEATURE_SETS: tuple[str, ...] = (IMU_STATS_1, IMU_STATS_2, IMU_STATS_3, IMU_STATS_4)
GRAVITY_FRAME_SIGNALS: tuple[str, ...] = ("avert", "ahoriz", "gvert", "ghoriz")


def featurize(windows: np.ndarray, spec: WindowSpec, contexts: np.ndarray | None = None) -> np.ndarray:
    """Features of (n_windows, n_samples, channels) windows by the spec's feature set.

    ``contexts`` (n_windows, ``CONTEXT_COLUMNS``): each window's row from ``window_contexts``
    over its stream; ``imu-stats-3`` and ``imu-stats-4`` need them, the others ignore them.
    """
    version = _version(spec)
    windows = np.asarray(windows)
    if version == IMU_STATS_1:
        return extract_features(windows, spec.channels, spec.rate_hz)
    if version != IMU_STATS_2 and (contexts is None or len(contexts) != len(windows)):
        raise ValueError(f"{version} needs one context row per window (window_contexts)")
    signals, names, gravity = _with_gravity_frame(windows, spec.channels)
    if version == IMU_STATS_2:
        return extract_features(signals, names, spec.rate_hz)
    if gravity is None:
        raise ValueError(f"{version} needs the accelerometer channels {', '.join(ACC_CHANNELS)}")
    # One matrix, the per-signal features first, then 4 tilt columns per reference direction.
    references = [UPRIGHT] if version == IMU_STATS_3 else [UPRIGHT, LAST_POSTURE]
    n_features = len(feature_names(names, spec.rate_hz))
    out = np.empty((len(windows), n_features + 4 * len(references)))
    extract_features(signals, names, spec.rate_hz, out)
    contexts = np.asarray(contexts, dtype=np.float64)
    for i, columns in enumerate(references):
        tilt_from_reference(gravity, np.ascontiguousarray(contexts[:, columns]), out, n_features + 4 * i)
    return out


def window_contexts(windows: np.ndarray, spec: WindowSpec, context: StreamContext | None = None) -> np.ndarray:
    """The context row of each of a stream's consecutive windows (cut by ``spec``), advancing
    ``context`` (a new one when None: the windows are a whole stream); NaN rows without an accelerometer."""
    acc = accelerometer_columns(tuple(spec.channels))
    if acc is None:
        return unknown_contexts(len(windows))
    return stream_contexts(windows, spec.hop_s, context, acc)


def feature_names_for(spec: WindowSpec) -> list[str]:
    """Column names of ``featurize(windows, spec)``, in order."""
    version = _version(spec)
    if version == IMU_STATS_1:
        return feature_names(spec.channels, spec.rate_hz)
    names = feature_names(_gravity_frame_names(tuple(spec.channels)), spec.rate_hz)
    if version == IMU_STATS_2:
        return names
    names += UPRIGHT_FEATURE_NAMES
    return names if version == IMU_STATS_3 else [*names, *POSTURE_CHANGE_FEATURE_NAMES]


def with_gravity_frame(windows: np.ndarray, channels: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The windows with the gravity-frame signals appended as channels (those whose triad is present)."""
    signals, names, _ = _with_gravity_frame(np.asarray(windows), channels)
    return signals, names


def _with_gravity_frame(
    windows: np.ndarray, channels: Sequence[str]
) -> tuple[np.ndarray, tuple[str, ...], np.ndarray | None]:
    """``with_gravity_frame`` (float32 signals) and each window's unit gravity direction (n, 3),
    as ``gravity_and_spread_of``; None without an accelerometer."""
    names = _gravity_frame_names(tuple(channels))
    if len(names) == len(channels):
        return windows, names, None
    acc, gyro = _triad_columns(tuple(channels))
    out = np.empty((*windows.shape[:2], len(names)), dtype=np.float32)
    gravity = np.empty((len(windows), 3))
    gravity_frame(windows, acc, gyro, out, gravity)
    return out, names, gravity


@lru_cache(maxsize=64)
def _triad_columns(channels: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The accelerometer's and (when complete, else none) the gyroscope's channel indices."""
    index = {name: i for i, name in enumerate(channels)}
    acc = np.array([index[c] for c in ACC_CHANNELS], dtype=np.intp)
    has_gyro = all(c in index for c in GYRO_CHANNELS)
    return acc, np.array([index[c] for c in GYRO_CHANNELS] if has_gyro else [], dtype=np.intp)


@lru_cache(maxsize=64)
def _gravity_frame_names(channels: tuple[str, ...]) -> tuple[str, ...]:
    if not all(c in channels for c in ACC_CHANNELS):
        return tuple(channels)
    has_gyro = all(c in channels for c in GYRO_CHANNELS)
    return (*channels, *GRAVITY_FRAME_SIGNALS[: 4 if has_gyro else 2])


def _version(spec: WindowSpec) -> str:
    version = spec.feature_set_version or IMU_STATS_1  # models from before versions were recorded
    if version not in FEATURE_SETS:
        raise SpecError(
            f"The model's feature set {version!r} is not one this posture computes ({', '.join(FEATURE_SETS)}).",
            "upgrade posture to the version that trained the model, or retrain it.",
        )
    return version
