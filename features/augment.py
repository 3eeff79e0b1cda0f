"""Training copies of recordings as if the phone sat at another angle on the wearer.

Each person wears the phone a little differently, and a forest learns the exact gravity
directions of the people it was trained on. Copies of every training recording, each turned
by one random rotation of up to ``MAX_TILT_DEG`` (the same for the whole recording, as a
phone clipped on differently would be), teach it which of those directions matter.
Measured leave-one-subject-out on the 21 UCI HAPT users (imu-stats-3, ``make_forest``): 2
copies at 15 degrees, window accuracy 0.943 -> 0.947, mostly standing no longer taken for
sitting (bench/bench_quality.py, with the copies: 0.948).
Only training sees copies; a held-out subject is scored on its own recordings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from features.contract import ACC_CHANNELS, GYRO_CHANNELS

MAX_TILT_DEG = 15.0
COPIES = 2


def random_rotation(rng: np.random.Generator, max_deg: float = MAX_TILT_DEG) -> np.ndarray:
    """A rotation matrix about a random axis by a random angle in [-max_deg, max_deg] (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(-max_deg, max_deg))
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def rotate_stream(
    windows: np.ndarray, contexts: np.ndarray, channels: Sequence[str], rotation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One stream's windows (n, t, channels) and context rows (n, 3k) as the rotated phone sees them.

    Both the accelerometer and the gyroscope triads turn; so does every direction of the
    context (``features.stream_context``): each is a mean of gravity directions over windows
    that the rotation leaves moving or still as they were.
    """
    out = np.array(windows, dtype=np.float32, copy=True)
    for triad in (ACC_CHANNELS, GYRO_CHANNELS):
        if all(c in channels for c in triad):
            columns = [list(channels).index(c) for c in triad]
            out[:, :, columns] = windows[:, :, columns] @ rotation.T.astype(np.float32)
    contexts = np.asarray(contexts)
    turned = contexts.reshape(len(contexts), -1, 3) @ rotation.T
    return out, turned.reshape(contexts.shape)
