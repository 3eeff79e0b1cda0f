"""What a window's stream says about it: the wearer's upright and the posture they came from.

A window's features depend on the windows before it in its stream (a recording, a live
session, one HTTP request) through two causal trackers: ``features.upright`` (the torso's
upright, learned from walking) and ``features.last_posture`` (the still posture before the
last move). ``StreamContext`` holds both for one stream; ``stream_contexts`` gives each window
its context row, ``CONTEXT_COLUMNS`` wide: the upright, then the last posture, each a unit
direction in the phone's axes (NaN: not known yet). The training copies of
``features.augment`` turn these rows with the windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from features.context_kernel import context_rows
from features.contract import ACC_CHANNELS
from features.last_posture import CHANGE_COS, STILL_STD, LastPostureTracker, min_still_windows
from features.upright import MOVING_STD, XYZ, UprightTracker, upright_windows

CONTEXT_COLUMNS = 6
UPRIGHT = slice(0, 3)
LAST_POSTURE = slice(3, 6)


@dataclass
class StreamContext:
    """The causal trackers of one stream."""

    upright: UprightTracker = field(default_factory=UprightTracker)
    last_posture: LastPostureTracker = field(default_factory=LastPostureTracker)

    def state(self) -> dict[str, object]:
        return {"upright": self.upright.state(), "last_posture": self.last_posture.state()}

    @classmethod
    def restore(cls, state: dict[str, object]) -> "StreamContext":
        return cls(
            UprightTracker.restore(state["upright"]),  # type: ignore[arg-type]
            LastPostureTracker.restore(state["last_posture"]),  # type: ignore[arg-type]
        )


def stream_contexts(
    windows: np.ndarray, hop_s: float, context: StreamContext | None = None, acc: np.ndarray = XYZ
) -> np.ndarray:
    """The context row (n, ``CONTEXT_COLUMNS``) of each of a stream's consecutive windows
    (n, t, channels; ``acc`` the accelerometer's columns), ``hop_s`` apart, advancing ``context``
    (a new one: a stream of its own)."""
    context = StreamContext() if context is None else context
    upright, last_posture = context.upright, context.last_posture
    return context_rows(
        np.asarray(windows),
        acc,
        MOVING_STD,
        *upright_windows(hop_s),
        upright.direction,
        upright.counts,
        STILL_STD,
        min_still_windows(hop_s),
        CHANGE_COS,
        last_posture.recent,
        last_posture.run_sum,
        last_posture.counts,
    )


@lru_cache(maxsize=64)
def accelerometer_columns(channels: tuple[str, ...]) -> np.ndarray | None:
    """The columns of ``ACC_CHANNELS`` among ``channels`` (read-only), None when one is missing."""
    if not all(c in channels for c in ACC_CHANNELS):
        return None
    columns = np.array([channels.index(c) for c in ACC_CHANNELS], dtype=np.intp)
    columns.setflags(write=False)  # shared by every caller
    return columns


def unknown_contexts(n_windows: int) -> np.ndarray:
    """Context rows for windows whose stream says nothing (no accelerometer)."""
    return np.full((n_windows, CONTEXT_COLUMNS), np.nan)
