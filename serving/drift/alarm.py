"""Scores against their thresholds, and the alarm: some score above its threshold for a
sustained time (``drift_sustain_s``), cleared when every score is back below.

A single noisy scoring never raises it, and a shift must outlast the sustain time, so an
alarm means the live data have moved, not that one busy minute looked odd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from features.drift_profile import DriftScores

FEATURE, PREDICTION, CONFIDENCE = "feature", "prediction", "confidence"


@dataclass(frozen=True)
class Thresholds:
    feature_psi: float  # PSI of one tracked feature
    prediction_js: float  # Jensen-Shannon distance of predicted-label shares from the class prior
    confidence_drop: float  # mean top probability below the out-of-fold one


@dataclass(frozen=True)
class Score:
    kind: str  # FEATURE | PREDICTION | CONFIDENCE
    feature: str  # the feature's name for FEATURE, else ""
    value: float  # NaN when the window holds too few finite values to say
    threshold: float

    @property
    def above(self) -> bool:
        return not math.isnan(self.value) and self.value > self.threshold


def scores_of(result: DriftScores, thresholds: Thresholds) -> list[Score]:
    scores = [Score(FEATURE, name, value, thresholds.feature_psi) for name, value in result.feature_psi.items()]
    scores.append(Score(PREDICTION, "", result.prediction_js, thresholds.prediction_js))
    scores.append(Score(CONFIDENCE, "", result.confidence_drop, thresholds.confidence_drop))
    return scores


class SustainedAlarm:
    """One model version's alarm state, updated at each scoring with the scoring's time."""

    def __init__(self, sustain_s: float) -> None:
        self.sustain_s = sustain_s
        self.raised = False
        self._since: dict[tuple[str, str], float] = {}  # score -> when it went above, while it stays

    def update(self, scores: list[Score], now: float) -> Literal["raised", "cleared"] | None:
        """The transition this scoring makes, if any."""
        self._since = {key: self._since.get(key, now) for key in ((s.kind, s.feature) for s in scores if s.above)}
        if not self.raised and self.sustained(now):
            self.raised = True
            return "raised"
        if self.raised and not self._since:
            self.raised = False
            return "cleared"
        return None

    def sustained(self, now: float) -> list[tuple[str, str]]:
        """The scores that have stayed above their thresholds for the sustain time."""
        return [key for key, since in self._since.items() if now - since >= self.sustain_s]
