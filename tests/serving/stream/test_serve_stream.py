"""WebSocket /v1/stream on the real `posture serve`: sessions that match `posture predict`,
bad frames, limits, binary frames, hot reload, SIGTERM, and PostgreSQL through an outage.
Unit tests of the protocol parser and the stream windower come first."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from features.errors import SpecError
from features.spec import WindowSpec
from features.windows import sliding_windows
from pipelines.predict import predict_recording
from pipelines.registry import LoadedModel, connect
from pipelines.settings import Settings
from serving.stream.buffer import StreamWindower
from serving.stream.protocol import FrameError, FrameTooBig, Hello, parse_binary, parse_text
from tests.conftest import run_cli
from tests.serving.serving_support import (
    CHANNELS,
    ServerProcess,
    as_recording,
    binary_frames,
    expected_windows,
    json_frames,
    probabilities,
    receive_until,
    recording,
    stream,
)
from tests.serving.store.store_helpers import TcpProxy, pg_url, throwaway_database

SPEC = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0, channels=tuple(CHANNELS))
SESSION_SQL = "SELECT COUNT(*) FROM predictions WHERE session_id = :s"
CLASSES = ["lying", "running", "sitting", "standing", "walking"]


# -- units: the wire protocol and the per-session windower ----------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"samples": []}', "bad_frame"),
        ('{"samples": [[1, 2, 3]]}', "bad_frame"),
        ('{"samples": [[1, 2, 3, 4, 5, 6], [1, 2]]}', "bad_frame"),
        ('{"samples": [["a", 2, 3, 4, 5, 6]]}', "bad_frame"),
        ('{"samples": [[1, 2, 3, 4, 5, NaN]]}', "non_finite"),
        ('{"samples": [[1, 2, 3, 4, 5, 1e300]]}', "non_finite"),
        ('{"samples": [[1, 2, 3, 4, 5, 6]], "t0": "soon"}', "bad_frame"),
        ('{"type": "hello", "rate_hz": -1}', "bad_hello"),
        ('{"type": "hello", "channels": ["ax", "ax"]}', "bad_hello"),
        ('{"type": "hello", "channels": ["ax", "mag"]}', "bad_hello"),
        ('{"type": "hello", "device_id": 7}', "bad_hello"),
    ],
)
def test_bad_text_frames_get_a_stable_code(frame: str, code: str) -> None:
    with pytest.raises(FrameError) as raised:
        parse_text(frame, 6, 1000)
    assert raised.value.code == code


def test_good_frames_parse() -> None:
    samples = parse_text('{"samples": [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], "t0": 3.5}', 6, 1000)
    assert samples.values.dtype == np.float32 and samples.values.shape == (2, 6) and samples.t0 == 3.5
    hello = parse_text('{"type": "hello", "device_id": "d", "rate_hz": 100, "channels": ["az", "ax", "ay"]}', 3, 10)
    assert hello == Hello("d", 100.0, ("az", "ax", "ay"))
    binary = parse_binary(struct.pack("<12f", *range(12)), 6, 1000)
    np.testing.assert_array_equal(binary.values, np.arange(12, dtype=np.float32).reshape(2, 6))
    with pytest.raises(FrameError, match="whole rows"):
        parse_binary(b"\x00" * 25, 6, 1000)
    with pytest.raises(FrameTooBig):
        parse_binary(b"\x00" * 24 * 11, 6, 10)
    with pytest.raises(FrameTooBig):
        parse_text(json.dumps({"samples": [[0] * 6] * 11}), 6, 10)


def test_windower_cuts_the_same_windows_whatever_the_frame_sizes() -> None:
    values = np.random.default_rng(1).normal(size=(1234, 6)).astype(np.float32)
    windower = StreamWindower(SPEC, CHANNELS, 50.0, max_gap_s=0.5)
    bounds = np.cumsum([0, 1, 99, 3, 250, 7, 400, 474])
    pushed = [windower.push(values[a:b], None) for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_array_equal(np.concatenate([w for w, _ in pushed]), sliding_windows(values, 100, 50))
    np.testing.assert_allclose(np.concatenate([s for _, s in pushed]), np.arange(expected_windows(1234)) * 1.0)


def test_windower_maps_channels_and_follows_t0() -> None:
    windower = StreamWindower(SPEC, CHANNELS[::-1], 50.0, max_gap_s=0.5)
    values = np.random.default_rng(3).normal(size=(150, 6)).astype(np.float32)
    windows, starts = windower.push(values, t0=100.0)
    np.testing.assert_array_equal(windows[0], values[:100, ::-1])
    assert list(starts) == [100.0, 101.0]
    _, starts = windower.push(values[:60], t0=103.02)  # on time (jitter under max_gap_s)
    assert list(starts) == [102.0]
    with pytest.raises(FrameError) as back:
        windower.push(values[:10], t0=90.0)
    assert back.value.code == "bad_time"
    _, starts = windower.push(values[:100], t0=200.0)  # a gap: a new segment starts at t0
    assert list(starts) == [200.0]
    with pytest.raises(SpecError, match="gx"):
        StreamWindower(SPEC, ["ax", "ay", "az"], 50.0, 0.5)


# -- the real server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Pings every second: a client that stops answering is gone within about two.
    process = ServerProcess(
        trained_home, tmp_path_factory.mktemp("stream-server"), env={"POSTURE_HEARTBEAT_INTERVAL_S": "1"}
    )
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def mixed(trained_home: Path) -> Any:
    return recording(trained_home, "s03-mixed-2")


def test_a_session_matches_posture_predict(server: ServerProcess, champion: LoadedModel, mixed: Any) -> None:
    raw = predict_recording(champion, as_recording(mixed))
    smoothed = predict_recording(champion, as_recording(mixed), smooth=True)
    frames = list(json_frames(mixed, rows=25))
    hello = {"device_id": "phone-42", "rate_hz": 50, "channels": CHANNELS}
    ready, got, errors = asyncio.run(stream(server.ws_url, frames, hello, expect=len(raw.start)))
    assert ready["model"]["version"] == "1" and ready["channels"] == CHANNELS and not errors
    assert len(got) == len(raw.start) == expected_windows(len(mixed))
    assert [m["label"] for m in got] == list(raw.labels)
    np.testing.assert_allclose(probabilities(got, raw.classes), raw.probabilities, atol=1e-6)
    np.testing.assert_allclose(
        probabilities(got, raw.classes, "smoothed_probabilities"), smoothed.probabilities, atol=1e-6
    )
    assert [m["smoothed_label"] for m in got] == list(smoothed.labels)
    np.testing.assert_allclose([m["window_start"] for m in got], raw.start, atol=1e-6)
    np.testing.assert_allclose([m["window_end"] for m in got], raw.end, atol=1e-6)
    assert all(m["model_version"] == "1" and m["latency_ms"] > 0 for m in got)
    session = ready["session_id"]
    assert server.wait_rows(SESSION_SQL, len(got), s=session) == len(got)
    closed = "SELECT frames, predictions, errors, close_code, device_hash FROM connections WHERE session_id = :s AND closed_at IS NOT NULL"
    assert server.wait_rows(
        closed.replace("frames, predictions, errors, close_code, device_hash", "COUNT(*)"), 1, s=session
    )
    ((frames_seen, predicted, errors_seen, code, device_hash),) = server.query(closed, s=session)
    assert (frames_seen, predicted, errors_seen, code) == (len(frames) + 1, len(got), 0, 1000)
    assert device_hash and "phone-42" not in device_hash


def test_binary_frames_and_a_declared_layout_give_the_same_predictions(
    server: ServerProcess, trained_home: Path
) -> None:
    part = recording(trained_home, "s07-mixed-1", seconds=30.0)
    _, as_json, _ = asyncio.run(stream(server.ws_url, list(json_frames(part, 50)), expect=29))
    _, as_binary, _ = asyncio.run(stream(server.ws_url, list(binary_frames(part, 50)), expect=29))
    # 100 Hz, channels in another order: midpoints between the 50 Hz samples, resampled back.
    values = part[CHANNELS].to_numpy()
    doubled = np.empty((2 * len(values) - 1, 6))
    doubled[::2], doubled[1::2] = values, (values[:-1] + values[1:]) / 2
    order = ["gz", "gy", "gx", "az", "ay", "ax"]
    reordered = doubled[:, [CHANNELS.index(c) for c in order]].astype("<f4")
    frames = [reordered[i : i + 64].tobytes() for i in range(0, len(reordered), 64)]
    ready, declared, _ = asyncio.run(stream(server.ws_url, frames, {"rate_hz": 100, "channels": order}, expect=29))
    assert ready["rate_hz"] == 100 and ready["channels"] == order
    for other in (as_binary, declared):
        assert [m["label"] for m in other] == [m["label"] for m in as_json]
        np.testing.assert_allclose(probabilities(other, CLASSES), probabilities(as_json, CLASSES), atol=1e-6)
        np.testing.assert_allclose([m["window_start"] for m in other], [m["window_start"] for m in as_json], atol=1e-6)


def test_bad_frames_get_errors_and_the_session_goes_on(server: ServerProcess, mixed: Any) -> None:
    good = list(json_frames(mixed.iloc[:300], 50))
    bad = [
        "not json",
        json.dumps({"samples": [[1.0, 2.0]]}),
        '{"samples": [[1, 2, 3, 4, 5, NaN]]}',
        json.dumps({"type": "stop"}),
        b"\x00" * 7,
        json.dumps({"type": "hello", "rate_hz": 25}),
        json.dumps({"samples": [[0.0] * 6], "t0": -50.0}),
    ]
    frames = good[:2] + bad + good[2:]
    ready, got, errors = asyncio.run(stream(server.ws_url, frames, expect=expected_windows(300)))
    assert [e["code"] for e in errors] == [
        "bad_json",
        "bad_frame",
        "non_finite",
        "unknown_type",
        "bad_frame",
        "bad_hello",
        "bad_time",
    ]
    assert all(e["detail"] for e in errors)
    assert [m["window_start"] for m in got] == [0.0, 1.0, 2.0, 3.0, 4.0]  # no frame lost around the bad ones
    closed = "SELECT errors FROM connections WHERE session_id = :s AND closed_at IS NOT NULL"
    assert server.wait_rows(closed.replace("errors", "COUNT(*)"), 1, s=ready["session_id"]) == 1
    assert server.query(closed, s=ready["session_id"])[0][0] == len(bad)
    assert server.metric("websocket_frames_received_total", format="json", outcome="error") >= 6


async def _closed_by(url: str, frames: list[Any]) -> tuple[int, str]:
    async with websockets.connect(url, max_size=None) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("the server did not close the session")


def test_oversize_frames_close_with_1009(server: ServerProcess) -> None:
    huge = json.dumps({"samples": [[1.0] * 6] * 900, "pad": "x" * 70_000})
    code, reason = asyncio.run(_closed_by(server.ws_url, [huge]))
    assert code == 1009 and "limit is 65536" in reason
    code, reason = asyncio.run(_closed_by(server.ws_url, [np.zeros((1001, 6), "<f4").tobytes()]))
    assert code == 1009 and "1001 rows" in reason
    assert server.metric("websocket_sessions_closed_total", code="1009") >= 2


def test_flooding_closes_with_1008(server: ServerProcess) -> None:
    frame = json.dumps({"samples": [[0.1, 9.8, 0.2, 0.0, 0.0, 0.0]]})
    code, reason = asyncio.run(_closed_by(server.ws_url, [frame] * 3000))  # burst 400, 200/s
    assert code == 1008 and "rate limit" in reason
    assert server.metric("rate_limited_requests_total", scope="ws") >= 1
    time.sleep(2.5)  # let the loopback address's bucket refill for later sessions


def test_heartbeats_drop_a_client_that_stopped_answering(server: ServerProcess) -> None:
    closed_sql = "SELECT COUNT(*) FROM connections WHERE closed_at IS NOT NULL"
    before = server.query(closed_sql)[0][0]
    with socket.create_connection(("127.0.0.1", server.port)) as raw:  # a WebSocket that never answers a ping
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        raw.settimeout(10)
        assert raw.recv(4096).startswith(b"HTTP/1.1 101")
        started = time.monotonic()
        while raw.recv(4096):  # pings (unanswered), then the server hangs up
            pass
        assert time.monotonic() - started < 5
    assert server.wait_rows(closed_sql, before + 1) == before + 1


# -- dedicated servers: hot reload, SIGTERM, PostgreSQL outage --------------------------------


def copy_home(trained_home: Path, root: Path) -> Path:
    """A home of its own whose registry a test may change (artifacts stay in trained_home)."""
    (root / "mlflow").mkdir(parents=True)
    (root / "data").mkdir()
    shutil.copy(trained_home / "mlflow" / "mlflow.db", root / "mlflow" / "mlflow.db")
    return root


def continuous_frames(frame: Any, rows: int) -> list[str]:
    """Frames without t0: the server's timeline counts samples, so they can repeat forever."""
    values = frame[CHANNELS].to_numpy()
    return [json.dumps({"samples": values[i : i + rows].tolist()}) for i in range(0, len(values) - rows + 1, rows)]


