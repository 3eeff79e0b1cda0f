"""What keeps a stream whole across reconnects: the resend buffer and the reconnect backoff."""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from posture_cli.stream.chunks import Chunk

# Samples kept while the server is unreachable: 10 minutes at 50 Hz (~0.7 MB as float32).
# When full, the oldest unsent samples are dropped first and counted.
RESEND_BUFFER_SAMPLES = 30_000


class Backoff:
    """Exponential backoff with jitter: attempt k waits a uniform time in [d/2, d], d = min(max, first * 2^k).

    The jitter spreads the reconnects of many clients that lost the same server.
    """

    def __init__(self, first_s: float = 0.25, max_s: float = 5.0, rng: random.Random | None = None) -> None:
        self.first_s, self.max_s = first_s, max_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.first_s * 2.0**self.attempt)
        self.attempt += 1
        return self._rng.uniform(ceiling / 2.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class ResendBuffer:
    """Chunks on the stream's timeline (every ``t0`` set): unsent ones, and sent ones not yet confirmed.

    A prediction for the window starting at s confirms every sample before s + hop (the
    server needs none of them again). On a lost connection the unconfirmed samples go back
    to the front, so the next session starts exactly at the next window of the old one:
    no window is lost and none is predicted twice. At most ``max_samples`` are held;
    beyond that the oldest go first: sent ones silently (they most likely arrived), unsent
    ones counted in ``dropped``.
    """

    def __init__(self, rate_hz: float, max_samples: int = RESEND_BUFFER_SAMPLES) -> None:
        self.rate_hz, self.max_samples = rate_hz, max(1, max_samples)
        self._unsent: deque[Chunk] = deque()
        self._unconfirmed: deque[Chunk] = deque()
        self.unsent_samples = self.unconfirmed_samples = 0
        self.dropped = 0

    def end(self, chunk: Chunk) -> float:
        assert chunk.t0 is not None
        return chunk.t0 + len(chunk) / self.rate_hz

    def put(self, chunk: Chunk) -> None:
        self._unsent.append(chunk)
        self.unsent_samples += len(chunk)
        self._bound()

    def take(self, max_rows: int) -> Chunk | None:
        """The oldest unsent rows, contiguous chunks joined, at most ``max_rows``; None when empty."""
        if not self._unsent:
            return None
        parts = [self._pop_unsent(max_rows)]
        rows = len(parts[0])
        while self._unsent and rows < max_rows and self._contiguous(parts[-1], self._unsent[0]):
            parts.append(self._pop_unsent(max_rows - rows))
            rows += len(parts[-1])
        return parts[0] if len(parts) == 1 else Chunk(np.concatenate([p.values for p in parts]), parts[0].t0)

    def sent(self, chunk: Chunk) -> None:
        self._unconfirmed.append(chunk)
        self.unconfirmed_samples += len(chunk)
        self._bound()

    def unsend(self, chunk: Chunk) -> None:
        """A chunk whose send failed goes back to the front."""
        self._unsent.appendleft(chunk)
        self.unsent_samples += len(chunk)

    def confirm(self, before: float) -> None:
        """Forget sent samples earlier than ``before`` (s on the stream's timeline)."""
        while self._unconfirmed:
            head = self._unconfirmed[0]
            keep = self._rows_from(head, before)
            if keep == len(head):
                return
            self._unconfirmed.popleft()
            self.unconfirmed_samples -= len(head)
            if keep:
                self._unconfirmed.appendleft(self.tail(head, keep))
                self.unconfirmed_samples += keep
                return

    def rewind(self) -> None:
        """The connection is gone: what it did not confirm is sent again first."""
        while self._unconfirmed:
            self.unsend(self._unconfirmed.pop())
        self.unconfirmed_samples = 0

    def find_sent(self, t: float) -> Chunk | None:
        """The unconfirmed chunk holding the sample at time ``t`` (for round-trip times)."""
        for chunk in self._unconfirmed:
            if chunk.t0 is not None and chunk.t0 - 0.5 / self.rate_hz <= t < self.end(chunk):
                return chunk
        return None

    @property
    def pending(self) -> int:
        return self.unsent_samples

    @property
    def held(self) -> int:
        return self.unsent_samples + self.unconfirmed_samples

    def _pop_unsent(self, max_rows: int) -> Chunk:
        head = self._unsent.popleft()
        self.unsent_samples -= len(head)
        if len(head) > max_rows:
            self.unsend(self.tail(head, len(head) - max_rows))
            head = Chunk(head.values[:max_rows], head.t0)
        return head

    def _contiguous(self, a: Chunk, b: Chunk) -> bool:
        return b.t0 is not None and abs(b.t0 - self.end(a)) < 0.5 / self.rate_hz

    def _rows_from(self, chunk: Chunk, t: float) -> int:
        """How many of the chunk's last rows are at or after ``t``."""
        assert chunk.t0 is not None
        first_kept = int(np.ceil((t - chunk.t0) * self.rate_hz - 0.5))
        return len(chunk) - min(len(chunk), max(0, first_kept))

    def tail(self, chunk: Chunk, rows: int) -> Chunk:
        """The last ``rows`` rows of ``chunk``."""
        assert chunk.t0 is not None
        skip = len(chunk) - rows
        return Chunk(chunk.values[skip:], chunk.t0 + skip / self.rate_hz, chunk.sent_at)

    def _bound(self) -> None:
        while self.held > self.max_samples:
            source = self._unconfirmed if self._unconfirmed else self._unsent
            excess = self.held - self.max_samples
            head = source.popleft()
            cut = min(excess, len(head))
            if source is self._unconfirmed:
                self.unconfirmed_samples -= cut
            else:
                self.unsent_samples -= cut
                self.dropped += cut
            if cut < len(head):
                source.appendleft(self.tail(head, len(head) - cut))
