"""Hostile and careless input against the real `posture serve` (issues 15 and 20): work
amplification by a tiny rate or sparse timestamps, bodies that used to answer 500, and stream
frames that used to end the session with 1011 or log a traceback. Each is refused with a
documented code, the server stays responsive (/healthz) and a valid input afterwards predicts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import websockets

from tests.serving.serving_support import (
    CHANNELS,
    ServerProcess,
    json_frames,
    receive_until,
    recording,
    stream,
)

T = TypeVar("T")
HUGE_INT = "1" + "0" * 400  # an integer literal beyond float range
ROW = [0.1, 9.7, 0.3, 0.01, 0.0, -0.02]
SESSION_SQL = "SELECT COUNT(*) FROM predictions WHERE session_id = :s"


@pytest.fixture(scope="module")
def server(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # A bucket that barely refills: charging frames by their resampled samples shows within a few
    # frames however slow the machine. The other tests here use well under the burst in all.
    limits = {"POSTURE_RATE_LIMIT_PER_S": "1", "POSTURE_RATE_LIMIT_BURST": "100"}
    process = ServerProcess(trained_home, tmp_path_factory.mktemp("bad-input-server"), env=limits)
    yield process
    assert process.stop() == 0
    assert "Traceback" not in process.log()


@pytest.fixture(scope="module")
def rows(trained_home: Path) -> list[list[float]]:
    """Twenty seconds of a real recording at the model's 50 Hz: 1,000 rows, in 3 decimals so
    that they fit one frame (~48 KB)."""
    values = recording(trained_home, "s03-mixed-2", seconds=20.0)[CHANNELS].to_numpy()
    return [[round(v, 3) for v in row] for row in values.tolist()]


async def _probing(url: str, attack: Awaitable[T]) -> tuple[T, int]:
    """Run ``attack`` while /healthz is asked every 50 ms: its result and the probes answered 200.

    The bound on the work an input causes is asserted by counting what it produced (windows,
    rows), not by timing; the probe shows that the server kept answering meanwhile. (Before
    the bounds, one tiny-rate frame stalled /healthz for 2-4 s.)
    """
    done = asyncio.Event()

    async def probe() -> int:
        answered = 0
        async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
            while not done.is_set():
                assert (await http.get("/healthz")).status_code == 200
                answered += 1
                await asyncio.sleep(0.05)
        return answered

    prober = asyncio.create_task(probe())
    await asyncio.sleep(0.1)  # the first probe is in
    try:
        result = await attack
    finally:
        done.set()
    return result, await prober


def _no_traceback(server: ServerProcess) -> None:
    assert "Traceback" not in server.log()


# -- work amplification ---------------------------------------------------------------------


def test_a_tiny_rate_hello_is_refused_and_the_session_goes_on(server: ServerProcess, rows: list[list[float]]) -> None:
    frame = json.dumps({"samples": rows})  # 20 s at 50 Hz: 19 windows, not 99,899 at 0.01 Hz

    async def attack() -> list[Any]:
        return [await stream(server.ws_url, [frame], {"rate_hz": 0.01}, expect=19) for _ in range(5)]

    sessions, probes = asyncio.run(_probing(server.url, attack()))
    assert probes >= 1
    for ready, predictions, errors in sessions:
        assert [e["code"] for e in errors] == ["bad_hello"] and "below 5 Hz" in errors[0]["detail"]
        assert ready["rate_hz"] == 50.0 and len(predictions) == 19  # the frame went on at the model's rate
        assert server.wait_rows(SESSION_SQL, 19, s=ready["session_id"]) == 19
    _no_traceback(server)


def test_upsampled_frames_are_charged_by_their_samples(server: ServerProcess, rows: list[list[float]]) -> None:
    """At the 5 Hz floor a frame of 1,000 rows makes 10,000 samples: 10 tokens of a 100 burst,
    so about 10 frames pass. Charged by frames, all 30 would (31 tokens), and make 5,970 windows."""
    frame = json.dumps({"samples": rows})

    async def flood() -> tuple[int, int]:
        predictions = 0
        # From another loopback address: its own address bucket, which the other tests do not share.
        async with websockets.connect(server.ws_url, max_size=None, local_addr=("127.0.0.2", 0)) as ws:
            await ws.send(json.dumps({"type": "hello", "rate_hz": 5}))
            try:
                for _ in range(30):
                    await ws.send(frame)
                async with asyncio.timeout(60):
                    async for message in ws:
                        predictions += json.loads(message)["type"] == "prediction"
            except websockets.ConnectionClosed:
                pass
            assert ws.close_code is not None
            return ws.close_code, predictions

    code, predictions = asyncio.run(flood())
    assert code == 1008
    assert 199 <= predictions <= 200 * 15  # each admitted frame made ~200 windows
    assert server.metric("rate_limited_requests_total", scope="ws") >= 1
    _no_traceback(server)


def test_predict_refuses_a_tiny_rate_and_too_many_resampled_samples(
    server: ServerProcess, rows: list[list[float]]
) -> None:
    async def attack() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
            return [
                await http.post("/v1/predict", json={"samples": rows, "rate_hz": 0.01}),
                await http.post("/v1/predict", json={"samples": rows[:750] * 2, "rate_hz": 10}),  # 7,496 samples: fine
                await http.post("/v1/predict", json={"samples": rows + rows[:300], "rate_hz": 6}),  # 10,826
                await http.post("/v1/predict", json={"samples": [], "rate_hz": 25}),
            ]

    (tiny, tenfold, too_many, empty), probes = asyncio.run(_probing(server.url, attack()))
    assert probes >= 1
    ((error,),) = [tiny.json()["detail"]]
    assert tiny.status_code == 422 and error["loc"] == ["body", "rate_hz"] and "below 5 Hz" in error["msg"]
    assert tenfold.status_code == 200 and len(tenfold.json()["predictions"]) == 148
    ((error,),) = [too_many.json()["detail"]]
    assert too_many.status_code == 422 and error["loc"] == ["body", "samples"]
    assert "10826 samples" in error["msg"] and "limit is 10000" in error["msg"]
    assert empty.status_code == 422 and "shorter than one window" in empty.json()["detail"][0]["msg"]  # was a 500
    valid = httpx.post(f"{server.url}/v1/predict", json={"samples": rows, "rate_hz": 50}, timeout=10.0)
    assert valid.status_code == 200 and len(valid.json()["predictions"]) == 19
    _no_traceback(server)


def _payload(rows: list[list[float]], base_ns: int) -> list[dict[str, Any]]:
    """Sensor Logger readings, 20 ms apart: acceleration with gravity and the gyroscope."""
    payload = []
    for i, row in enumerate(rows):
        t = base_ns + i * 20_000_000
        payload.append({"name": "totalacceleration", "time": t, "values": dict(zip("xyz", row[:3]))})
        payload.append({"name": "gyroscope", "time": t, "values": dict(zip("xyz", row[3:]))})
    return payload


def test_a_sensorlogger_push_with_sparse_timestamps_is_refused(server: ServerProcess, rows: list[list[float]]) -> None:
    base = 1_700_000_000_000_000_000
    sparse = _payload(rows[:1], base) + _payload(rows[1:2], base + 10_000 * 10**9)  # 10,000 s apart

    async def attack() -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as http:
            return await http.post("/v1/push/sensorlogger", json={"sessionId": "sparse-1", "payload": sparse})

    refused, probes = asyncio.run(_probing(server.url, attack()))
    assert probes >= 1
    assert refused.status_code == 422 and "500001 samples" in refused.json()["detail"]
    later = base + 20_000 * 10**9
    valid = httpx.post(
        f"{server.url}/v1/push/sensorlogger",
        timeout=10.0,
        json={"sessionId": "sparse-1", "payload": _payload(rows[:150], later)},
    )
    assert valid.status_code == 200, valid.text
    body = valid.json()
    assert body["samples"] == 150 and len(body["predictions"]) == 2 and not body["errors"]
    _no_traceback(server)


# -- HTTP bodies that answered 500 ------------------------------------------------------------


def test_bodies_that_answered_500_get_a_4xx_naming_the_problem(server: ServerProcess) -> None:
    reading = '{"name": "totalacceleration", "time": %s, "values": {"x": %s, "y": 9.7, "z": 0.3}}'
    json_body = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=10.0, headers=json_body) as http:
        not_utf8 = http.post("/v1/predict", content=b"\xff")
        assert not_utf8.status_code == 422
        assert not_utf8.json()["detail"][0]["loc"] == ["body"] and "Invalid JSON" in not_utf8.json()["detail"][0]["msg"]
        assert http.post("/v1/predict", content=b'{"samples": [[1, "\xff"]]}').status_code == 422
        big_time = http.post(
            "/v1/push/sensorlogger",
            content='{"sessionId": "s", "payload": [%s]}' % (reading % ("99999999999999999999999", "0.1")),
        )
        assert big_time.status_code == 422 and big_time.json()["detail"][0]["loc"] == ["body", "payload", 0, "time"]
        big_x = http.post(
            "/v1/push/sensorlogger",
            content='{"sessionId": "s", "payload": [%s]}' % (reading % ("1700000000000000000", HUGE_INT)),
        )
        assert big_x.status_code == 422 and "must be finite" in big_x.json()["detail"]
        assert http.post("/v1/push/sensorlogger", content=b"\xff").status_code == 400
    assert server.metric("rest_server_requests_total", method="POST", path="/v1/predict", status_code="500") == 0
    _no_traceback(server)


# -- stream frames that ended the session with 1011 or 1007 ----------------------------------


def test_frames_that_closed_the_session_get_an_error_and_it_goes_on(server: ServerProcess, trained_home: Path) -> None:
    good = list(json_frames(recording(trained_home, "s03-mixed-2", seconds=4.0), 50))
    bad = [
        f'{{"samples": [[1, 2, 3, 4, 5, {HUGE_INT}]]}}',
        f'{{"samples": [[1, 2, 3, 4, 5, 6]], "t0": {HUGE_INT}}}',
        "[" * 5000 + "]" * 5000,
        '{"samples": ' + "[" * 1000 + "]" * 1000 + "}",
        json.dumps({"samples": [[str(v) for v in ROW]]}),
        json.dumps({"samples": [[True, False, True, 0, 0, 0]]}),
        '{"type": "hello", "rate_hz": ' + "[" * 1000 + "]" * 1000 + "}",  # its echo in the detail recursed
    ]
    ready, predictions, errors = asyncio.run(stream(server.ws_url, good[:1] + bad + good[1:], expect=3))
    assert [e["code"] for e in errors] == [
        "non_finite",
        "bad_frame",
        "bad_json",
        "bad_frame",
        "bad_frame",
        "bad_frame",
        "bad_hello",
    ]
    assert [m["window_start"] for m in predictions] == [0.0, 1.0, 2.0]  # no good frame lost around the bad ones
    closed = "SELECT errors, close_code FROM connections WHERE session_id = :s AND closed_at IS NOT NULL"
    assert server.wait_rows(closed.replace("errors, close_code", "COUNT(*)"), 1, s=ready["session_id"]) == 1
    assert server.query(closed, s=ready["session_id"])[0] == (len(bad), 1000)
    _no_traceback(server)


def test_a_text_frame_that_is_not_utf8_closes_with_1007_and_the_session_resumes(
    server: ServerProcess, rows: list[list[float]]
) -> None:
    """RFC 6455 (8.1) requires failing the connection; the session itself can be resumed."""

    async def run() -> tuple[str, int, list[dict[str, Any]]]:
        async with websockets.connect(server.ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "hello", "device_id": "utf8-1"}))
            await ws.send(json.dumps({"samples": rows[:150], "t0": 0.0}))
            (first,) = await receive_until(ws, 1)
            await ws.send(b'{"samples": [[1, 2, 3, 4, 5, \xff]]}', text=True)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
        assert closed.value.rcvd is not None
        async with websockets.connect(server.ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "hello", "session_id": first["session_id"]}))
            (ready,) = await receive_until(ws, 1, kind="ready")
            assert ready["resumed"] and ready["next_t"] == 3.0
            await ws.send(json.dumps({"samples": rows[150:250], "t0": 3.0}))
            return first["session_id"], closed.value.rcvd.code, await receive_until(ws, 2)

    session, code, after = asyncio.run(run())
    assert code == 1007
    assert [m["window_start"] for m in after] == [2.0, 3.0] and {m["session_id"] for m in after} == {session}
    events = server.events()
    assert any(e["event"] == "frame_not_utf8" and e["level"] == "warning" for e in events)
    assert any(
        e["event"] == "session_closed" and e["session_id"] == session and e["close_code"] == 1007 for e in events
    )
    assert server.metric("websocket_sessions_closed_total", code="1007") >= 1
    _no_traceback(server)