def test_hot_reload_while_a_session_streams(trained_home: Path, tmp_path: Path, mixed: Any) -> None:
    home = copy_home(trained_home, tmp_path / "home")
    # Explicit URI: loading a model earlier set MLFLOW_TRACKING_URI to trained_home's registry.
    registry = connect(Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"))
    v1 = registry.get_model_version("posture", "1")
    v2 = registry.create_model_version("posture", v1.source, v1.run_id, tags=dict(v1.tags))  # a second version
    server = ServerProcess(home, tmp_path / "data", env={"POSTURE_RELOAD_INTERVAL_S": "0.3"})
    promoted, failures = threading.Event(), []

    def promote() -> None:
        try:
            run_cli("models", "promote", str(v2.version), home=home)
        except AssertionError as err:
            failures.append(err)
        promoted.set()

    async def scenario() -> list[dict[str, Any]]:
        frames = continuous_frames(mixed, rows=50)  # 1 s of samples a frame, sent 20x faster than real time
        got: list[dict[str, Any]] = []
        async with websockets.connect(server.ws_url) as ws:
            threading.Thread(target=promote, daemon=True).start()
            for sent, frame in enumerate(frames * 10, start=1):
                await ws.send(frame)
                await asyncio.sleep(0.05)
                got.extend(await receive_until(ws, sent - 1 - len(got)))  # frame k completes window k-1
                if failures or promoted.is_set() and sum(m["model_version"] == "2" for m in got) >= 5:
                    break
        return got

    try:
        got = asyncio.run(scenario())
        assert not failures
        assert httpx.get(f"{server.url}/v1/models").json()["models"][0]["version"] == "2"
        assert server.metric("model_reloads_total", outcome="ok") == 1
    finally:
        assert server.stop() == 0
    versions = [m["model_version"] for m in got]
    switch = versions.index("2")
    assert switch > 0 and set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}
    assert [m["window_start"] for m in got] == [float(i) for i in range(len(got))]  # not a window lost
    assert any(e["event"] == "model_reloaded" and e["version"] == "2" for e in server.events())


