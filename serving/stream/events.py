"""What a stream session gives back, whatever carried its samples in.

Plain values: the WebSocket adapter turns them into the JSON messages of docs/protocol.md,
the Sensor Logger push into its HTTP answer, and the MQTT bridge into publishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Ready:
    """The session is configured: its id, the model, the layout in force, the limits told to the
    client; ``next_t`` (the next sample expected) when an earlier session was resumed."""

    session_id: str
    model: dict[str, Any]
    rate_hz: float
    channels: tuple[str, ...]
    limits: dict[str, float]
    next_t: float | None


@dataclass(frozen=True, slots=True)
class Prediction:
    """One completed window: raw and causally smoothed probabilities, in ``classes`` order."""

    session_id: str
    window_start: float
    window_end: float
    classes: tuple[str, ...]
    probabilities: list[float]
    smoothed: list[float]
    model_version: str | None
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """A frame the session refused; the session goes on. ``code`` is stable, ``detail`` human."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class RecordingState:
    """The session's recording: on or off, its label and subject, seconds per label, files written."""

    active: bool
    label: str | None
    subject: str
    seconds: dict[str, float]
    files: int


Event = Ready | Prediction | Rejected | RecordingState


class SessionClosed(Exception):
    """The session must end with this close code (flooding, oversize, shutdown, a model it cannot use)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason
