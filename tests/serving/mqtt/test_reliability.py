"""The bridge through outages, on a Mosquitto of each test's own: a broker restart mid-stream
and a posture restart while frames wait in the broker, with every window predicted exactly
once and as many rows as predictions; two instances splitting the partitions."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from serving.mqtt.topics import TopicLayout, partition_of
from tests.serving.mqtt.mqtt_support import Broker, Device, wait_connected
from tests.serving.serving_support import CHANNELS, ServerProcess, expected_windows, json_frames, recording

ROWS_SQL = "SELECT COUNT(*) FROM predictions WHERE source = 'mqtt' AND device_hash IS NOT NULL"
WINDOWS_SQL = "SELECT COUNT(DISTINCT window_start) FROM predictions WHERE source = 'mqtt'"


def test_a_broker_restart_mid_stream_loses_and_repeats_no_window(trained_home: Path, tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    server = ServerProcess(trained_home, tmp_path / "server", args=("--mqtt", broker.url))
    try:
        wait_connected(server)
        part = recording(trained_home, "s03-mixed-2", seconds=30.0)
        frames = list(json_frames(part, rows=10))
        device = Device(broker, "esp32-outage")
        device.client.reconnect_delay_set(0.1, 1)
        device.hello(rate_hz=50, channels=CHANNELS)
        half = len(frames) // 2
        device.send(frames[:half])
        broker.stop()  # in the middle of the stream: both sides lose the broker
        assert wait_ready_status(server, "degraded") == "degraded"  # HTTP still serves: 200, with the reason
        infos = [device.client.publish(f"{device.base}/imu", f, qos=1) for f in frames[half : half + 20]]
        broker.start()  # the frames paho kept go out after its reconnect, the rest follow
        assert wait_ready_status(server, "ready") == "ready"
        device.send(frames[half + 20 :])
        assert all(info.mid in device.acked for info in infos)
        expected = expected_windows(len(part))
        device.wait_windows(expected, timeout=60)
        # every window reached the device (a prediction may reach it twice: QoS 1 is at least once) ...
        assert {m["window_start"] for m in device.predictions} == {float(k) for k in range(expected)}
        assert server.wait_rows(ROWS_SQL, expected) == expected  # rows = predictions: none lost, none twice
        assert server.query(WINDOWS_SQL)[0][0] == expected
        assert server.metric("mqtt_reconnects_total") >= 1
        device.close()
    finally:
        assert server.stop() == 0
        broker.stop()


def test_frames_sent_while_posture_is_away_are_served_when_it_returns(trained_home: Path, tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    data = tmp_path / "server"
    part = recording(trained_home, "s07-mixed-1", seconds=20.0)
    first, second = part.iloc[:500], part.iloc[500:1000]
    device = Device(broker, "esp32-away")
    device.hello(rate_hz=50, channels=CHANNELS)
    server = ServerProcess(trained_home, data, args=("--mqtt", broker.url))
    wait_connected(server)
    device.send(json_frames(first, rows=50))
    device.wait(expected_windows(500))
    assert server.stop() == 0  # SIGTERM: the bridge finishes what it received, its broker session stays
    device.send(json_frames(second, rows=50))  # QoS 1, queued by the broker for posture's session
    server = ServerProcess(trained_home, data, args=("--mqtt", broker.url))
    try:
        expected = 2 * expected_windows(500)
        device.wait(expected, timeout=60)
        assert len(device.predictions) == expected and not device.errors
        later = [m["window_start"] for m in device.predictions[expected_windows(500) :]]
        assert later[0] >= float(second["timestamp"].iloc[0])  # the queued frames, in order
        assert later == sorted(later)
        assert server.wait_rows(ROWS_SQL, expected) == expected
        assert any(e.get("event") == "mqtt_connected" and e.get("session_present") for e in server.events())
    finally:
        device.close()
        assert server.stop() == 0
        broker.stop()


def test_two_instances_split_the_partitions_each_device_served_by_one(trained_home: Path, tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    layout = TopicLayout("posture", 2)
    servers = [
        ServerProcess(
            trained_home,
            tmp_path / f"server-{p}",
            env={"POSTURE_MQTT_PARTITIONS": "2", "POSTURE_MQTT_PARTITION_SET": str(p)},
            args=("--mqtt", broker.url),
        )
        for p in (0, 1)
    ]
    devices: list[Device] = []
    try:
        for server in servers:
            wait_connected(server)
        names = [f"board-{i}" for i in range(6)]
        assert {partition_of(n, 2) for n in names} == {0, 1}  # both partitions get devices
        part = recording(trained_home, "s07-mixed-1", seconds=6.0)
        for name in names:
            device = Device(broker, name, base=layout.base(name))
            device.hello(rate_hz=50, channels=CHANNELS)
            device.send(json_frames(part, rows=25))
            devices.append(device)
        expected = expected_windows(len(part))
        for device in devices:
            device.wait(expected)
            assert len(device.predictions) == expected and len({m["session_id"] for m in device.predictions}) == 1
        for p, server in enumerate(servers):
            mine = [d for d in devices if partition_of(d.device_id, 2) == p]
            sessions = {d.predictions[0]["session_id"] for d in mine}
            assert server.wait_rows(ROWS_SQL, expected * len(mine)) == expected * len(mine)
            stored = {row[0] for row in server.query("SELECT DISTINCT session_id FROM predictions")}
            assert stored == sessions  # this instance served its partition's devices, and no other
            assert server.metric("mqtt_partition_messages_total", partition=str(p)) > 0
    finally:
        for device in devices:
            device.close()
        for server in servers:
            assert server.stop() == 0
        broker.stop()


def wait_ready_status(server: ServerProcess, wanted: str, timeout_s: float = 30.0) -> str:
    """/readyz's status once it is ``wanted`` (or the last one seen, at the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = httpx.get(f"{server.url}/readyz", timeout=5.0)
        status = answer.json()["status"]
        if status == wanted or time.monotonic() > deadline:
            if status == "degraded":
                assert answer.status_code == 200 and any("MQTT broker" in r for r in answer.json()["reasons"])
            return status
        time.sleep(0.1)