def test_sigterm_closes_sessions_with_1001_and_flushes_every_row(
    trained_home: Path, tmp_path: Path, mixed: Any
) -> None:
    # A long flush interval: rows are still in memory when the signal comes.
    server = ServerProcess(trained_home, tmp_path / "data", env={"POSTURE_LOG_FLUSH_INTERVAL_S": "30"})

    async def scenario() -> tuple[str, int, int]:
        async with websockets.connect(server.ws_url) as ws:
            for frame in continuous_frames(mixed.iloc[:1000], 50):
                await ws.send(frame)
            ready = await receive_until(ws, 1, kind="ready")
            got = await receive_until(ws, expected_windows(1000))
            server.process.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(15):
                    while True:
                        await ws.recv()
            return ready[0]["session_id"], len(got), closed.value.rcvd.code

    session, predicted, code = asyncio.run(scenario())
    assert code == 1001
    assert server.stop() == 0
    assert server.query(SESSION_SQL, s=session)[0][0] == predicted == 19
    assert server.query("SELECT close_code, predictions FROM connections WHERE session_id = :s", s=session) == [
        (1001, 19)
    ]
    served = server.query("SELECT value FROM model_metrics WHERE metric = 'served_predictions' AND dataset = 'served'")
    assert served and served[-1][0] == 19
    events = [e["event"] for e in server.events()]
    assert events.index("session_closed") < events.index("server_stopped")


