"""deploy/mosquitto for real: the broker refuses a device that writes to another device's topic or
reads its predictions, while each device's own round trip through posture works."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import REPO
from tests.serving.mqtt.mqtt_support import Broker, Device, wait_connected
from tests.serving.serving_support import CHANNELS, ServerProcess, expected_windows, json_frames, recording

DEPLOY = REPO / "deploy" / "mosquitto"
USERS = {"posture": "bridge-secret", "dev-a": "a-secret", "dev-b": "b-secret"}


def acl_broker(folder: Path) -> Broker:
    """deploy/mosquitto's config with this test's port and files."""
    folder.mkdir(parents=True)
    passwd = folder / "posture.passwd"
    pairs = [word for pair in USERS.items() for word in pair]
    subprocess.run(["sh", str(DEPLOY / "passwords.sh"), str(passwd), *pairs], check=True)
    config = (DEPLOY / "mosquitto.conf").read_text()
    kept = [
        line
        for line in config.splitlines()
        if line.split(" ")[0] in ("allow_anonymous", "max_queued_messages", "max_queued_bytes", "max_inflight_messages")
    ]
    assert "allow_anonymous false" in kept
    extra = "\n".join(kept) + f"\npassword_file {passwd}\nacl_file {DEPLOY / 'posture.acl'}\n"
    return Broker(folder, extra=extra)


def test_each_device_writes_only_its_own_topics(trained_home: Path, tmp_path: Path) -> None:
    broker = acl_broker(tmp_path / "broker")
    url = f"mqtt://posture:{USERS['posture']}@127.0.0.1:{broker.port}"
    server = ServerProcess(trained_home, tmp_path / "server", args=("--mqtt", url))
    a = b = None
    try:
        wait_connected(server)
        a = Device(broker, "dev-a", username="dev-a", password=USERS["dev-a"])
        b = Device(broker, "dev-b", username="dev-b", password=USERS["dev-b"])
        part = recording(trained_home, "s07-mixed-1", seconds=4.0)
        frames = list(json_frames(part, rows=50))
        # dev-a writes into dev-b's stream: the broker refuses it (MQTT 5 PUBACK 0x87), posture never sees it
        forged = a.client.publish("posture/dev-b/imu", frames[0], qos=1)
        forged.wait_for_publish(10)
        assert forged.mid in a.refused
        # ... nor read dev-b's predictions: Mosquitto grants the subscription, and delivers nothing
        subscribe(a.client, "posture/dev-b/prediction")
        # each device's own round trip through posture works
        a.hello(rate_hz=50, channels=CHANNELS)
        a.send(frames)
        b.send(frames)
        a.wait(expected_windows(len(part)))
        b.wait(expected_windows(len(part)))
        assert len(b.predictions) == expected_windows(len(part))  # nothing of a's forgery
        assert len(a.predictions) == expected_windows(len(part))  # nothing of b's predictions
        assert len({m["session_id"] for m in a.predictions}) == 1
        assert server.metric("mqtt_messages_total", direction="in", kind="imu") == 2 * len(frames)
        # no login, no service
        anonymous = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anon", protocol=mqtt.MQTTv5)
        assert anonymous.connect("127.0.0.1", broker.port) == 0
        assert anonymous.loop(2.0) != 0 or not anonymous.is_connected()
    finally:
        for device in (a, b):
            if device is not None:
                device.close()
        assert server.stop() == 0
        broker.stop()


def subscribe(client: mqtt.Client, topic: str) -> list[int]:
    """Subscribe and wait for the SUBACK; its reason codes."""
    done, codes = threading.Event(), []

    def on_subscribe(_c: object, _u: object, _mid: int, reasons: list, _p: object) -> None:
        codes.extend(int(r.value) for r in reasons)
        done.set()

    client.on_subscribe = on_subscribe
    client.subscribe(topic, qos=1)
    assert done.wait(10)
    return codes
