"""The stream session core without any transport: decoded frames in, events out.

No socket, no HTTP, no JSON: the session gets its collaborators (the model, the
micro-batcher, an in-memory store, limits, the state store) handed to it, as the WebSocket
adapter, the Sensor Logger push and MQTT hand them over.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipelines.predict import predict_recording
from pipelines.registry import LoadedModel
from pipelines.settings import Settings
from serving.batcher import MicroBatcher
from serving.edge.ratelimit import TokenBucketLimiter
from serving.edge.session_states import LocalSessionStore
from serving.metrics import ServerMetrics
from serving.model_holder import ServedModel, load_served
from serving.prediction_log import PredictionLog
from serving.settings import ServerSettings
from serving.store.model_stats import ServedStats
from serving.store.records import ConnectionRecord, WindowPredictions, window_prediction_rows
from serving.stream.direct import DirectSession
from serving.stream.events import Event, Prediction, Ready, Rejected, SessionClosed
from serving.stream.protocol import FrameError, Hello, Samples
from serving.stream.registry import SessionRegistry
from serving.stream.services import Peer, SessionServices
from serving.stream.session import Incoming, StreamSession
from serving.stream.work_limits import WorkLimits
from tests.serving.serving_support import CHANNELS, as_recording, recording

FRAME_CUTS = [7, 50, 13, 1, 120, 25]  # rows per frame, cycled: windows must not care where frames end


class MemoryStore:
    """The store's two writing calls, kept in lists: prediction rows as the store queues them."""

    def __init__(self) -> None:
        self.predictions: list[dict[str, Any]] = []
        self.connections: list[ConnectionRecord] = []

    def add_window_predictions(self, windows: WindowPredictions) -> None:
        self.predictions.extend(window_prediction_rows(windows, "test-key"))

    def add_connection(self, record: ConnectionRecord) -> None:
        self.connections.append(record)


class Fixed:
    def __init__(self, served: ServedModel) -> None:
        self.current = served


class ListOutlet:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed: tuple[int, str] | None = None

    async def send(self, event: Event) -> None:
        self.events.append(event)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


@pytest.fixture(scope="module")
def served(trained_home: Path) -> ServedModel:
    return load_served("models:/posture/1", Settings(home=trained_home))


def services(served: ServedModel, store: MemoryStore, rate_per_s: float = 0.0, burst: float = 1.0) -> SessionServices:
    settings = ServerSettings()
    metrics = ServerMetrics()
    batcher = MicroBatcher(metrics, 0.001, 256)
    batcher.start()
    limiter = TokenBucketLimiter(rate_per_s, burst)
    return SessionServices(
        models=Fixed(served),
        predictor=batcher,
        predictions=PredictionLog(store, ServedStats(), metrics),  # type: ignore[arg-type]
        connections=store,
        states=LocalSessionStore(),
        registry=SessionRegistry(),
        metrics=metrics,
        limiter=limiter,
        key_limiter=limiter,
        limits=WorkLimits.of(settings),
        max_frame_bytes=settings.max_frame_bytes,
        max_gap_s=settings.max_gap_s,
        ready_limits={},
    )


def decoded(frame: Hello | Samples) -> Incoming:
    return Incoming(0, "binary", lambda _channels: frame)


def cut(values: np.ndarray) -> list[Incoming]:
    frames, start, k = [], 0, 0
    while start < len(values):
        rows = FRAME_CUTS[k % len(FRAME_CUTS)]
        frames.append(decoded(Samples(values[start : start + rows], start / 50.0)))
        start, k = start + rows, k + 1
    return frames


def test_a_session_fed_decoded_frames_matches_posture_predict(
    served: ServedModel, champion: LoadedModel, trained_home: Path
) -> None:
    part = recording(trained_home, "s07-mixed-1", seconds=30.0)
    expected = predict_recording(champion, as_recording(part))
    smoothed = predict_recording(champion, as_recording(part), smooth=True)
    store, outlet = MemoryStore(), ListOutlet()
    values = part[CHANNELS].to_numpy().astype("<f4")

    async def run() -> StreamSession:
        session = StreamSession(services(served, store), outlet, Peer("mqtt", "10.0.0.9"))
        session.open()
        for frame in [decoded(Hello("board-7", 50.0, tuple(CHANNELS))), *cut(values)]:
            await session.receive(frame)
        session.disconnected(1000)
        await session.finish()
        return session

    session = asyncio.run(run())
    ready = [e for e in outlet.events if isinstance(e, Ready)]
    got = [e for e in outlet.events if isinstance(e, Prediction)]
    assert len(ready) == 1 and ready[0].channels == tuple(CHANNELS) and ready[0].next_t is None
    assert len(got) == len(expected.start) > 20
    np.testing.assert_allclose([e.probabilities for e in got], expected.probabilities, atol=1e-6)
    np.testing.assert_allclose([e.smoothed for e in got], smoothed.probabilities, atol=1e-6)
    np.testing.assert_allclose([e.window_start for e in got], expected.start, atol=1e-6)
    # Every prediction is a row, with the transport as its source; the connection row is closed.
    assert len(store.predictions) == len(got) == session.predictions
    assert {r["source"] for r in store.predictions} == {"mqtt"}
    assert [r["label"] for r in store.predictions] == list(expected.labels)
    closed = store.connections[-1]
    assert (closed.device_id, closed.client_address, closed.close_code) == ("board-7", "10.0.0.9", 1000)
    assert closed.frames == len(cut(values)) + 1 and closed.errors == 0


