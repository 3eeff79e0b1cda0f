"""The MQTT side of ``posture stream --mqtt URL``: publish as a device, show the predictions.

The device's hello goes to its retained ``hello`` topic, its chunks as QoS 1 frames to its
``imu`` topic (``imu-f32`` with ``--binary``), and predictions, errors and the session's
``ready`` come back on its own topics (docs/protocol.md, "IoT over MQTT"). The broker session is
persistent, so frames and predictions wait in the broker while either side is away; paho
retries and ``serving.mqtt.connection`` reconnects with backoff. The topic layout, user name,
password and TLS files come from the ``POSTURE_MQTT_*`` settings, as for the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import deque
from typing import Any

import numpy as np

from posture_cli.stream.chunks import Chunk, Device
from posture_cli.stream.client import STOP_RECORDING_TIMEOUT_S, ClientOptions, Listener
from posture_cli.stream.stats import StreamStats
from serving.mqtt.connection import BrokerConnection
from serving.mqtt.settings import MqttSettings, broker_address
from serving.mqtt.topics import TopicLayout

DRAIN_IDLE_S = 1.0  # after the device ended: stop once the server has been quiet this long
DRAIN_MAX_S = 30.0


class MqttStreamClient:
    def __init__(self, device: Device, options: ClientOptions, listener: Listener | None = None) -> None:
        self.device, self.options, self.listener = device, options, listener
        self.stats = StreamStats(device.label, options.url)
        self.device_id = options.device_id or f"posture-stream-{uuid.uuid4().hex[:8]}"
        self._sent: deque[tuple[float, float]] = deque(maxlen=10_000)  # (chunk end time, sent at)
        self._next_t = 0.0
        self._last_message = 0.0

    def sync(self) -> None:
        self.stats.malformed, self.stats.last_malformed = self.device.malformed, self.device.last_malformed

    async def run(self, stop: asyncio.Event) -> StreamStats:
        settings = MqttSettings(url=self.options.url)  # type: ignore[call-arg]  # the rest from POSTURE_MQTT_*
        layout = TopicLayout(settings.prefix, settings.partitions)
        topic = layout.topic
        connection = BrokerConnection(
            broker_address(self.options.url, settings.username, settings.password),
            settings,
            f"posture-stream-{self.device_id}",
            [topic(self.device_id, kind) for kind in ("prediction", "error", "ready", "recording")],
            self._on_message,
            self._on_state,
        )
        connection.start()
        try:
            hello: dict[str, Any] = {
                "type": "hello",
                "rate_hz": self.device.rate_hz,
                "channels": list(self.device.channels),
            }
            if self.options.record:  # every session of this device records while the retained hello says so
                hello["record"] = self.options.record
            connection.publish(topic(self.device_id, "hello"), json.dumps(hello).encode(), retain=True)
            frames = topic(self.device_id, "imu-f32" if self.options.binary else "imu")
            await self._publish_chunks(connection, frames, stop)
            if self.options.record:  # the server writes the last file and says what it recorded
                stopping = json.dumps({"type": "label", "label": None}).encode()
                connection.publish(topic(self.device_id, "imu"), stopping)
                await self._recording_stopped()
            await self._quiet(stop)
            await connection.flush(2.0)
        finally:
            await connection.close()
            self.sync()
            self.stats.state = "closed"
        return self.stats

    async def _publish_chunks(self, connection: BrokerConnection, topic: str, stop: asyncio.Event) -> None:
        chunks = self.device.chunks().__aiter__()
        while not stop.is_set():
            next_chunk = asyncio.ensure_future(chunks.__anext__())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({next_chunk, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not next_chunk.done():
                next_chunk.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await next_chunk
                return
            try:
                chunk = next_chunk.result()
            except StopAsyncIteration:
                return
            connection.publish(topic, self._encode(chunk))
            self._sent.append((float(chunk.t0) + len(chunk) / self.device.rate_hz, time.monotonic()))  # type: ignore[arg-type]
            self.stats.on_sent(len(chunk))

    def _encode(self, chunk: Chunk) -> bytes:
        if chunk.t0 is None:
            chunk.t0 = self._next_t
        self._next_t = chunk.t0 + len(chunk) / self.device.rate_hz
        if self.options.binary:
            return np.ascontiguousarray(chunk.values, dtype="<f4").tobytes()
        return json.dumps({"samples": chunk.values.tolist(), "t0": round(float(chunk.t0), 6)}).encode()

    async def _quiet(self, stop: asyncio.Event) -> None:
        """Wait for the last predictions: until the server has been quiet for DRAIN_IDLE_S."""
        started = time.monotonic()
        self._last_message = max(self._last_message, started)
        while not stop.is_set() and time.monotonic() - self._last_message < DRAIN_IDLE_S:
            if time.monotonic() - started > DRAIN_MAX_S:
                return
            await asyncio.sleep(DRAIN_IDLE_S / 4)

    async def _recording_stopped(self) -> None:
        """Until the server says the recording stopped (its last file written), a few seconds at most."""
        deadline = time.monotonic() + STOP_RECORDING_TIMEOUT_S
        while time.monotonic() < deadline and (self.stats.recording is None or self.stats.recording["recording"]):
            await asyncio.sleep(0.05)

    def _on_state(self, up: bool) -> None:
        if up:
            self.stats.state = "streaming"
        else:
            self.stats.on_lost()
            self.stats.state = "disconnected; reconnecting"

    def _on_message(self, _topic: str, payload: bytes) -> None:
        self._last_message = time.monotonic()
        body: dict[str, Any] = json.loads(payload)
        kind = body.get("type")
        if kind == "ready":
            self.stats.on_ready(body)
            return
        if kind == "prediction":
            rtt_ms = self._rtt_ms(float(body["window_end"]))
            if rtt_ms is not None:
                body["rtt_ms"] = round(rtt_ms, 2)
            self.stats.on_prediction(body, rtt_ms)
        elif kind == "error":
            self.stats.on_error(f"{body.get('code')}: {body.get('detail')}")
        elif kind == "recording":
            self.stats.on_recording(body)
            return
        else:
            return
        if self.listener is not None:
            self.listener(body)

    def _rtt_ms(self, window_end: float) -> float | None:
        """From sending the chunk that completed the window to its prediction."""
        tolerance = 0.5 / self.device.rate_hz
        while self._sent and self._sent[0][0] < window_end - tolerance:
            self._sent.popleft()
        if self._sent and self._sent[0][0] - window_end < 1.0:
            return (time.monotonic() - self._sent[0][1]) * 1000.0
        return None
