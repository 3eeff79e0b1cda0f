"""Drift tracking of every served model version: windows fed by the micro-batcher, scored
on a schedule (``run_forever``), published as gauges and store rows, alarmed when sustained.

The hot path is ``record``: one dict look-up and two slice copies into the version's ring
buffer per micro-batch. Everything else (histograms, PSI, the alarm, the store, Prefect)
happens in ``score_due``, every ``drift_check_interval_s``, for windows that are full and
have taken ``drift_step`` new predictions since their last scoring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from features.drift_profile import DriftProfile, DriftScores, score_window
from features.feature_sets import feature_names_for
from serving.drift.alarm import CONFIDENCE, FEATURE, PREDICTION, Score, SustainedAlarm, Thresholds, scores_of
from serving.drift.retrain_trigger import RetrainTrigger
from serving.drift.window import DriftWindow
from serving.logs import log_event
from serving.metrics import ServerMetrics
from serving.model_holder import ServedModel
from serving.settings import ServerSettings
from serving.store.records import DriftRecord

# A feature scores NaN (no verdict) when fewer of the window's values are finite: the
# context features of imu-stats-3/4 are NaN until a stream has learned its wearer's upright.
MIN_FINITE_SHARE = 0.5


@dataclass
class _Tracked:
    served: ServedModel
    profile: DriftProfile
    window: DriftWindow
    class_order: np.ndarray  # engine's probability columns in profile.classes order
    alarm: SustainedAlarm
    scored_at: int = 0  # window.appended at the last scoring


@dataclass
class Scoring:
    """What one scoring of one version found (returned for tests and the benchmark)."""

    version: str
    appended: int  # windows the version's window had taken in all when scored
    result: DriftScores
    scores: list[Score]
    transition: str | None  # "raised" | "cleared" | None
    alarm: bool
    retrain_run: str | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))


class DriftMonitor:
    def __init__(
        self,
        settings: ServerSettings,
        metrics: ServerMetrics,
        write: Callable[[list[DriftRecord]], None],
        trigger: RetrainTrigger | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size, self.step = settings.drift_window, settings.drift_step
        self.interval_s, self.sustain_s = settings.drift_check_interval_s, settings.drift_sustain_s
        self.thresholds = Thresholds(
            settings.drift_psi_threshold, settings.drift_prediction_threshold, settings.drift_confidence_threshold
        )
        self.metrics, self._write, self._trigger, self._clock = metrics, write, trigger, clock
        self._tracked: dict[ServedModel, _Tracked | None] = {}  # None: this version is not tracked

    def record(self, served: ServedModel, features: np.ndarray, probabilities: np.ndarray) -> None:
        """Hot path, once per micro-batch: add the batch to the version's window."""
        try:
            tracked = self._tracked[served]
        except KeyError:  # the version's first batch
            tracked = self.track(served)
        if tracked is not None:
            try:
                tracked.window.append(features, probabilities)
            except (IndexError, ValueError) as err:  # a mismatched version: stop tracking it, keep predicting
                log_event("drift_tracking_off", logging.ERROR, version=served.version, reason=str(err))
                self.metrics.drift_tracking.labels(served.version).set(0)
                self._tracked[served] = None

    def track(self, served: ServedModel) -> _Tracked | None:
        """Open the version's window; says once (log, gauge) when the version cannot be tracked."""
        if served in self._tracked:
            return self._tracked[served]
        self._retire_others(served)
        profile, why = served.drift_profile, ""
        if profile is None:
            why = "the version carries no drift profile (trained before posture wrote one); retrain to add it"
        elif set(profile.classes) != set(served.classes):
            why = f"its profile's classes {list(profile.classes)} differ from the model's {list(served.classes)}"
        elif len(profile.features) and profile.columns.max() >= len(feature_names_for(served.spec)):
            why = "its profile names feature columns the model does not have"
        if profile is None or why:
            log_event("drift_tracking_off", logging.WARNING, model=served.name, version=served.version, reason=why)
            self.metrics.drift_tracking.labels(served.version).set(0)
            self._tracked[served] = None
            return None
        order = np.array([list(served.classes).index(c) for c in profile.classes])
        window = DriftWindow(self.size, profile.columns, len(served.classes))
        tracked = _Tracked(served, profile, window, order, SustainedAlarm(self.sustain_s))
        self._tracked[served] = tracked
        self.metrics.drift_tracking.labels(served.version).set(1)
        self.metrics.drift_alarm.labels(served.version).set(0)
        log_event("drift_tracking_on", model=served.name, version=served.version, features=len(profile.features))
        return tracked

    def _retire_others(self, served: ServedModel) -> None:
        """A new version is served: stop tracking the others and take their gauges away, so an
        alarm of the version a retrain replaced does not stay raised. Their late batches
        (in flight during the swap) find ``None`` and are ignored."""
        for other, tracked in list(self._tracked.items()):
            if other.version == served.version:
                continue
            version = other.version
            scored = [(FEATURE, f.name) for f in tracked.profile.features] if tracked is not None else []
            for labels in [(version, kind, feature) for kind, feature in scored + [(PREDICTION, ""), (CONFIDENCE, "")]]:
                with contextlib.suppress(KeyError):
                    self.metrics.drift_score.remove(*labels)
            for gauge in (self.metrics.drift_alarm, self.metrics.drift_tracking):
                with contextlib.suppress(KeyError):
                    gauge.remove(version)
            if tracked is not None:
                self._tracked[other] = None
                log_event("drift_tracking_retired", model=other.name, version=version, replaced_by=served.version)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.score_due()
            except Exception as err:  # a scoring failure must not end drift tracking
                log_event("drift_scoring_failed", logging.WARNING, error=str(err))

    async def score_due(self) -> list[Scoring]:
        """Score every full window that has taken ``step`` new predictions since its last scoring."""
        done = []
        for tracked in [t for t in self._tracked.values() if t is not None]:
            window = tracked.window
            if window.filled < window.size or window.appended - tracked.scored_at < self.step:
                continue
            tracked.scored_at = window.appended
            values, probabilities = window.snapshot()  # on the loop: the batcher appends there too
            result = await asyncio.to_thread(score_of, tracked, values, probabilities)
            done.append(await self._publish(tracked, result))
        return done

    async def _publish(self, tracked: _Tracked, result: DriftScores) -> Scoring:
        served, version = tracked.served, tracked.served.version
        scores = scores_of(result, self.thresholds)
        now = self._clock()
        transition = tracked.alarm.update(scores, now)
        alarm = tracked.alarm.raised
        for score in scores:
            self.metrics.drift_score.labels(version, score.kind, score.feature).set(score.value)
        self.metrics.drift_alarm.labels(version).set(int(alarm))
        scoring = Scoring(version, tracked.scored_at, result, scores, transition, alarm)
        self._write(self._records(tracked, scoring))
        culprits = [f"{kind}:{feature}" if feature else kind for kind, feature in tracked.alarm.sustained(now)]
        if transition == "raised":
            log_event("drift_alarm", logging.WARNING, model=served.name, version=version, scores=culprits)
        elif transition == "cleared":
            log_event("drift_cleared", model=served.name, version=version)
        if alarm and self._trigger is not None:
            reason = {"model": served.name, "version": version, "scores": culprits}
            scoring.retrain_run = await self._trigger.request(reason)
        return scoring

    def _records(self, tracked: _Tracked, scoring: Scoring) -> list[DriftRecord]:
        served, bins = tracked.served, {f.name: f for f in tracked.profile.features}
        return [
            DriftRecord(
                time=scoring.time,
                model_name=served.name,
                model_version=served.version,
                kind=score.kind,
                feature=score.feature,
                score=score.value,
                threshold=score.threshold,
                alarm=scoring.alarm,
                windows=scoring.result.windows,
                bins={
                    "edges": bins[score.feature].edges.tolist(),
                    "reference": bins[score.feature].reference.tolist(),
                    "live": scoring.result.live_shares[score.feature].tolist(),
                }
                if score.kind == FEATURE
                else None,
            )
            for score in scoring.scores
        ]


def score_of(tracked: _Tracked, values: np.ndarray, probabilities: np.ndarray) -> DriftScores:
    """Scores of a window snapshot; features with too few finite values score NaN."""
    result = score_window(tracked.profile, values, probabilities[:, tracked.class_order])
    finite = np.isfinite(values).mean(axis=0) if len(values) else np.zeros(values.shape[1])
    for share, bins in zip(finite, tracked.profile.features):
        if share < MIN_FINITE_SHARE:
            result.feature_psi[bins.name] = float("nan")
    return result
