"""``MqttBridge``: the broker's device topics in, each device's predictions and errors out.

Runs in the server's event loop beside HTTP and WebSocket (``Runtime`` starts it when
``POSTURE_MQTT_URL`` is set, and stops it first at shutdown). Each device gets a
``DeviceStream`` (its frames in order through one ``DirectSession``, logged with
``source = mqtt``); once a session is open, its frames go through the ``FrameLane``, many
devices' windows to one prediction call. Predictions go to ``.../<device_id>/prediction`` and
refused frames to ``.../<device_id>/error``, QoS 1. Stopping: read no more (what the broker
has not delivered stays queued in our persistent session), finish the frames received, wait
for the broker to acknowledge our publishes, disconnect.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from serving.client_text import text_problem
from serving.logs import log_event
from serving.metrics import ServerMetrics
from serving.mqtt.connection import BrokerConnection
from serving.mqtt.device import DeviceContext, DeviceStream
from serving.mqtt.lane import FrameLane
from serving.mqtt.settings import MqttSettings, broker_address, default_client_id
from serving.mqtt.topics import TopicLayout, parse_partition_set, partition_of
from serving.stream.services import SessionServices

STOP_TIMEOUT_S = 4.0  # within the server's drain bound (serving/shutdown.py)


class MqttBridge:
    def __init__(
        self,
        services: SessionServices,
        settings: MqttSettings,
        metrics: ServerMetrics,
        max_frame_bytes: int,
        max_samples_per_frame: int,
    ) -> None:
        assert settings.url is not None
        self.settings, self.metrics = settings, metrics
        self.layout = TopicLayout(settings.prefix, settings.partitions)
        self.served = parse_partition_set(settings.partition_set, settings.partitions)
        self.client_id = settings.client_id or default_client_id(settings)
        self.address = broker_address(settings.url, settings.username, settings.password)
        self.devices: dict[str, DeviceStream] = {}
        self._bases: dict[str, str] = {}  # a device's topic base, built once (a crc32 when partitioned)
        self.context = DeviceContext(
            services=services,
            publish=self._publish,
            idle_close_s=settings.idle_close_s,
            hello_wait_s=settings.hello_wait_s,
            max_frame_bytes=max_frame_bytes,
            max_samples=max_samples_per_frame,
            on_duplicate=metrics.mqtt_duplicates.inc,
        )
        self._in = {kind: metrics.mqtt_messages.labels("in", kind) for kind in ("imu", "imu-f32", "hello")}
        self._out = {
            kind: metrics.mqtt_messages.labels("out", kind) for kind in ("prediction", "error", "ready", "recording")
        }
        self._partitions = {p: metrics.mqtt_partition_messages.labels(str(p)) for p in self.served}
        self.lane = FrameLane(
            services.predictor,
            metrics.mqtt_lane_frames,
            settings.lane_hold_ms / 1000.0,
            side_by_side=not services.limiter.answers_at_once,  # devices have no API key: the one limiter
        )
        self.connection: BrokerConnection | None = None
        self._stopping = False

    @property
    def connected(self) -> bool:
        return self.connection is not None and self.connection.connected.is_set()

    def start(self) -> None:
        self.connection = BrokerConnection(
            self.address,
            self.settings,
            self.client_id,
            self.layout.subscriptions(self.served),
            self._on_message,
            self._on_state,
        )
        self.connection.start()
        self.lane.start()
        log_event(
            "mqtt_bridge_started",
            broker=f"{self.address.host}:{self.address.port}",
            client_id=self.client_id,
            partitions=self.settings.partitions,
            served=",".join(map(str, self.served)) or None,
        )

    async def stop(self) -> None:
        """Read no more, finish what was received, flush our publishes, disconnect."""
        connection = self.connection
        if connection is None or self._stopping:
            return
        self._stopping = True
        connection.pause()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT_S
        while self._feeding() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await self.lane.stop()
        flushed = await connection.flush(max(0.1, deadline - loop.time()))
        await connection.close()
        self.metrics.mqtt_connected.set(0)
        log_event("mqtt_bridge_stopped", devices=len(self.devices), publishes_acknowledged=flushed)

    def _feeding(self) -> bool:
        return not self.lane.idle or any(device.busy for device in self.devices.values())

    # --- messages ------------------------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        parsed = self.layout.parse(topic)
        if parsed is None:
            return
        device_id, kind, partition = parsed
        self._in[kind].inc()
        if partition is not None:
            counter = self._partitions.get(partition)
            if counter is not None:
                counter.inc()
            if partition != partition_of(device_id, self.layout.partitions):
                right = self.layout.topic(device_id, kind)
                self._refuse_at(topic, "wrong_partition", f"device {device_id!r} publishes to {right}")
                return
        device = self.devices.get(device_id)
        if device is None:
            problem = text_problem(device_id)
            if problem is not None:
                self._refuse_at(topic, "bad_device_id", f"the device id in the topic {problem}")
                return
            device = self.devices[device_id] = DeviceStream(device_id, self.context)
        if kind == "hello":
            device.set_hello(payload)
        elif device.lane_frames or device.steady:  # the lane holds its earlier frames, or its session is open
            self.lane.add(device, payload, kind == "imu-f32")
        else:  # its first frames, or its own task is feeding it: after those
            device.receive(payload, kind == "imu-f32")

    def _publish(self, device_id: str, kind: str, payload: bytes) -> None:
        self._out[kind].inc()
        if kind == "error":
            self.metrics.mqtt_decode_errors.labels(orjson.loads(payload).get("code", "")).inc()
        if self.connection is not None:
            base = self._bases.get(device_id)
            if base is None:
                base = self._bases[device_id] = self.layout.base(device_id)
            self.connection.publish(f"{base}/{kind}", payload)

    def _refuse_at(self, topic: str, code: str, detail: str) -> None:
        """An error next to a topic that no device stream owns."""
        log_event("mqtt_topic_refused", logging.WARNING, topic=topic, code=code)
        self.metrics.mqtt_decode_errors.labels(code).inc()
        if self.connection is not None:
            body = orjson.dumps({"type": "error", "code": code, "detail": detail})
            self.connection.publish(topic.rsplit("/", 1)[0] + "/error", body)

    def _on_state(self, up: bool) -> None:
        self.metrics.mqtt_connected.set(1 if up else 0)
        if not up and not self._stopping:
            self.metrics.mqtt_reconnects.inc()