def test_a_rejected_frame_is_an_event_and_the_session_goes_on(served: ServedModel, trained_home: Path) -> None:
    values = recording(trained_home, "s07-mixed-1", seconds=6.0)[CHANNELS].to_numpy().astype("<f4")
    store, outlet = MemoryStore(), ListOutlet()

    def broken(_channels: int) -> Samples:
        raise FrameError("bad_frame", "samples must be rows of 6 numbers")

    async def run() -> None:
        session = StreamSession(services(served, store), outlet, Peer("ws", None))
        session.open()
        await session.receive(Incoming(10, "json", broken))
        await session.receive(decoded(Samples(values, 0.0)))
        assert session.errors == 1 and outlet.closed is None

    asyncio.run(run())
    kinds = [type(e) for e in outlet.events]
    assert kinds[0] is Rejected and Ready in kinds and kinds.count(Prediction) == len(store.predictions) > 0


def test_flooding_ends_the_session_with_1008(served: ServedModel) -> None:
    one_row = decoded(Samples(np.zeros((1, 6), dtype="<f4"), None))

    async def run() -> int:
        session = StreamSession(
            services(served, MemoryStore(), rate_per_s=0.001, burst=3), ListOutlet(), Peer("ws", None)
        )
        for sent in range(10):
            try:
                await session.receive(one_row)
            except SessionClosed as close:
                assert close.code == 1008
                return sent
        return -1

    assert asyncio.run(run()) == 3  # the burst, then refused


def test_a_direct_session_answers_per_call_and_closes_when_idle(served: ServedModel, trained_home: Path) -> None:
    values = recording(trained_home, "s07-mixed-1", seconds=6.0)[CHANNELS].to_numpy().astype("<f4")
    store = MemoryStore()
    ended: list[Any] = []

    async def run() -> tuple[list[Event], list[Event]]:
        direct = DirectSession(services(served, store), Peer("mqtt", None), idle_close_s=0.2, on_end=ended.append)
        async with direct.lock:
            first = await direct.feed([decoded(Hello("board-1", None, None))])
        async with direct.lock:
            second = await direct.feed(cut(values))
        for _ in range(100):  # idle: closed with 1000 and finished
            if ended:
                break
            await asyncio.sleep(0.02)
        return first, second

    first, second = asyncio.run(run())
    assert [type(e) for e in first] == [Ready]
    assert second and all(isinstance(e, Prediction) for e in second) and len(second) == len(store.predictions)
    assert len(ended) == 1 and ended[0].closed and ended[0].close_code == 1000
    assert store.connections[-1].close_code == 1000 and store.connections[-1].closed_at is not None


def test_a_direct_session_fed_within_the_idle_time_stays_open(served: ServedModel) -> None:
    """Idle counts from the last call: feeds every 0.1 s keep a 0.25 s session open past its
    first timer, and it closes 0.25 s after the last one."""
    ended: list[Any] = []

    async def run() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        direct = DirectSession(
            services(served, MemoryStore()), Peer("mqtt", None), idle_close_s=0.25, on_end=ended.append
        )
        for _ in range(6):
            async with direct.lock:
                await direct.feed([decoded(Samples(np.zeros((5, 6), dtype="<f4"), None))])
            await asyncio.sleep(0.1)
        open_after_feeds = not direct.closed
        last = loop.time() - 0.1
        while not ended and loop.time() < last + 5:
            await asyncio.sleep(0.01)
        return open_after_feeds, loop.time() - last

    open_after_feeds, closed_after = asyncio.run(run())
    assert open_after_feeds and len(ended) == 1 and ended[0].close_code == 1000
    assert 0.25 <= closed_after < 1.0
