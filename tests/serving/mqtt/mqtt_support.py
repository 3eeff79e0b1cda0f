"""Test helpers for the MQTT bridge: a real Mosquitto of the test's own (free port, temp config,
persistence on, restartable) and a device as a paho-mqtt client would be."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.serving.serving_support import ServerProcess, free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_TIMEOUT_S = 10.0
# The broker's queues must hold what a test sends while posture is away (defaults: 1000 messages).
# Started as root, Mosquitto switches to the user "mosquitto", who cannot write the test's
# folder (persistence, log); "user root" keeps it as it is (ignored when not root).
BASE_CONFIG = """\
listener {port} 127.0.0.1
user root
persistence true
persistence_location {folder}/
autosave_interval 1
max_queued_messages 0
max_inflight_messages 0
log_dest file {folder}/mosquitto.log
log_type error
log_type warning
log_type notice
"""


class Broker:
    """``mosquitto -c <temp config>`` on a free port; ``extra`` lines are added to the config."""

    def __init__(self, folder: Path, extra: str = "allow_anonymous true\n") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.port = folder, free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.config = folder / "mosquitto.conf"
        self.config.write_text(BASE_CONFIG.format(port=self.port, folder=folder) + extra)
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise AssertionError(f"mosquitto exited: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}")

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file (sessions, queued messages) and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


class Device:
    """A device as its firmware would be: a persistent MQTT 5 session, its retained hello, frames
    published QoS 1 to its imu topic, predictions and errors read from its own topics."""

    def __init__(
        self,
        broker: Broker,
        device_id: str,
        base: str | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: dict[str, str] | None = None,
    ) -> None:
        """``tls``: paho's ``tls_set`` arguments (ca_certs, certfile, keyfile) for a TLS listener."""
        self.device_id, self.base = device_id, base or f"posture/{device_id}"
        self.predictions: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.acked: set[int] = set()  # mids of our publishes the broker acknowledged
        self.refused: list[int] = []  # mids the broker answered with a failure reason code
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        client = self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"dev-{device_id}", protocol=mqtt.MQTTv5
        )
        if username:
            client.username_pw_set(username, password)
        if tls:
            client.tls_set(**tls)
        client.on_message = self._on_message
        client.on_subscribe = lambda *_: self._subscribed.set()
        client.on_publish = self._on_publish
        client.on_connect = lambda c, *_: c.subscribe([(f"{self.base}/prediction", 1), (f"{self.base}/error", 1)])
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 600
        client.connect("127.0.0.1", broker.port, 30, clean_start=False, properties=properties)
        client.loop_start()
        assert self._subscribed.wait(10), "the device's subscription was not acknowledged"

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        body = json.loads(message.payload)
        with self._lock:
            (self.predictions if message.topic.endswith("/prediction") else self.errors).append(body)

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.acked.add(mid)
        if getattr(reason, "is_failure", False):
            self.refused.append(mid)

    def hello(self, **fields: Any) -> None:
        self.client.publish(
            f"{self.base}/hello", json.dumps({"type": "hello", **fields}), qos=1, retain=True
        ).wait_for_publish(10)

    def send(self, payloads: Iterable[str | bytes], kind: str = "imu", timeout: float = 30.0) -> None:
        """Publish QoS 1 and wait for the broker's PUBACKs (paho queues what the broker cannot take yet)."""
        infos = [self.client.publish(f"{self.base}/{kind}", p, qos=1) for p in payloads]
        deadline = time.monotonic() + timeout
        while not all(info.mid in self.acked for info in infos):
            assert time.monotonic() < deadline, f"{self.device_id}: the broker did not acknowledge the frames"
            time.sleep(0.02)

    def wait(self, predictions: int, errors: int = 0, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.predictions) >= predictions and len(self.errors) >= errors:
                    return
            time.sleep(0.05)
        raise AssertionError(
            f"{self.device_id}: {len(self.predictions)}/{predictions} predictions, {len(self.errors)}/{errors} errors"
        )

    def wait_windows(self, windows: int, timeout: float = 30.0) -> None:
        """Until ``windows`` distinct windows have predictions (QoS 1 may bring one twice, so a
        count of messages can be reached before every window's prediction arrived)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len({m["window_start"] for m in self.predictions}) >= windows:
                    return
            time.sleep(0.05)
        raise AssertionError(f"{self.device_id}: predictions for fewer than {windows} windows")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_connected(server: ServerProcess, timeout: float = 20.0) -> None:
    """Until the server's bridge holds its broker session (frames sent before are not queued for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if server.metric("mqtt_connected") == 1:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the bridge did not connect:\n{server.log()[-3000:]}")
