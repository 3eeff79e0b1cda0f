"""Bounds on the work one input may cost, the same for a stream frame, a /v1/predict body
and a Sensor Logger push (docs/protocol.md, "Limits and close codes").

Resampling n rows at r Hz onto the model's grid makes about n * model_rate / r samples:
before these bounds, one frame of 1,000 rows after a hello with ``rate_hz`` 0.01 became
99,899 windows and rows, a parallel /healthz waited ~4 s and the server grew by ~700 MB.
So ``WorkLimits`` holds two bounds, both refused before anything is allocated:

- a rate floor, the model's rate / ``max_upsampling`` (5 Hz for a 50 Hz model): below it
  most samples of a window would be interpolated, not measured;
- a cap on the samples one input may add to the model's grid,
  ``max_samples_per_frame * max_upsampling`` (10,000: 200 s at 50 Hz), which also bounds
  what readings with sparse timestamps make of a Sensor Logger push.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.settings import ServerSettings

LIMIT_NAMES = "POSTURE_MAX_SAMPLES_PER_FRAME x POSTURE_MAX_UPSAMPLING"


@dataclass(frozen=True)
class WorkLimits:
    max_upsampling: float  # the model's rate over the lowest input rate accepted
    max_samples_per_frame: int  # rows one stream frame may carry

    @classmethod
    def of(cls, settings: ServerSettings) -> WorkLimits:
        return cls(settings.max_upsampling, settings.max_samples_per_frame)

    @property
    def max_grid_samples(self) -> int:
        """Samples one frame, request or push may add to the model's grid."""
        return int(self.max_samples_per_frame * self.max_upsampling)

    def min_rate_hz(self, model_rate_hz: float) -> float:
        return model_rate_hz / self.max_upsampling

    def rate_problem(self, rate_hz: float, model_rate_hz: float) -> str | None:
        """Why ``rate_hz`` is too low to resample onto the model's grid; None when it is not."""
        floor = self.min_rate_hz(model_rate_hz)
        if rate_hz >= floor:
            return None
        return (
            f"rate_hz {rate_hz:g} is below {floor:g} Hz, the model's {model_rate_hz:g} Hz / "
            f"{self.max_upsampling:g} (POSTURE_MAX_UPSAMPLING). Fix: sample at {floor:g} Hz or faster."
        )

    def grid_problem(self, samples: int, what: str) -> str | None:
        """Why ``what``, which makes ``samples`` samples on the model's grid, is refused; None when it is not."""
        if samples <= self.max_grid_samples:
            return None
        return (
            f"{what} makes {samples} samples on the model's grid; the limit is {self.max_grid_samples} ({LIMIT_NAMES})."
        )

    def tokens(self, grid_samples: int) -> int:
        """Rate-limit tokens of a frame: one per ``max_samples_per_frame`` samples it makes on the
        model's grid, at least one, so up-sampling buys no more work per token than full frames."""
        return max(1, math.ceil(grid_samples / self.max_samples_per_frame))
