"""The MQTT lane (serving/mqtt/lane.py) without a broker: many devices' frames in one burst
give what each device's own task gives, in order; a bad frame, a new hello and a session
that ends cost what they cost on the device's own path, and no more."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from pipelines.predict import predict_recording
from pipelines.registry import LoadedModel
from serving.edge.ratelimit import RedisTokenBucketLimiter
from serving.edge.redis_state import SharedRedis
from serving.model_holder import ServedModel
from serving.mqtt.device import DeviceContext, DeviceStream
from serving.mqtt.lane import FrameLane
from serving.stream.services import SessionServices
from tests.deploy.deploy_support import REDIS_URL, redis_prefix
from tests.serving.serving_support import CHANNELS, as_recording, json_frames, recording
from tests.serving.stream.test_session_core import MemoryStore, served, services

__all__ = ["served"]  # the module's model fixture, shared with the session core's tests

HELLO = b'{"type":"hello","rate_hz":50}'


class Devices:
    """Devices of one bridge: their streams, what was published to each, and a lane."""

    def __init__(self, session_services: SessionServices) -> None:
        self.published: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self.context = DeviceContext(
            services=session_services,
            publish=lambda device, kind, payload: self.published[device].append((kind, orjson.loads(payload))),
            idle_close_s=30.0,
            hello_wait_s=1.0,
            max_frame_bytes=65536,
            max_samples=1000,
            on_duplicate=lambda: None,
        )
        self.streams: dict[str, DeviceStream] = {}
        self.lane = FrameLane(
            session_services.predictor,
            session_services.metrics.mqtt_lane_frames,
            hold_s=0.002,
            side_by_side=not session_services.limiter.answers_at_once,
        )
        self.lane.start()

    def stream(self, device_id: str) -> DeviceStream:
        if device_id not in self.streams:
            self.streams[device_id] = DeviceStream(device_id, self.context)
            self.streams[device_id].set_hello(HELLO)
        return self.streams[device_id]

    def send(self, device_id: str, payload: bytes, lane: bool) -> None:
        """As the bridge routes a frame: to the lane once the device's session is open."""
        device = self.stream(device_id)
        if lane and (device.lane_frames or device.steady):
            self.lane.add(device, payload, binary=False)
        else:
            device.receive(payload, binary=False)

    async def settle(self) -> None:
        while not self.lane.idle or any(device.busy for device in self.streams.values()):
            await asyncio.sleep(0.005)

    def of(self, device_id: str, kind: str) -> list[dict[str, Any]]:
        return [message for got, message in self.published[device_id] if got == kind]

    def lane_bursts(self) -> tuple[int, int]:
        """(bursts served, frames the lane cut), from the bridge's histogram."""
        samples = {s.name: s.value for s in self.context.services.metrics.mqtt_lane_frames.collect()[0].samples}
        return int(samples["mqtt_lane_burst_frames_count"]), int(samples["mqtt_lane_burst_frames_sum"])


def frames_of(trained_home: Path, name: str, seconds: float, rows: int) -> list[bytes]:
    return [frame.encode() for frame in json_frames(recording(trained_home, name, seconds), rows)]


def without_session(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in m.items() if k not in ("session_id", "latency_ms")} for m in messages]


async def run_devices(
    served: ServedModel,
    streams: dict[str, list[bytes]],
    lane: bool,
    burst: int,
) -> tuple[Devices, MemoryStore]:
    """Each device's first frame opens its session; the rest go out interleaved, ``burst``
    frames between event-loop turns (so one lane burst holds many devices' frames)."""
    store = MemoryStore()
    devices = Devices(services(served, store))
    for device_id, frames in streams.items():
        devices.send(device_id, frames[0], lane)
    await devices.settle()
    sent = 0
    for k in range(1, max(len(frames) for frames in streams.values())):
        for device_id, frames in streams.items():
            if k < len(frames):
                devices.send(device_id, frames[k], lane)
                sent += 1
                if sent % burst == 0:
                    await asyncio.sleep(0)
    await devices.settle()
    await devices.lane.stop()
    return devices, store


def test_a_burst_of_many_devices_gives_each_what_its_own_task_gives(
    served: ServedModel, champion: LoadedModel, trained_home: Path
) -> None:
    names = ["s03-mixed-2", "s01-mixed-1", "s05-mixed-1"]
    streams = {f"dev{i}": frames_of(trained_home, names[i % 3], 24.0, 25 + 10 * i) for i in range(6)}
    laned, laned_store = asyncio.run(run_devices(served, streams, lane=True, burst=7))
    alone, alone_store = asyncio.run(run_devices(served, streams, lane=False, burst=7))
    for device_id in streams:
        got = laned.of(device_id, "prediction")
        assert got and without_session(got) == without_session(alone.of(device_id, "prediction"))
        assert laned.of(device_id, "error") == [] and len(laned.of(device_id, "ready")) == 1
    assert (
        len(laned_store.predictions)
        == len(alone_store.predictions)
        == sum(len(laned.of(d, "prediction")) for d in streams)
    )
    bursts, cut = laned.lane_bursts()
    assert cut == sum(len(frames) - 1 for frames in streams.values())  # all but each first frame
    assert bursts < cut / 3  # many devices' frames a burst (7 between turns)
    assert alone.lane_bursts() == (0, 0)
    # and what `posture predict` gives for the same samples, windows in order
    first = laned.of("dev0", "prediction")
    expected = predict_recording(champion, as_recording(recording(trained_home, names[0], 24.0)))
    assert [m["label"] for m in first] == list(expected.labels)
    assert [m["window_start"] for m in first] == sorted(m["window_start"] for m in first)


