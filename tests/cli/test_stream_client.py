"""`posture stream` against the real `posture serve`: the simulator end to end, a file replay
that matches `posture predict`, a serial device on a pseudo-terminal, a server killed and
restarted mid-stream, and the Sensor Logger HTTP push. Unit tests of the serial line
parser, the resend buffer, the backoff and the sensor aligner come first."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from features.contract import STANDARD_GRAVITY
from features.errors import PostureError
from pipelines.predict import predict_recording
from pipelines.registry import LoadedModel
from pipelines.synthetic import SimulatedIMU
from posture_cli.stream.chunks import Chunk
from posture_cli.stream.devices import DeviceOptions, FileDevice, open_device
from posture_cli.stream.resend import RESEND_BUFFER_SAMPLES, Backoff, ResendBuffer
from posture_cli.stream.serial_port import LineParser, SerialDevice, estimate_rate
from posture_cli.stream_cmd import DEFAULT_BUFFER
from features.streaming_align import ImuAligner
from tests.conftest import REPO, run_cli
from tests.serving import serving_support
from tests.serving.serving_support import CHANNELS, ServerProcess, as_recording, recording

CLASSES = ["lying", "running", "sitting", "standing", "walking"]


# -- units -----------------------------------------------------------------------------------


def test_line_parser_reads_sketch_lines_and_counts_the_rest() -> None:
    parser = LineParser(acc_units="g", gyro_units="deg/s")
    assert parser.feed("MPU6050 ready") == [] and parser.feed("ax,ay,az,gx,gy,gz") == []
    assert parser.feed("1000,0,1,0,90,0,0") == []  # held until the next line agrees on the layout
    both = parser.feed("1020\t0 1 0;0 0 180")
    assert [t for t, _ in both] == [1.0, 1.02]
    np.testing.assert_allclose(both[0][1], [0, STANDARD_GRAVITY, 0, np.pi / 2, 0, 0])
    np.testing.assert_allclose(both[1][1], [0, STANDARD_GRAVITY, 0, 0, 0, np.pi])
    for bad in ("1040,0,1,0", "1060,0,1,0,0,0,nan", "1080,0,1,x,0,0,0", "\x00\ufffd", "1,2"):
        assert parser.feed(bad) == []
    assert parser.feed("") == [] and parser.feed("   ") == []  # blank lines are not malformed
    assert parser.feed("1100,0,1,0,0,0,0")[0][0] == 1.1
    assert parser.malformed == 7 and parser.last_malformed == "1,2"
    assert parser.channels == ("ax", "ay", "az", "gx", "gy", "gz")


def test_line_parser_accelerometer_only_and_a_layout_that_does_not_settle() -> None:
    parser = LineParser()
    assert parser.feed("0.1,9.8,0.2,0,0,0") == []
    assert parser.feed("0.1,9.8,0.2") == []  # disagrees with the held line: that one is dropped
    assert len(parser.feed("0.2,9.7,0.1")) == 2
    assert parser.channels == ("ax", "ay", "az") and parser.malformed == 1


def test_rate_estimate_prefers_device_time() -> None:
    assert estimate_rate([i * 0.01 for i in range(50)], [0.0] * 50) == 100.0
    assert estimate_rate([None] * 11, [i * 0.02 for i in range(11)]) == 50.0
    with pytest.raises(PostureError, match="--rate"):
        estimate_rate([None, None], [1.0, 1.0])


def test_the_cli_default_buffer_is_the_documented_one() -> None:
    assert DEFAULT_BUFFER == RESEND_BUFFER_SAMPLES


def test_backoff_grows_with_jitter_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(first_s=0.5, max_s=4.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(7)]
    for attempt, delay in enumerate(delays):
        ceiling = min(4.0, 0.5 * 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def _chunk(t0: float, rows: int = 10, value: float = 0.0) -> Chunk:
    return Chunk(np.full((rows, 6), value, np.float32) + np.arange(rows, dtype=np.float32)[:, None], t0)


def test_resend_buffer_is_bounded_and_drops_the_oldest_first() -> None:
    buffer = ResendBuffer(rate_hz=50.0, max_samples=25)
    for k in range(3):
        buffer.put(_chunk(k * 0.2))
    assert (buffer.pending, buffer.dropped) == (25, 5)
    first = buffer.take(100)
    assert first is not None and first.t0 == pytest.approx(0.1) and len(first) == 25  # contiguous chunks joined
    np.testing.assert_array_equal(first.values[:5, 0], [5, 6, 7, 8, 9])


def test_resend_buffer_joins_only_contiguous_chunks_within_the_frame_limit() -> None:
    buffer = ResendBuffer(rate_hz=50.0)
    for t0 in (0.0, 0.2, 0.4, 5.0):  # a gap before 5.0
        buffer.put(_chunk(t0))
    assert [(c.t0, len(c)) for c in iter(lambda: buffer.take(25), None)] == [(0.0, 25), (0.5, 5), (5.0, 10)]


def test_resend_buffer_replays_from_the_next_window_after_a_lost_connection() -> None:
    buffer = ResendBuffer(rate_hz=50.0)
    for k in range(20):  # 4 s
        buffer.put(_chunk(k * 0.2))
    while (chunk := buffer.take(10)) is not None:
        buffer.sent(chunk)
    buffer.confirm(1.0 + 1.0)  # the window [1, 3) was predicted: the next starts at 2 s
    assert buffer.unconfirmed_samples == 100
    buffer.rewind()
    again = buffer.take(1000)
    assert again is not None and again.t0 == pytest.approx(2.0) and len(again) == 100 and buffer.dropped == 0


def test_aligner_puts_irregular_sensors_on_one_grid() -> None:
    rng = np.random.default_rng(1)
    acc_t = np.sort(rng.uniform(0.0, 2.0, 190))
    gyro_t = np.sort(rng.uniform(0.05, 2.1, 210))
    line = lambda t: np.column_stack([t, 2 * t, 3 * t])  # noqa: E731  linear: interpolation is exact
    aligner = ImuAligner(rate_hz=50.0, n_sensors=2, max_gap_s=0.5)
    first = aligner.push([(acc_t[:100], line(acc_t[:100])), (gyro_t[:100], -line(gyro_t[:100]))])
    second = aligner.push([(acc_t[100:], line(acc_t[100:])), (gyro_t[100:], -line(gyro_t[100:]))])
    assert first is not None and second is not None
    t0, rows = first[0], np.vstack([first[1], second[1]])
    times = t0 + np.arange(len(rows)) / 50.0
    assert t0 == pytest.approx(max(acc_t[0], gyro_t[0])) and times[-1] <= min(acc_t[-1], gyro_t[-1])
    assert second[0] == pytest.approx(t0 + len(first[1]) / 50.0)  # continues the grid
    np.testing.assert_allclose(rows, np.hstack([line(times), -line(times)]), atol=1e-5)
    resumed = aligner.push(
        [
            (np.array([10.0, 10.02, 10.04]), line(np.array([10.0, 10.02, 10.04]))),
            (np.array([10.01, 10.05]), -line(np.array([10.01, 10.05]))),
        ]
    )
    assert resumed is not None and resumed[0] == pytest.approx(10.01) and len(resumed[1]) == 2  # a new segment


def test_device_argument_picks_the_source(tmp_path: Path) -> None:
    sim = open_device("sim:walking,lying", DeviceOptions(speed=4.0))
    assert sim.label == "sim:walking,lying" and sim.rate_hz == 50.0
    assert isinstance(open_device("serial:/tmp/not-a-port", DeviceOptions()), SerialDevice)
    assert isinstance(open_device("/dev/ttyUSB7", DeviceOptions()), SerialDevice)
    path = tmp_path / "r.csv"
    path.write_text("timestamp,ax,ay,az\n")
    assert isinstance(open_device(str(path), DeviceOptions(loop=True)), FileDevice)
    for argument, message in (("sim:flying", "unknown posture"), ("nothing.csv", "no such file")):
        with pytest.raises(PostureError, match=message):
            open_device(argument, DeviceOptions())
    with pytest.raises(PostureError, match="--speed"):
        open_device("/dev/ttyUSB7", DeviceOptions(speed=2.0))


# -- the real server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(trained_home, tmp_path_factory.mktemp("stream-client-server"))
    yield process
    assert process.stop() == 0


class StreamProcess:
    """`posture stream --json` as a user runs it; prediction lines are collected as they come."""

    def __init__(self, home: Path, url: str, *args: str) -> None:
        env = {**os.environ, "POSTURE_HOME": str(home), "COLUMNS": "200"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "posture_cli", "stream", "--url", url, "--json", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        self.predictions: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, pipe: Any, is_stdout: bool) -> None:
        for line in pipe:
            if is_stdout:
                self.predictions.append(json.loads(line))
            else:
                self.stderr.append(line)

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"stream did not get there (exit {self.process.poll()}):\n{''.join(self.stderr)}")
            time.sleep(0.05)

    def finish(self, timeout: float = 60.0, sig: int | None = None) -> dict[str, Any]:
        """Send ``sig`` (if any), wait for a clean exit, return the closing summary."""
        if sig is not None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
        for reader in self._readers:
            reader.join(5)
        assert code == 0, "".join(self.stderr)
        summaries = [json.loads(line) for line in self.stderr if line.startswith('{"type": "summary"')]
        assert summaries, "".join(self.stderr)
        return summaries[-1]


def _closed_cleanly(server: ServerProcess, session_id: str) -> None:
    sql = "SELECT COUNT(*) FROM connections WHERE session_id = :s AND close_code = 1000"
    assert server.wait_rows(sql, 1, s=session_id) == 1


def test_sim_device_end_to_end(server: ServerProcess, trained_home: Path) -> None:
    client = StreamProcess(
        trained_home,
        server.ws_url,
        "--device",
        "sim:walking,sitting",
        "--speed",
        "8",
        "--duration",
        "5",
        "--binary",
        "--device-id",
        "test-sim",
    )
    summary = client.finish()
    got = client.predictions
    assert len(got) >= 25 and summary["predictions"] == len(got)
    assert [m["window_start"] for m in got] == [float(k) for k in range(len(got))]
    labels = [m["label"] for m in got]  # 20 s of each posture; the simulator's seed differs per run
    assert labels[:18].count("walking") >= 15 and labels[23:].count("sitting") >= 0.8 * len(labels[23:])
    assert all(m["rtt_ms"] > 0 and set(m["probabilities"]) == set(CLASSES) for m in got)
    assert (summary["errors"], summary["reconnects"], summary["dropped_samples"]) == (0, 0, 0)
    assert set(summary["seconds_per_label"]) >= {"walking", "sitting"} and summary["frames_per_s"] > 0
    _closed_cleanly(server, got[0]["session_id"])


def test_file_replay_gives_the_labels_of_posture_predict(
    server: ServerProcess, trained_home: Path, tmp_path: Path
) -> None:
    frame = recording(trained_home, "s02-mixed-2")
    frame = frame[(frame["timestamp"] < 60.0) | (frame["timestamp"] >= 62.5)]  # a gap: two segments
    path = tmp_path / "mixed.csv"
    frame.to_csv(path, index=False)
    expected = pd.read_csv(io.StringIO(run_cli("predict", str(path), "-o", "-", home=trained_home).stdout))
    client = StreamProcess(trained_home, server.ws_url, "--device", str(path), "--speed", "60")
    summary = client.finish()
    got = sorted(client.predictions, key=lambda m: m["window_start"])
    assert len(got) == len(expected) == summary["predictions"]
    np.testing.assert_allclose([m["window_start"] for m in got], expected["start"], atol=1e-4)
    assert [m["label"] for m in got] == expected["label"].tolist()
    np.testing.assert_allclose(
        [[m["probabilities"][c] for c in CLASSES] for m in got],
        expected[[f"p_{c}" for c in CLASSES]].to_numpy(),
        atol=1e-5,
    )
    assert summary["errors"] == 0 and summary["dropped_samples"] == 0


def _sketch_line(ms: int, row: np.ndarray) -> bytes:
    """What an MPU6050 sketch prints: millis(), acceleration in g, rotation in deg/s."""
    acc, gyro = row[:3] / STANDARD_GRAVITY, np.degrees(row[3:])
    return (f"{ms}," + ",".join(f"{v:.4f}" for v in acc) + "," + ",".join(f"{v:.3f}" for v in gyro) + "\r\n").encode()


MALFORMED = [
    b"MPU6050 found!\r\n",
    b"ms,ax,ay,az,gx,gy,gz\r\n",
    b"0.98,0.01\r\n",
    b"1,nan,0,0,0,0,0\r\n",
    b"\x00\xff\xfe garbage\r\n",
    b"12,0.1,0.2\r\n",
]


def test_serial_device_on_a_pty_with_malformed_lines(server: ServerProcess, trained_home: Path) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    stop, inject = threading.Event(), threading.Event()
    data, _ = SimulatedIMU(["standing"], 600.0, 50.0, seed=3).read(50 * 60)

    def write_lines() -> None:  # 50 lines/s in bursts of 5, the malformed ones once asked for
        pending = list(MALFORMED)
        for i in range(0, len(data), 5):
            if stop.is_set():
                return
            burst = b"".join(_sketch_line(1000 + 20 * (i + k), data[i + k]) for k in range(5))
            if inject.is_set() and pending:
                burst += pending.pop(0)
            os.write(master, burst)
            time.sleep(0.1)

    writer = threading.Thread(target=write_lines, daemon=True)
    writer.start()
    try:
        client = StreamProcess(
            trained_home,
            server.ws_url,
            "--device",
            os.ttyname(slave),
            "--acc-units",
            "g",
            "--gyro-units",
            "deg/s",
            "--duration",
            "60",
        )
        client.wait_for(lambda: len(client.predictions) >= 1, 30)  # the port is open and read: now the junk
        inject.set()
        seen = len(client.predictions)
        client.wait_for(lambda: len(client.predictions) >= seen + 3, 30)
        summary = client.finish(sig=signal.SIGINT)
    finally:
        stop.set()
        writer.join(5)
        os.close(master)
        os.close(slave)
    got = client.predictions
    assert summary["malformed_lines"] == len(MALFORMED) and summary["errors"] == 0
    assert [m["window_start"] for m in got] == [float(k) for k in range(len(got))]
    assert sum(m["label"] == "standing" for m in got) >= 0.8 * len(got)
    _closed_cleanly(server, got[0]["session_id"])


def test_server_killed_and_restarted_mid_stream(
    trained_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers = [ServerProcess(trained_home, tmp_path / "first")]
    monkeypatch.setattr(serving_support, "free_port", lambda: servers[0].port)  # restarts take the same port
    client = StreamProcess(
        trained_home, servers[0].ws_url, "--device", "sim:walking,standing", "--speed", "2", "--duration", "120"
    )
    outages = []
    try:
        for number, sig in enumerate((signal.SIGKILL, signal.SIGTERM), start=1):  # killed, then shut down (1001)
            client.wait_for(lambda: len(client.predictions) >= 4 * number, 30)
            servers[-1].stop(sig)
            down_at = time.monotonic()
            servers.append(ServerProcess(trained_home, tmp_path / f"restart-{number}"))
            outages.append(time.monotonic() - down_at)
        client.wait_for(lambda: len({m["session_id"] for m in client.predictions}) == 3, 60)
        seen = len(client.predictions)
        client.wait_for(lambda: len(client.predictions) >= seen + 2, 30)
        summary = client.finish(sig=signal.SIGTERM)
        # While the last server still runs: its store flushes the closing row within a tick.
        _closed_cleanly(servers[-1], client.predictions[-1]["session_id"])
    finally:
        for process in servers:
            process.kill()
    got = client.predictions
    # Every window once, in order, across the three sessions: the buffer replayed from the next window.
    assert [m["window_start"] for m in got] == [float(k) for k in range(len(got))]
    assert summary["reconnects"] == 2 and summary["dropped_samples"] == 0 and summary["errors"] == 0
    assert all(reconnect >= outage * 0.5 for reconnect, outage in zip(summary["reconnect_s"], outages))


def _sensorlogger_payloads(frame: pd.DataFrame, per_push: int) -> Iterator[list[dict[str, Any]]]:
    """Readings as the app pushes them: accelerometer without gravity, gravity, gyroscope; times in ns."""
    values = frame[CHANNELS].to_numpy()
    gravity = pd.DataFrame(values[:, :3]).rolling(25, min_periods=1).mean().to_numpy()
    base_ns = 1_700_000_000_000_000_000
    for start in range(0, len(values), per_push):
        payload = []
        for i in range(start, min(start + per_push, len(values))):
            t = base_ns + i * 20_000_000
            for name, xyz in (
                ("accelerometer", values[i, :3] - gravity[i]),
                ("gravity", gravity[i]),
                ("gyroscope", values[i, 3:]),
            ):
                payload.append({"name": name, "time": t, "values": dict(zip("xyz", xyz.tolist())), "accuracy": 3})
        payload.append({"name": "location", "time": base_ns, "values": {"latitude": 1.0, "longitude": 2.0}})
        yield payload


def test_sensorlogger_push_feeds_a_stream_session(
    server: ServerProcess, trained_home: Path, champion: LoadedModel
) -> None:
    frame = recording(trained_home, "s04-mixed-1", seconds=40.0)
    expected = predict_recording(champion, as_recording(frame))
    got, sessions = [], set()
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        for number, payload in enumerate(_sensorlogger_payloads(frame, per_push=50)):
            body = {"messageId": number, "sessionId": "sl-session-1", "deviceId": "iphone-test", "payload": payload}
            answer = http.post("/v1/push/sensorlogger", json=body)
            assert answer.status_code == 200, answer.text
            got += answer.json()["predictions"]
            sessions.add(answer.json()["session_id"])
            if number == 3:
                again = http.post("/v1/push/sensorlogger", json=body).json()
                assert again["duplicate"] and again["samples"] == 0
        no_gravity = http.post(
            "/v1/push/sensorlogger",
            json={
                "messageId": 0,
                "sessionId": "sl-2",
                "payload": [{"name": "accelerometer", "time": 1, "values": {"x": 0.1, "y": 0.2, "z": 0.3}}],
            },
        )
        assert no_gravity.status_code == 422 and "Total Acceleration" in no_gravity.json()["detail"]
    assert len(sessions) == 1 and len(got) == len(expected.start)
    assert [m["label"] for m in got] == list(expected.labels)
    np.testing.assert_allclose([m["window_start"] for m in got], expected.start, atol=1e-6)
    np.testing.assert_allclose(
        [[m["probabilities"][c] for c in expected.classes] for m in got], expected.probabilities, atol=1e-4
    )
    sql = "SELECT COUNT(*) FROM predictions WHERE session_id = :s"
    assert server.wait_rows(sql, len(got), s=sessions.pop()) == len(got)