def test_the_bridge_keeps_to_the_brokers_receive_maximum(trained_home: Path, tmp_path: Path) -> None:
    """MQTT 5 allows a client no more unacknowledged QoS 1 publishes than the broker's Receive
    Maximum (a broker may disconnect one that sends more; Mosquitto's default is 20). The bridge
    takes it from the CONNACK, and with a limit of 3 and bursts of 5 predictions the ones that
    wait in paho's queue all go out: every window's prediction arrives, and the broker refused none."""
    broker = Broker(tmp_path / "broker", extra="allow_anonymous true\nmax_inflight_messages 3\n")
    server = ServerProcess(trained_home, tmp_path / "server", args=("--mqtt", broker.url))
    try:
        wait_connected(server)
        part = recording(trained_home, "s03-mixed-2", seconds=40.0)
        device = Device(broker, "esp32-quota")
        device.hello(rate_hz=50, channels=CHANNELS)
        for frame in json_frames(part, rows=250):  # 5 s a frame: a burst of predictions each
            device.send([frame])  # one at a time: the device keeps to the quota too
        assert not device.refused
        expected = expected_windows(len(part))
        device.wait(expected, timeout=60)
        assert {m["window_start"] for m in device.predictions} == {float(k) for k in range(expected)}
        assert server.wait_rows(ROWS_SQL, expected) == expected
        events = server.events()
        assert [e["receive_maximum"] for e in events if e.get("event") == "mqtt_connected"] == [3]
        assert not [e for e in events if e.get("event") == "mqtt_publish_refused"]
        device.close()
    finally:
        assert server.stop() == 0
        broker.stop()
