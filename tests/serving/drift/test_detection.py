"""Drift detection on the sample model (trained by `posture train`, with its reference profile):
shifted streams from the sample generator raise the alarm within a stated number of scorings;
new wearers of the training population raise none over a stated long stream.

The streams are fleets of 8 wearers streaming at once (their windows interleaved), as a
server's rolling window sees them. The thresholds are ServerSettings' defaults; the sustain
time is 120 s (two scorings at 8 devices, a hop of 1 s and a step of 500 windows).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from pipelines.registry import LoadedModel
from pipelines.synthetic_shifts import shifted_dataset
from serving.drift.monitor import DriftMonitor, Scoring
from serving.drift.replay import StreamClock, feed, fleet_streams
from serving.metrics import ServerMetrics
from serving.model_holder import ServedModel, read_drift_profile
from serving.settings import ServerSettings
from serving.store.records import DriftRecord

DEVICES = 8
SETTINGS = {"drift_sustain_s": 120.0}
# Stated bounds: an alarm within this many scorings (of 500 windows) after the shift starts,
MAX_SCORINGS_TO_ALARM = 8
# and none over this many windows of new wearers from the training population (~2 x 8 x 560).
MIN_SAME_DISTRIBUTION_WINDOWS = 8000


@pytest.fixture(scope="module")
def served(champion: LoadedModel) -> ServedModel:
    profile = read_drift_profile(champion)
    assert profile is not None, "posture train wrote no drift profile"
    return ServedModel(champion, champion.engine, profile)


def fleet(served: ServedModel, shift: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return fleet_streams(served, shifted_dataset(shift, DEVICES, seed=seed))


def replay(
    served: ServedModel, *streams: tuple[np.ndarray, np.ndarray]
) -> tuple[list[list[Scoring]], list[DriftRecord]]:
    clock, rows = StreamClock(), []
    monitor = DriftMonitor(ServerSettings(**SETTINGS), ServerMetrics(), rows.extend, None, clock)

    async def run() -> list[list[Scoring]]:
        return [await feed(monitor, served, *stream, clock, devices=DEVICES) for stream in streams]

    return asyncio.run(run()), rows


@pytest.fixture(scope="module")
def same(served: ServedModel) -> tuple[np.ndarray, np.ndarray]:
    return fleet(served, "none", seed=11)


def test_new_wearers_of_the_training_population_raise_no_alarm(
    served: ServedModel, same: tuple[np.ndarray, np.ndarray]
) -> None:
    more = fleet(served, "none", seed=12)
    (first, second), rows = replay(served, same, more)
    scorings = first + second
    assert len(same[0]) + len(more[0]) >= MIN_SAME_DISTRIBUTION_WINDOWS
    assert len(scorings) >= 12
    assert [s for s in scorings if s.alarm] == []
    assert len(rows) == len(scorings) * (len(served.drift_profile.features) + 2)  # type: ignore[union-attr]


@pytest.mark.parametrize("shift", ["rotated", "placement", "gait"])
def test_a_shifted_fleet_raises_the_alarm_within_the_stated_scorings(
    served: ServedModel, same: tuple[np.ndarray, np.ndarray], shift: str
) -> None:
    (before, after), rows = replay(served, same, fleet(served, shift, seed=21))
    assert before and not any(s.alarm for s in before)
    raised = [i for i, s in enumerate(after) if s.transition == "raised"]
    assert raised, f"{shift}: no alarm in {len(after)} scorings"
    assert raised[0] < MAX_SCORINGS_TO_ALARM, f"{shift}: alarm at scoring {raised[0] + 1}"
    assert any(r.alarm for r in rows)


def test_a_new_version_retires_the_old_ones_window_and_gauges(
    served: ServedModel, same: tuple[np.ndarray, np.ndarray]
) -> None:
    """After a retrain the alarm of the replaced version must not stay raised."""
    clock, metrics = StreamClock(), ServerMetrics()
    monitor = DriftMonitor(ServerSettings(drift_sustain_s=0.0), metrics, lambda rows: None, None, clock)
    rotated = fleet(served, "rotated", seed=21)
    scorings = asyncio.run(feed(monitor, served, *rotated, clock, devices=DEVICES))
    value = metrics.registry.get_sample_value
    assert scorings[-1].alarm and value("posture_drift_alarm", {"model_version": "1"}) == 1
    successor = ServedModel(replace(served.loaded, version="2"), served.engine, served.drift_profile)
    monitor.track(successor)
    assert value("posture_drift_alarm", {"model_version": "1"}) is None
    assert value("posture_drift_score", {"model_version": "1", "kind": "prediction", "feature": ""}) is None
    assert value("posture_drift_tracking", {"model_version": "2"}) == 1
    assert value("posture_drift_alarm", {"model_version": "2"}) == 0
    # A batch of the old version still in flight during the swap is ignored.
    assert asyncio.run(feed(monitor, served, *rotated, clock, devices=DEVICES)) == []
