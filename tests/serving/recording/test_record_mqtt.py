"""Recording over MQTT on the real `posture serve --mqtt` and a real Mosquitto: a retained hello
with the same ``record`` fields as the WebSocket's, a label message on the device's imu topic,
and `posture stream --mqtt --record`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.serving.mqtt.mqtt_support import Broker, Device, wait_connected
from tests.serving.recording.recording_support import posture_frames, read, recorded_files, wait_for_entries
from tests.serving.serving_support import ServerProcess


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    process = Broker(tmp_path_factory.mktemp("broker"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mqtt-recordings") / "incoming"


@pytest.fixture(scope="module")
def bridged(
    home: Path, broker: Broker, folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"POSTURE_RECORDING_ENABLED": "true", "POSTURE_RECORDING_DIR": str(folder)}
    server = ServerProcess(home, tmp_path_factory.mktemp("serve"), env=env, args=("--mqtt", broker.url))
    wait_connected(server)
    yield server
    assert server.stop() == 0


def test_a_retained_hello_records_and_a_label_message_splits(
    bridged: ServerProcess, broker: Broker, folder: Path
) -> None:
    device = Device(broker, "esp32-rec")
    device.hello(
        rate_hz=50, channels=["ax", "ay", "az", "gx", "gy", "gz"], record={"label": "running", "subject": "lee"}
    )
    device.send(posture_frames("running", 6.0, seed=31))
    device.send([json.dumps({"type": "label", "label": "standing"})])
    device.send(posture_frames("standing", 4.0, seed=32, t_start=6.0))
    device.send([json.dumps({"type": "label", "label": None})])
    device.wait(predictions=8)
    entries = wait_for_entries(folder, "lee", 2)
    device.close()
    assert not device.errors, device.errors
    assert [(e["label"], e["samples"], e["source"]) for e in entries] == [
        ("running", 300, "mqtt"),
        ("standing", 200, "mqtt"),
    ]
    assert entries[0]["device"] and entries[0]["device"] != "esp32-rec"
    found = recorded_files(folder, "lee")
    assert read(found["standing"][0])["timestamp"].iloc[0] == 6.0


def test_a_bad_record_in_a_retained_hello_is_an_error_and_the_device_is_still_served(
    bridged: ServerProcess, broker: Broker, folder: Path
) -> None:
    device = Device(broker, "esp32-bad")
    device.hello(rate_hz=50, record={"label": "flying", "subject": "max"})
    device.send(posture_frames("sitting", 4.0, seed=33))
    device.wait(predictions=2, errors=1)
    device.close()
    assert [e["code"] for e in device.errors] == ["bad_record"] and "flying" in device.errors[0]["detail"]
    assert not recorded_files(folder, "max")


def test_posture_stream_mqtt_record(bridged: ServerProcess, broker: Broker, home: Path, folder: Path) -> None:
    args = ("--mqtt", broker.url, "--device", "sim:walking", "--speed", "4", "--duration", "3", "--json")
    done = run_cli(
        "stream", *args, "--device-id", "cli-mqtt", "--record", "--label", "walking", "--subject", "ned", home=home
    )
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    [entry] = wait_for_entries(folder, "ned", 1)
    assert entry["source"] == "mqtt" and entry["label"] == "walking" and entry["samples"] >= 200
    assert summary["recorded_s"] == {"walking": entry["samples"] / 50.0} and summary["recorded_files"] == 1
