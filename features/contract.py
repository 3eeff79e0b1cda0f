"""The data contract: channel names, units and defaults every recording follows."""

from __future__ import annotations

import numpy as np

ACC_CHANNELS: tuple[str, ...] = ("ax", "ay", "az")  # m/s^2, gravity included
GYRO_CHANNELS: tuple[str, ...] = ("gx", "gy", "gz")  # rad/s
ALL_CHANNELS: tuple[str, ...] = ACC_CHANNELS + GYRO_CHANNELS
META_COLUMNS: tuple[str, ...] = ("label", "subject", "recording")
TIME_COLUMN = "timestamp"  # seconds, float, strictly increasing

STANDARD_GRAVITY = 9.80665  # m/s^2 per g
DEFAULT_RATE_HZ = 50.0
DEFAULT_WINDOW_S = 2.0
DEFAULT_HOP_S = 1.0


def looks_like_g(acc: np.ndarray) -> bool:
    """True when accelerometer rows (n, 3) have a median magnitude near 1, i.e. are in g.

    At rest or in everyday motion the magnitude in m/s^2 hovers near 9.8; in g near 1.
    """
    magnitude = np.linalg.norm(np.asarray(acc, dtype=float), axis=1)
    magnitude = magnitude[np.isfinite(magnitude)]
    if magnitude.size == 0:
        return False
    return 0.5 < float(np.median(magnitude)) < 2.0
