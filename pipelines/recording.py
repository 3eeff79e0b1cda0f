"""A recording in the canonical form of the data contract, plus what was rejected from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class RejectedRows:
    """Rows left out of a recording, with why: reported in the manifest, never silent."""

    reason: str  # e.g. "NaN in gx", "non-monotonic timestamp", "duplicate timestamp"
    count: int
    rows: list[int] = field(default_factory=list)  # source row numbers (1-based data rows), first 20

    def to_dict(self) -> dict:
        return {"reason": self.reason, "count": self.count, "rows": self.rows}


@dataclass
class Recording:
    """One continuous recording.

    ``frame`` holds ``timestamp`` (s, float, strictly increasing), the channels present
    (canonical names ``ax..gz``, m/s^2 and rad/s) and optional ``label`` / ``subject``
    string columns. ``name`` identifies the recording inside a dataset.
    """

    name: str
    frame: "pd.DataFrame"
    source: str
    rejected: list[RejectedRows] = field(default_factory=list)

    @property
    def channels(self) -> tuple[str, ...]:
        from features.contract import ALL_CHANNELS

        return tuple(c for c in ALL_CHANNELS if c in self.frame.columns)

    @property
    def duration_s(self) -> float:
        t = self.frame["timestamp"]
        return float(t.iloc[-1] - t.iloc[0]) if len(t) > 1 else 0.0
