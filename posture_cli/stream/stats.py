"""What a stream has done so far: the live view's numbers and the closing summary."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HISTORY = 12  # labels shown in the view's history
RATE_WINDOW_S = 5.0  # frames/s is measured over this many seconds
LATENCIES_KEPT = 2000


@dataclass
class StreamStats:
    device: str
    url: str
    started: float = field(default_factory=time.monotonic)
    state: str = "connecting"  # connecting | streaming | reconnecting in 1.2 s | closed
    session_id: str | None = None
    model: dict[str, Any] = field(default_factory=dict)
    frames: int = 0
    samples: int = 0
    predictions: int = 0
    errors: int = 0
    last_error: str = ""
    reconnects: int = 0
    reconnect_s: list[float] = field(default_factory=list)  # connection lost -> next session ready
    last_disconnect: str = ""  # why the last connection failed or ended
    dropped: int = 0
    pending: int = 0
    malformed: int = 0
    last_malformed: str = ""
    last: dict[str, Any] | None = None  # the latest prediction message
    recording: dict[str, Any] | None = None  # the latest recording message (posture stream --record)
    history: deque[str] = field(default_factory=lambda: deque(maxlen=HISTORY))
    labels: Counter[str] = field(default_factory=Counter)
    rtt_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCIES_KEPT))
    _sends: deque[float] = field(default_factory=deque)
    _lost_at: float | None = None

    def on_ready(self, message: dict[str, Any]) -> None:
        self.session_id, self.model, self.state = message.get("session_id"), message.get("model") or {}, "streaming"
        if self._lost_at is not None:
            self.reconnects += 1
            self.reconnect_s.append(time.monotonic() - self._lost_at)
            self._lost_at = None

    def on_lost(self) -> None:
        """A connection failed or ended; only one that had a session makes the next one a reconnect."""
        if self._lost_at is None and self.session_id is not None:
            self._lost_at = time.monotonic()

    def on_sent(self, rows: int) -> None:
        now = time.monotonic()
        self.frames += 1
        self.samples += rows
        self._sends.append(now)
        while self._sends and self._sends[0] < now - RATE_WINDOW_S:
            self._sends.popleft()

    def on_prediction(self, message: dict[str, Any], rtt_ms: float | None) -> None:
        self.predictions += 1
        self.last = message
        self.labels[message["label"]] += 1
        self.history.append(message.get("smoothed_label") or message["label"])
        if rtt_ms is not None:
            self.rtt_ms.append(rtt_ms)

    def on_recording(self, message: dict[str, Any]) -> None:
        self.recording = message

    def on_error(self, detail: str) -> None:
        self.errors += 1
        self.last_error = detail

    @property
    def hop_s(self) -> float:
        return float((self.model.get("spec") or {}).get("hop_s", 1.0))

    @property
    def frames_per_s(self) -> float:
        now = time.monotonic()
        recent = [t for t in self._sends if t >= now - RATE_WINDOW_S]
        span = min(RATE_WINDOW_S, now - self.started)
        return len(recent) / span if span > 0 else 0.0

    def rtt_percentile(self, q: float) -> float | None:
        return float(np.percentile(list(self.rtt_ms), q)) if self.rtt_ms else None

    def summary(self) -> dict[str, Any]:
        """The closing summary: also what ``--json`` prints on stderr at the end."""
        duration = time.monotonic() - self.started
        return {
            "type": "summary",
            "device": self.device,
            "duration_s": round(duration, 2),
            "frames": self.frames,
            "samples": self.samples,
            "frames_per_s": round(self.frames / duration, 2) if duration > 0 else 0.0,
            "predictions": self.predictions,
            "seconds_per_label": {label: round(count * self.hop_s, 1) for label, count in self.labels.most_common()},
            "errors": self.errors,
            "last_error": self.last_error or None,
            "reconnects": self.reconnects,
            "reconnect_s": [round(s, 2) for s in self.reconnect_s],
            "last_disconnect": self.last_disconnect or None,
            "dropped_samples": self.dropped,
            "malformed_lines": self.malformed,
            "rtt_ms_p50": _round(self.rtt_percentile(50)),
            "rtt_ms_p95": _round(self.rtt_percentile(95)),
            "recorded_s": (self.recording or {}).get("seconds"),
            "recorded_files": (self.recording or {}).get("files"),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
