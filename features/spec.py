"""The preprocessing spec a model carries, so training and serving cannot drift apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from features.contract import DEFAULT_HOP_S, DEFAULT_RATE_HZ, DEFAULT_WINDOW_S, ALL_CHANNELS
from features.errors import HopError, SpecError


@dataclass(frozen=True)
class WindowSpec:
    """How a recording becomes windows: sampling rate, window length and hop, channels.

    ``classes``, ``feature_set_version`` and ``transitions`` are filled in by training and
    travel with the model; predict and serve read them from the model, never from flags.
    ``transitions`` is the smoothing filter's (K x K) matrix in ``classes`` order
    (``features.smoothing``); empty for models trained before it.
    """

    rate_hz: float = DEFAULT_RATE_HZ
    window_s: float = DEFAULT_WINDOW_S
    hop_s: float = DEFAULT_HOP_S
    channels: tuple[str, ...] = ALL_CHANNELS
    feature_set_version: str = ""
    classes: tuple[str, ...] = field(default_factory=tuple)
    transitions: tuple[tuple[float, ...], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise SpecError(
                f"Sampling rate must be positive, got {self.rate_hz}.", "use a rate in Hz such as 50.", ("rate_hz",)
            )
        if self.window_samples < 2:
            raise SpecError(
                f"A window of {self.window_s} s at {self.rate_hz} Hz holds fewer than 2 samples.",
                "use a longer window or a higher rate.",
                ("window_s", "rate_hz"),
            )
        if self.hop_samples < 1 or self.hop_s > self.window_s:
            raise HopError(
                f"Hop {self.hop_s} s must be positive and at most the window ({self.window_s} s).",
                "use a hop between one sample (1/rate) and the window length.",
                ("hop_s",),
            )

    @cached_property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.rate_hz))

    @cached_property
    def hop_samples(self) -> int:
        return int(round(self.hop_s * self.rate_hz))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate_hz": self.rate_hz,
            "window_s": self.window_s,
            "hop_s": self.hop_s,
            "channels": list(self.channels),
            "feature_set_version": self.feature_set_version,
            "classes": list(self.classes),
            "transitions": [list(row) for row in self.transitions],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WindowSpec":
        return cls(
            rate_hz=float(data["rate_hz"]),
            window_s=float(data["window_s"]),
            hop_s=float(data["hop_s"]),
            channels=tuple(data["channels"]),
            feature_set_version=str(data.get("feature_set_version", "")),
            classes=tuple(data.get("classes", ())),
            transitions=tuple(tuple(float(v) for v in row) for row in data.get("transitions", ())),
        )
