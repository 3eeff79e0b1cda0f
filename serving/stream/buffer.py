"""Per-session stream state: samples in (the client's channels and rate), windows out (the model's).

``StreamWindower`` = channel selection -> ``features.streaming.StreamingWindower`` (the
resampling, windowing and segment timeline that ``posture predict`` uses in its
whole-recording form), plus what belongs to a session: after a resume, the rows a client
sends again are dropped; a ``t0`` that goes back in time is a ``bad_time`` frame error;
and a frame that would make more than ``max_samples`` samples on the model's grid is
refused before any is made (serving/stream/work_limits.py says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from features.errors import SpecError
from features.spec import WindowSpec
from features.streaming import BackInTime, StreamingWindower
from serving.stream.protocol import FrameError


class StreamWindower:
    """Frames in the client's channel order and rate -> the model's windows and start times."""

    def __init__(
        self,
        spec: WindowSpec,
        channels: Sequence[str],
        rate_hz: float,
        max_gap_s: float,
        max_samples: int | None = None,
    ) -> None:
        missing = [c for c in spec.channels if c not in channels]
        if missing:
            raise SpecError(f"the model needs channel(s) {', '.join(missing)} that the stream does not send.")
        self.spec, self.channels, self.rate_hz, self.max_gap_s = spec, tuple(channels), rate_hz, max_gap_s
        self.max_samples = max_samples  # per frame, on the model's grid; None: unbounded
        columns = [list(channels).index(c) for c in spec.channels]
        self._columns = None if columns == list(range(len(channels))) else columns  # None: already the model's order
        self._replay_until: float | None = None  # after a resume: rows before this time are duplicates
        self._stream = StreamingWindower(spec, rate_hz, max_gap_s)

    @property
    def next_t(self) -> float:
        """The time of the next sample this stream expects, on the session's timeline."""
        return self._stream.next_t

    def state(self) -> dict[str, Any]:
        """What a resumed session needs to cut the same windows (at most one window of samples)."""
        return self._stream.state()

    def restore(self, state: dict[str, Any]) -> None:
        """Continue a saved stream. A client may send again what it was unsure had arrived:
        until a frame reaches past ``next_t``, rows before it are dropped (by their ``t0``)."""
        self._stream.restore(state)
        self._replay_until = self._stream.next_t

    def push(self, values: np.ndarray, t0: float | None) -> tuple[np.ndarray, np.ndarray]:
        """(windows (m, window, channels), start times in seconds) completed by this frame."""
        if self._replay_until is not None:
            values, t0 = self._skip_replayed(values, t0)
        if t0 is not None and len(values):
            try:
                self._stream.place(t0)
            except BackInTime as err:
                raise FrameError("bad_time", err.problem) from None
        if self.max_samples is not None:
            self._check_work(len(values))
        return self._stream.extend(values if self._columns is None else values[:, self._columns])

    def grid_samples(self, rows: int) -> int:
        """How many samples a frame of ``rows`` rows makes on the model's grid."""
        return self._stream.grid_samples(rows)

    def _check_work(self, rows: int) -> None:
        """Refuse a frame that would make more than ``max_samples`` samples. Under the session's
        rate floor only a reload to a faster model, or a session resumed from before, gets here."""
        assert self.max_samples is not None
        made = self.grid_samples(rows)
        if made > self.max_samples:
            raise FrameError(
                "too_many_samples",
                f"{rows} rows at {self.rate_hz:g} Hz make {made} samples on the "
                f"model's {self.spec.rate_hz:g} Hz grid; the limit is "
                f"{self.max_samples} a frame. Fix: send fewer rows per frame.",
            )

    def _skip_replayed(self, values: np.ndarray, t0: float | None) -> tuple[np.ndarray, float | None]:
        """Drop the rows of a replayed frame that the resumed session already has."""
        if t0 is None:  # no times (binary frames): the client continues at next_t itself
            self._replay_until = None
            return values, t0
        assert self._replay_until is not None
        skip = max(0, round((self._replay_until - t0) * self.rate_hz))
        if skip < len(values):
            self._replay_until = None  # caught up: from here on, the usual timeline checks
        return values[skip:], t0 + skip / self.rate_hz
