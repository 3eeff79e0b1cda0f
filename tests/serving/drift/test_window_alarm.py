"""The rolling window's ring buffer, the sustained alarm, and the retrain trigger's rate limit."""

from __future__ import annotations

import asyncio

import numpy as np

from serving.drift.alarm import CONFIDENCE, FEATURE, Score, SustainedAlarm
from serving.drift.retrain_trigger import RetrainTrigger
from serving.drift.window import DriftWindow
from serving.metrics import ServerMetrics


def rows(first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Features whose column 2 and probabilities whose column 0 carry the row's number."""
    numbers = np.arange(first, first + n, dtype=np.float32)
    features = np.zeros((n, 4), dtype=np.float32)
    features[:, 2] = numbers
    return features, np.stack([numbers, -numbers], axis=1)


def test_the_window_keeps_the_newest_rows_across_wrap_arounds() -> None:
    window = DriftWindow(5, np.array([2]), 2)
    window.append(*rows(0, 3))
    assert (window.filled, window.appended) == (3, 3)
    assert sorted(window.snapshot()[0][:, 0]) == [0, 1, 2]
    window.append(*rows(3, 4))  # wraps: 3, 4 at the end, 5, 6 over 0, 1
    tracked, probabilities = window.snapshot()
    assert (window.filled, window.appended) == (5, 7)
    assert sorted(tracked[:, 0]) == [2, 3, 4, 5, 6]
    assert np.array_equal(tracked[:, 0], probabilities[:, 0]) and np.array_equal(probabilities[:, 1], -tracked[:, 0])
    window.append(*rows(7, 12))  # more than the window: the newest 5
    assert sorted(window.snapshot()[0][:, 0]) == [14, 15, 16, 17, 18]
    assert window.appended == 19


def score(value: float, kind: str = FEATURE, feature: str = "ax_mean") -> Score:
    return Score(kind, feature if kind == FEATURE else "", value, 1.0)


def test_the_alarm_needs_a_score_above_for_the_sustain_time_and_clears_when_all_are_below() -> None:
    alarm = SustainedAlarm(sustain_s=60.0)
    assert alarm.update([score(2.0)], now=0.0) is None  # above, not yet sustained
    assert alarm.update([score(0.5)], now=30.0) is None  # back below: the clock restarts
    assert alarm.update([score(2.0)], now=40.0) is None
    assert alarm.update([score(2.0)], now=90.0) is None  # 50 s
    assert alarm.update([score(2.0)], now=100.0) == "raised"  # 60 s
    assert alarm.sustained(100.0) == [(FEATURE, "ax_mean")]
    assert alarm.update([score(0.2), score(2.0, CONFIDENCE)], now=110.0) is None  # another score is above
    assert alarm.update([score(0.2), score(0.0, CONFIDENCE)], now=120.0) == "cleared"
    assert not alarm.raised


def test_a_score_without_a_verdict_is_never_above() -> None:
    alarm = SustainedAlarm(sustain_s=0.0)
    assert not score(float("nan")).above
    assert alarm.update([score(float("nan"))], now=0.0) is None
    assert alarm.update([score(1.5)], now=1.0) == "raised"  # sustain 0: the first scoring above


def test_the_trigger_starts_at_most_one_run_per_interval_and_retries_after_a_failure() -> None:
    now = [0.0]
    started: list[dict[str, object]] = []
    failures = [RuntimeError("API down")]

    def start(deployment: str, reason: dict[str, object]) -> str:
        if failures:
            raise failures.pop()
        started.append(reason)
        return f"run-{len(started)}"

    metrics = ServerMetrics()
    trigger = RetrainTrigger("retrain/retrain", 3600.0, metrics, start, clock=lambda: now[0])

    async def scenario() -> list[str | None]:
        runs = [await trigger.request({"at": 0})]  # fails: not counted against the interval
        now[0] = 10.0
        runs.append(await trigger.request({"at": 10}))
        now[0] = 3000.0
        runs.append(await trigger.request({"at": 3000}))  # rate limited
        now[0] = 3610.0
        runs.append(await trigger.request({"at": 3610}))
        return runs

    assert asyncio.run(scenario()) == [None, "run-1", None, "run-2"]
    assert started == [{"at": 10}, {"at": 3610}]
    value = metrics.registry.get_sample_value
    assert value("posture_drift_retrains_total", {"outcome": "started"}) == 2
    assert value("posture_drift_retrains_total", {"outcome": "rate_limited"}) == 1
    assert value("posture_drift_retrains_total", {"outcome": "failed"}) == 1


def test_a_server_without_a_prefect_api_only_logs() -> None:
    metrics = ServerMetrics()
    trigger = RetrainTrigger("retrain/retrain", 0.0, metrics, lambda d, r: None)
    assert asyncio.run(trigger.request({})) is None
    assert metrics.registry.get_sample_value("posture_drift_retrains_total", {"outcome": "no_api"}) == 1