def test_postgres_outage_mid_stream_loses_no_prediction(trained_home: Path, tmp_path: Path, mixed: Any) -> None:
    with throwaway_database() as database:
        proxy = TcpProxy()
        env = {"POSTURE_DATABASE_URL": pg_url(database, proxy.port), "POSTURE_LOG_FLUSH_INTERVAL_S": "0.05"}
        server = ServerProcess(trained_home, tmp_path / "data", env=env)
        direct = pg_url(database)  # the test reads PostgreSQL itself, not through the proxy
        try:
            session, total = asyncio.run(_stream_through_outage(server, proxy, mixed))
            assert server.stop(signal.SIGINT) == 0
        finally:
            server.kill()
            proxy.close()
        server.database_url = direct
        assert server.query(SESSION_SQL, s=session)[0][0] == total
        starts = [
            row[0]
            for row in server.query("SELECT window_start FROM predictions WHERE session_id = :s ORDER BY id", s=session)
        ]
        assert starts == [float(i) for i in range(total)]  # each once, in order
        assert server.query("SELECT close_code FROM connections WHERE session_id = :s", s=session) == [(1000,)]


async def _stream_through_outage(server: ServerProcess, proxy: TcpProxy, mixed: Any) -> tuple[str, int]:
    frames = continuous_frames(mixed, 50)
    readyz = f"{server.url}/readyz"
    async with httpx.AsyncClient(timeout=10) as http, websockets.connect(server.ws_url) as ws:

        async def send(part: list[str]) -> list[dict[str, Any]]:
            for frame in part:
                await ws.send(frame)
            return await receive_until(ws, len(part))

        await ws.send(frames[0])
        session = (await receive_until(ws, 1, kind="ready"))[0]["session_id"]
        got = await send(frames[1:20])
        assert server.wait_rows(SESSION_SQL, len(got), s=session) == len(got)  # rows reach PostgreSQL
        proxy.cut()
        got += await send(frames[20:40])  # predictions go on during the outage
        ready = await _wait_degraded(http, readyz)  # still serving: 200, rows spooling
        assert ready["database"] == "unreachable" and "unreachable, spooling" in ready["reasons"][0]
        got += await send(frames[40:60])
        await _wait_spooled(server)  # the writer may still be waiting on the cut connection
        proxy.restore()
        ready = await _wait_status(http, readyz, 200)
        got += await send(frames[60:80])
        await _wait_backlog_empty(http, readyz)
    return session, len(got)


async def _wait_status(http: httpx.AsyncClient, url: str, status: int, timeout: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while (answer := await http.get(url)).status_code != status:
            await asyncio.sleep(0.1)
    return answer.json()


async def _wait_degraded(http: httpx.AsyncClient, url: str, timeout: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while (answer := await http.get(url)).json()["status"] != "degraded":
            await asyncio.sleep(0.1)
    assert answer.status_code == 200
    return answer.json()


async def _wait_spooled(server: ServerProcess, timeout: float = 20.0) -> None:
    """Until the store has spooled rows (the outage reached the writer), at most ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while server.metric("prediction_log_rows_spooled_total") == 0:
            await asyncio.sleep(0.1)


async def _wait_backlog_empty(http: httpx.AsyncClient, url: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while (await http.get(url)).json()["backlog"]:
            await asyncio.sleep(0.1)
