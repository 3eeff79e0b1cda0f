"""Events as the protocol's messages (docs/protocol.md): the dicts that WebSocket text frames,
Sensor Logger push answers and MQTT publishes carry as JSON."""

from __future__ import annotations

from typing import Any

from serving.stream.events import Event, Prediction, Ready, RecordingState, Rejected
from serving.stream.protocol import error_message, prediction_message, ready_message, recording_message


def message_of(event: Event) -> dict[str, Any]:
    if isinstance(event, Prediction):  # first: nearly every event is one
        return prediction_message(
            session_id=event.session_id,
            window_start=event.window_start,
            window_end=event.window_end,
            classes=event.classes,
            probabilities=event.probabilities,
            smoothed=event.smoothed,
            model_version=event.model_version,
            latency_ms=event.latency_ms,
        )
    if isinstance(event, Rejected):
        return error_message(event.code, event.detail)
    if isinstance(event, Ready):
        return ready_message(event.session_id, event.model, event.rate_hz, event.channels, event.limits, event.next_t)
    if isinstance(event, RecordingState):
        return recording_message(event.active, event.label, event.subject, event.seconds, event.files)
    raise TypeError(f"not a session event: {event!r}")
