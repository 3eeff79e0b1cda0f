"""The MQTT bridge on the real `posture serve --mqtt` and a real Mosquitto: a device's session
equal to `posture predict`, refused payloads that end neither the session nor the bridge,
binary frames, and the topic layout and partition rule."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.predict import predict_recording
from pipelines.registry import LoadedModel
from serving.mqtt.topics import TopicLayout, parse_partition_set, partition_of
from tests.conftest import run_cli
from tests.serving.mqtt.mqtt_support import Broker, Device
from tests.serving.serving_support import (
    CHANNELS,
    ServerProcess,
    as_recording,
    binary_frames,
    expected_windows,
    json_frames,
    recording,
)

ROWS_SQL = "SELECT COUNT(*) FROM predictions WHERE session_id = :s AND source = 'mqtt'"


def probabilities(messages: list[dict[str, Any]], classes: list[str], key: str = "probabilities") -> np.ndarray:
    return np.array([[m[key][c] for c in classes] for m in messages])


# -- units --------------------------------------------------------------------------------------


def test_the_partition_rule_is_crc32_of_the_device_id() -> None:
    assert partition_of("esp32-7", 8) == zlib.crc32(b"esp32-7") % 8
    layout = TopicLayout("posture", 4)
    device = "esp32-7"
    assert layout.topic(device, "imu") == f"posture/{zlib.crc32(device.encode()) % 4}/{device}/imu"
    assert layout.parse(layout.topic(device, "imu")) == (device, "imu", partition_of(device, 4))
    assert layout.subscriptions((1, 3)) == [f"posture/{p}/+/{k}" for p in (1, 3) for k in ("imu", "imu-f32", "hello")]
    assert TopicLayout().parse("posture/dev/prediction") is None  # our own publishes are not device topics
    assert TopicLayout().parse("posture/dev/imu") == ("dev", "imu", None)
    assert parse_partition_set("0-2,5", 8) == (0, 1, 2, 5) and parse_partition_set(None, 3) == (0, 1, 2)


# -- the real server and broker -----------------------------------------------------------------


def test_a_device_session_matches_posture_predict(
    bridged: ServerProcess, broker: Broker, champion: LoadedModel, trained_home: Path
) -> None:
    mixed = recording(trained_home, "s03-mixed-2", seconds=40.0)
    raw = predict_recording(champion, as_recording(mixed))
    smoothed = predict_recording(champion, as_recording(mixed), smooth=True)
    device = Device(broker, "esp32-match")
    device.hello(rate_hz=50, channels=CHANNELS)
    device.send(json_frames(mixed, rows=25))
    device.wait(len(raw.start))
    got = sorted(device.predictions, key=lambda m: m["window_start"])
    device.close()
    assert len(got) == len(raw.start) == expected_windows(len(mixed)) and not device.errors
    assert [m["label"] for m in got] == list(raw.labels)
    np.testing.assert_allclose(probabilities(got, raw.classes), raw.probabilities, atol=1e-6)
    np.testing.assert_allclose(
        probabilities(got, raw.classes, "smoothed_probabilities"), smoothed.probabilities, atol=1e-6
    )
    np.testing.assert_allclose([m["window_start"] for m in got], raw.start, atol=1e-6)
    assert [m["window_start"] for m in device.predictions] == [m["window_start"] for m in got]  # in order
    (session,) = {m["session_id"] for m in got}
    assert bridged.wait_rows(ROWS_SQL, len(got), s=session) == len(got)
    ((device_hash,),) = bridged.query("SELECT DISTINCT device_hash FROM predictions WHERE session_id = :s", s=session)
    assert device_hash and "esp32-match" not in device_hash


def test_refused_payloads_get_an_error_and_the_session_goes_on(
    bridged: ServerProcess, broker: Broker, trained_home: Path
) -> None:
    part = recording(trained_home, "s07-mixed-1", seconds=6.0)
    frames = list(json_frames(part, rows=50))
    device = Device(broker, "esp32-bad")
    device.hello(rate_hz=50, channels=CHANNELS)
    bad = [
        b"not json",
        b'{"samples": [[1, 2, 3]]}',
        b"\xff\xfe",
        json.dumps({"samples": [[0.0] * 6] * 20_000}).encode(),  # over max_frame_bytes
        b'{"samples": [[NaN, 0, 0, 0, 0, 0]]}',
    ]
    device.send([frames[0], *bad, *frames[1:]])
    device.wait(expected_windows(len(part)), errors=len(bad))
    codes = [e["code"] for e in device.errors]
    assert codes == ["bad_json", "bad_frame", "bad_json", "too_big", "non_finite"], device.errors
    assert len({m["session_id"] for m in device.predictions}) == 1  # one session through it all
    device.close()
    assert bridged.metric("mqtt_decode_errors_total", code="too_big") >= 1


def test_binary_frames_give_the_json_frames_predictions(
    broker: Broker, bridged: ServerProcess, trained_home: Path
) -> None:
    part = recording(trained_home, "s07-mixed-1", seconds=12.0)
    as_json, as_binary = Device(broker, "dev-json"), Device(broker, "dev-bin")
    as_json.send(json_frames(part, 50))  # no hello: the model's rate and channels
    as_binary.send(binary_frames(part, 50), kind="imu-f32")
    as_json.wait(expected_windows(len(part)))
    as_binary.wait(expected_windows(len(part)))
    assert [m["label"] for m in as_json.predictions] == [m["label"] for m in as_binary.predictions]
    np.testing.assert_allclose(
        [list(m["probabilities"].values()) for m in as_json.predictions],
        [list(m["probabilities"].values()) for m in as_binary.predictions],
        atol=1e-6,
    )
    as_binary.send([b"\x00" * 7], kind="imu-f32")  # not whole rows
    as_binary.wait(expected_windows(len(part)), errors=1)
    assert as_binary.errors[0]["code"] == "bad_frame"
    as_json.close()
    as_binary.close()


def test_posture_stream_publishes_as_a_device_and_shows_the_predictions(
    bridged: ServerProcess, broker: Broker, trained_home: Path
) -> None:
    result = run_cli(
        "stream",
        "--mqtt",
        broker.url,
        "--device",
        "sim:walking",
        "--speed",
        "4",
        "--duration",
        "5",
        "--device-id",
        "cli-board",
        "--json",
        home=trained_home,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    predictions = [m for m in lines if m["type"] == "prediction"]
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["predictions"] == len(predictions) >= 10 and summary["errors"] == 0, result.stderr
    assert summary["frames"] > 0 and summary["rtt_ms_p50"] is not None
    # The simulator draws a new wearer each run, so a window may be misread, as over WebSocket.
    labels = [m["label"] for m in predictions]
    assert labels.count("walking") >= 0.8 * len(labels), labels
    per_session = Counter(m["session_id"] for m in predictions)  # rows reach the store after the publishes
    rows = "SELECT COUNT(*) FROM predictions WHERE source = 'mqtt' AND session_id = :s"
    assert sum(bridged.wait_rows(rows, count, s=s) for s, count in per_session.items()) == len(predictions)
