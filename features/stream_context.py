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

import numpy as np

from features.last_posture import LastPostureTracker
from features.upright import MOVING_STD, UprightTracker, gravity_and_spread_of

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


def stream_contexts(acc_windows: np.ndarray, hop_s: float, context: StreamContext | None = None) -> np.ndarray:
    """The context row (n, ``CONTEXT_COLUMNS``) of each of a stream's consecutive acceleration
    windows (n, t, 3), ``hop_s`` apart, advancing ``context`` (a new one: a stream of its own)."""
    context = context or StreamContext()
    gravity, spread = gravity_and_spread_of(acc_windows)
    out = np.empty((len(gravity), CONTEXT_COLUMNS))
    out[:, UPRIGHT] = context.upright.references(gravity, spread > MOVING_STD, hop_s)
    out[:, LAST_POSTURE] = context.last_posture.references(gravity, spread, hop_s)
    return out


def unknown_contexts(n_windows: int) -> np.ndarray:
    """Context rows for windows whose stream says nothing (no accelerometer)."""
    return np.full((n_windows, CONTEXT_COLUMNS), np.nan)
