"""What every sample source shares: the ``Chunk`` it yields, the ``Device`` protocol, and its error.

``posture_cli.stream.devices`` (simulator, replay, ``open_device``) and
``posture_cli.stream.serial_port`` build on this; the client and the resend buffer consume it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from features.errors import PostureError

CHUNK_ROWS = 10  # rows per chunk at real time: 5 frames/s at 50 Hz


class DeviceError(PostureError):
    """The device cannot be opened or read: a wrong path, port, format or option."""


@dataclass
class Chunk:
    """Consecutive rows (n, channels) float32; ``t0`` the first row's time in s, when the source knows it."""

    values: np.ndarray
    t0: float | None = None
    sent_at: float | None = field(default=None, compare=False)  # set by the client when it goes out

    def __len__(self) -> int:
        return len(self.values)


class Device(Protocol):
    label: str  # how the view names it
    live: bool  # samples happen now (sim, serial): when the buffer is full the oldest go; a replay waits instead
    channels: tuple[str, ...]
    rate_hz: float
    malformed: int  # input lines or rows that could not be read (serial), shown, never fatal
    last_malformed: str

    async def open(self) -> None: ...

    def chunks(self) -> AsyncIterator[Chunk]: ...

    def close(self) -> None: ...
