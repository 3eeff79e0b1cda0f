"""The inference engine (ONNX Runtime vs the sklearn forest) and the micro-batcher."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from features.feature_sets import featurize, window_contexts
from features.spec import WindowSpec
from features.windows import sliding_windows
from pipelines.inference import build_engine
from pipelines.registry import LoadedModel
from serving.batcher import BatcherClosed, MicroBatcher
from serving.metrics import ServerMetrics
from serving.model_holder import ServedModel
from serving.store.model_stats import ServedStats
from tests.serving.serving_support import CHANNELS, recording

SPEC = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0, channels=tuple(CHANNELS), classes=("a", "b", "c"))


def test_onnx_and_sklearn_give_the_same_probabilities(champion: LoadedModel, trained_home: Path) -> None:
    samples = recording(trained_home, "s02-mixed-1")[CHANNELS].to_numpy(np.float32)
    windows = sliding_windows(samples, champion.spec.window_samples, champion.spec.hop_samples)
    features = featurize(windows, champion.spec, window_contexts(windows, champion.spec))
    onnx, forest = build_engine(champion), build_engine(champion, prefer_onnx=False)
    assert (onnx.kind, forest.kind) == ("onnx", "sklearn")
    assert onnx.classes == forest.classes == tuple(str(c) for c in champion.estimator.classes_)
    np.testing.assert_allclose(onnx.predict_proba(features), forest.predict_proba(features), atol=1e-5)
    one_row = onnx.predict_proba(features[:1])  # the serving case: a single window
    np.testing.assert_allclose(one_row, forest.predict_proba(features[:1]), atol=1e-5)


class CountingEngine:
    """Probabilities from the first feature (the window mean of ax): checkable, and counts calls."""

    kind = "onnx"
    classes = ("a", "b", "c")

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[int] = []
        self.fail = fail

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        self.batches.append(len(features))
        if self.fail:
            raise ValueError("engine broke")
        return np.column_stack([features[:, 0], -features[:, 0], np.zeros(len(features))])


def served(engine: CountingEngine, version: str = "1") -> ServedModel:
    loaded = SimpleNamespace(
        spec=SPEC, name="m", version=version, alias=None, uri="test", loaded_at=datetime.now(timezone.utc)
    )
    return ServedModel(loaded, engine)  # type: ignore[arg-type]


def submit(batcher: Any, windows: np.ndarray, model: ServedModel) -> Any:
    """The batcher's submit for windows of a stream with no upright known yet."""
    return batcher.submit(windows, np.full((len(windows), 3), np.nan), model)


def windows_with_mean(*means: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = rng.normal(size=(len(means), 100, 6)).astype(np.float32)
    out[:, :, 0] += np.asarray(means, dtype=np.float32)[:, None] - out[:, :, 0].mean(axis=1, keepdims=True)
    return out


def test_windows_from_many_submitters_form_one_batch_and_come_back_to_each() -> None:
    async def scenario() -> None:
        engine = CountingEngine()
        model = served(engine)
        batcher = MicroBatcher(ServerMetrics(), tick_s=0.05, max_windows=1024)
        batcher.start()
        results = await asyncio.gather(*(submit(batcher, windows_with_mean(i, i + 0.5), model) for i in range(20)))
        await batcher.close()
        assert engine.batches == [40]  # one featurize + predict for all twenty submitters
        for i, probabilities in enumerate(results):
            np.testing.assert_allclose(probabilities[:, 0], [i, i + 0.5], atol=1e-4)

    asyncio.run(scenario())


def test_batches_are_bounded_and_a_lone_window_is_not_held_for_the_tick() -> None:
    async def scenario() -> None:
        engine = CountingEngine()
        model = served(engine)
        batcher = MicroBatcher(ServerMetrics(), tick_s=5.0, max_windows=8)
        batcher.start()
        started = asyncio.get_running_loop().time()
        await submit(batcher, windows_with_mean(1.0), model)
        assert asyncio.get_running_loop().time() - started < 1.0  # nothing else was runnable
        big = await submit(batcher, windows_with_mean(*range(20)), model)
        await batcher.close()
        assert len(big) == 20 and max(engine.batches) <= 8

    asyncio.run(scenario())


def test_an_engine_error_reaches_each_submitter_and_the_batcher_goes_on() -> None:
    async def scenario() -> None:
        broken, healthy = served(CountingEngine(fail=True), "1"), served(CountingEngine(), "2")
        batcher = MicroBatcher(ServerMetrics(), tick_s=0.01)
        batcher.start()
        outcomes = await asyncio.gather(
            submit(batcher, windows_with_mean(1.0), broken),
            submit(batcher, windows_with_mean(2.0), healthy),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], ValueError)
        np.testing.assert_allclose(outcomes[1][:, 0], [2.0], atol=1e-4)  # the other model's group still ran
        assert (await submit(batcher, windows_with_mean(3.0), healthy))[0, 0] == pytest.approx(3.0, abs=1e-4)
        await batcher.close()
        with pytest.raises(BatcherClosed):
            await submit(batcher, windows_with_mean(1.0), healthy)

    asyncio.run(scenario())