def test_rate_limits_shared_through_redis_check_a_burst_in_one_call(served: ServedModel, trained_home: Path) -> None:
    """With Redis limits the lane cuts the devices side by side, so the address checks of a
    burst go to Redis together: one script call a burst, not one a frame."""
    frames = frames_of(trained_home, "s01-mixed-1", 12.0, 50)
    device_ids = [f"dev{i}" for i in range(8)]
    calls: list[str] = []

    async def run() -> tuple[Devices, int]:
        with redis_prefix() as prefix:
            redis = SharedRedis(REDIS_URL, prefix, timeout_s=1.0)
            counted = redis.call

            async def call(name: str, command: Any) -> Any:
                calls.append(name)
                return await counted(name, command)

            redis.call = call  # type: ignore[method-assign]
            limiter = RedisTokenBucketLimiter(redis, rate_per_s=200.0, burst=400.0, name="client")
            devices = Devices(replace(services(served, MemoryStore()), limiter=limiter, key_limiter=limiter))
            for frame in frames:  # a frame from every device, as 1-s frames come
                for device_id in device_ids:
                    devices.send(device_id, frame, lane=True)
                await devices.settle()
                if frame is frames[0]:
                    opened = len(calls)  # the first frames, on the devices' own tasks
            await devices.lane.stop()
            await redis.close()
            return devices, len(calls) - opened

    devices, lane_calls = asyncio.run(run())
    expected = len(predict_windows(frames))
    for device_id in device_ids:
        assert len(devices.of(device_id, "prediction")) == expected and not devices.of(device_id, "error")
    bursts, cut = devices.lane_bursts()
    assert cut == len(device_ids) * (len(frames) - 1) and bursts == len(frames) - 1
    assert calls and set(calls) == {"rate_limit"} and lane_calls == bursts  # not one a frame


def test_a_bad_frame_in_a_burst_costs_only_itself(served: ServedModel, trained_home: Path) -> None:
    good = frames_of(trained_home, "s03-mixed-2", 12.0, 50)
    streams = {"bad": [*good[:4], b'{"samples": [[1, 2]]}', *good[4:]], "good": good}
    devices, _ = asyncio.run(run_devices(served, streams, lane=True, burst=3))
    errors = devices.of("bad", "error")
    assert [e["code"] for e in errors] == ["bad_frame"]
    assert without_session(devices.of("bad", "prediction")) == without_session(devices.of("good", "prediction"))
    assert len({m["session_id"] for m in devices.of("bad", "prediction")}) == 1  # the session went on


def test_a_new_hello_mid_burst_ends_the_session_after_its_earlier_frames(
    served: ServedModel, trained_home: Path
) -> None:
    frames = frames_of(trained_home, "s03-mixed-2", 20.0, 50)
    later = [orjson.dumps({**orjson.loads(f), "t0": 1000 + orjson.loads(f)["t0"]}) for f in frames[10:]]
    hello = orjson.dumps({"type": "hello", "rate_hz": 50, "channels": list(CHANNELS)})  # another layout
    streams = {"dev": [*frames[:10], hello, *later]}
    devices, store = asyncio.run(run_devices(served, streams, lane=True, burst=100))
    got = devices.of("dev", "prediction")
    sessions = [m["session_id"] for m in got]
    first, second = sessions[0], sessions[-1]
    assert first != second and sessions == sorted(sessions, key=lambda s: s != first)  # every first before any second
    assert max(m["window_start"] for m in got if m["session_id"] == first) < 20.0
    assert min(m["window_start"] for m in got if m["session_id"] == second) >= 1000.0
    assert len(devices.of("dev", "ready")) == 2 and devices.of("dev", "error") == []
    assert len(store.predictions) == len(got)


def test_frames_that_come_while_the_lane_predicts_keep_their_order(served: ServedModel, trained_home: Path) -> None:
    """One frame at a time (a burst each): every window once, in order, one session."""
    frames = frames_of(trained_home, "s01-mixed-1", 20.0, 10)
    devices, _ = asyncio.run(run_devices(served, {"dev": frames}, lane=True, burst=1))
    starts = [m["window_start"] for m in devices.of("dev", "prediction")]
    assert starts == sorted(set(starts)) and len(starts) == len(predict_windows(frames))
    assert len({m["session_id"] for m in devices.of("dev", "prediction")}) == 1


def predict_windows(frames: list[bytes]) -> list[int]:
    rows = sum(len(orjson.loads(frame)["samples"]) for frame in frames)
    return list(range(0, rows - 100 + 1, 50))


@pytest.mark.parametrize("frames_per_turn", [1, 50])
def test_a_closed_batcher_ends_the_lanes_sessions_as_a_shutdown_does(
    served: ServedModel, trained_home: Path, frames_per_turn: int
) -> None:
    frames = frames_of(trained_home, "s03-mixed-2", 10.0, 50)

    store = MemoryStore()

    async def run() -> Devices:
        devices = Devices(services(served, store))
        devices.send("dev", frames[0], lane=True)
        await devices.settle()
        await devices.context.services.predictor.close()  # type: ignore[attr-defined]
        for k, frame in enumerate(frames[1:]):
            devices.send("dev", frame, lane=True)
            if k % frames_per_turn == 0:
                await asyncio.sleep(0)
        await devices.settle()
        return devices

    devices = asyncio.run(run())
    assert devices.of("dev", "prediction") == [] and devices.of("dev", "error") == []  # 1001 is no error
    closed = [record.close_code for record in store.connections if record.closed_at is not None]
    assert closed and set(closed) == {1001}  # going away, as at a shutdown; each next frame opened another