def test_predict_now_bounds_each_call_and_gives_each_part_its_own_rows_or_its_models_error() -> None:
    """The lane's call: parts of several streams, predicted at once in calls of at most
    ``max_windows``; a part whose model fails gets the error, the others their rows."""

    async def scenario() -> None:
        engine, broken = CountingEngine(), served(CountingEngine(fail=True), "2")
        model = served(engine)
        batcher = MicroBatcher(ServerMetrics(), max_windows=4)
        means = [(1.0, 2.0), (3.0,), (4.0, 5.0, 6.0), (7.0,), (8.0, 9.0)]
        parts = [SimpleNamespace(windows=windows_with_mean(*m), contexts=np.full((len(m), 3), np.nan)) for m in means]
        for part in parts:
            part.served = model
        parts.insert(
            2, SimpleNamespace(windows=windows_with_mean(0.5), contexts=np.full((1, 3), np.nan), served=broken)
        )
        results = batcher.predict_now(parts)
        assert engine.batches == [3, 4, 2]  # consecutive parts, at most 4 windows a call
        assert isinstance(results.pop(2), ValueError)
        for m, probabilities in zip(means, results):
            np.testing.assert_allclose(probabilities[:, 0], m, atol=1e-4)
        await batcher.close()
        with pytest.raises(BatcherClosed):
            batcher.predict_now(parts)

    asyncio.run(scenario())


def test_close_finishes_queued_windows_and_metrics_record_batches() -> None:
    async def scenario() -> None:
        metrics = ServerMetrics()
        batcher = MicroBatcher(metrics, tick_s=0.2)
        batcher.start()
        pending = asyncio.ensure_future(submit(batcher, windows_with_mean(4.0, 5.0), served(CountingEngine())))
        await asyncio.sleep(0)
        await batcher.close()
        assert pending.done() and pending.result().shape == (2, 3)
        text = metrics.render().decode()
        assert "batch_request_size_count 1.0" in text and "batch_request_queue 0.0" in text
        assert 'request_predict_seconds_count{engine="onnx",model_name="m",model_version="1"} 1.0' in text

    asyncio.run(scenario())


def test_served_stats_are_running_counts_per_version() -> None:
    stats = ServedStats()
    stats.add("posture", "1", ["sitting", "sitting", "lying"], [0.9, 0.7, 0.5], latency_ms=2.0)
    stats.add("posture", "2", ["walking"], [1.0], latency_ms=4.0)
    written: list[tuple] = []
    store = SimpleNamespace(add_model_metrics=lambda *args: written.append(args))
    stats.flush_to(store)
    assert len(written) == 2  # one metrics call per version
    stats.flush_to(store)
    assert len(written) == 2  # nothing new: nothing written
    by_version = {version: metrics for _, version, metrics, _ in written}
    assert by_version["1"]["served_predictions"] == 3
    assert by_version["1"]["served_mean_confidence"] == pytest.approx(0.7)
    assert by_version["1"]["served_share_sitting"] == pytest.approx(2 / 3)
    assert by_version["2"]["served_mean_latency_ms"] == 4.0
    assert {dataset for *_, dataset in written} == {"served"}
