"""Text the stores cannot hold is refused at the HTTP edges (issue 20), against the real
`posture serve` on each store: SQLite and the real PostgreSQL.

One session id with a NUL once made PostgreSQL's COPY fail and blocked the prediction log for
good; a lone surrogate in a device id was a 500 on the Sensor Logger push (the 422 echoing it
could not be encoded). Each is now a 422 whose detail names the field and the fix; nothing of
theirs is stored, and a valid request after them is stored whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.serving_support import CHANNELS, ServerProcess, recording
from tests.serving.store.store_helpers import pg_url, throwaway_database

ROW = [0.1, 9.7, 0.3, 0.01, 0.0, -0.02]
READING = '{"name": "totalacceleration", "time": 1700000000000000000, "values": {"x": 0.1, "y": 9.7, "z": 0.3}}'
FIX = "send 1-128 printable characters (UTF-8 text without NUL)"
# (field, JSON text of its value, what the detail says): JSON escapes, as a client sends them.
BAD_TEXT = [
    ("session_id", r'"a\u0000b"', "contains a NUL character (\\u0000) at position 1"),
    ("session_id", r'"\ud800x"', "contains a lone surrogate (\\ud800) at position 0"),
    ("session_id", r'"x\udc00"', "contains a lone surrogate (\\udc00) at position 1"),
    ("session_id", '"' + "s" * 129 + '"', "has 129 characters, over the limit of 128"),
    ("session_id", '""', "is empty"),
    ("device_id", r'"phone\u0000"', "contains a NUL character (\\u0000) at position 5"),
    ("device_id", r'"\ud800x"', "contains a lone surrogate (\\ud800) at position 0"),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, trained_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp(f"text-{request.param}")
    if request.param == "sqlite":
        process = ServerProcess(trained_home, folder)
        yield process
        assert process.stop() == 0
        return
    with throwaway_database() as name:
        process = ServerProcess(trained_home, folder, env={"POSTURE_DATABASE_URL": pg_url(name)})
        yield process
        assert process.stop() == 0


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return error


def test_predict_refuses_text_no_store_can_hold_and_stores_the_valid(server: ServerProcess, trained_home: Path) -> None:
    rows = recording(trained_home, "s03-mixed-2", seconds=4.0)[CHANNELS].to_numpy().round(4).tolist()  # 3 windows
    samples = '{"samples": %s, ' % rows
    with httpx.Client(base_url=server.url, timeout=10.0, headers={"content-type": "application/json"}) as http:
        for field, value, problem in BAD_TEXT:
            error = _error(http.post("/v1/predict", content=samples + f'"{field}": {value}}}'))
            assert error["loc"] == ["body", field]
            assert error["msg"] == f"{field} {problem}; {FIX}"
        valid = http.post("/v1/predict", json={"samples": rows, "session_id": "édition-😀", "device_id": "phone-7"})
    assert valid.status_code == 200 and len(valid.json()["predictions"]) == 3
    # received: 7 refused requests and 1 valid one of 3 windows; stored: those 3, with their session id
    stored = "SELECT COUNT(*) FROM predictions WHERE session_id = :s"
    assert server.wait_rows(stored, 3, s="édition-😀") == 3
    assert server.query("SELECT COUNT(*) FROM predictions")[0][0] == 3
    assert server.metric("rest_server_requests_total", method="POST", path="/v1/predict", status_code="422") == 7
    assert "Traceback" not in server.log()


def test_the_push_refuses_such_text_with_a_422_not_a_500(server: ServerProcess) -> None:
    cases = [
        ("sessionId", r'"a\u0000b"', None, "contains a NUL character (\\u0000) at position 1"),
        ("sessionId", r'"\udc00"', None, "contains a lone surrogate (\\udc00) at position 0"),
        ("deviceId", r'"\ud800x"', '"app-1"', "contains a lone surrogate (\\ud800) at position 0"),
        ("deviceId", '"' + "d" * 200 + '"', '"app-1"', "has 200 characters, over the limit of 128"),
    ]
    with httpx.Client(base_url=server.url, timeout=10.0, headers={"content-type": "application/json"}) as http:
        for field, value, session, problem in cases:
            pair = f'"{field}": {value}' + (f', "sessionId": {session}' if session else "")
            error = _error(http.post("/v1/push/sensorlogger", content='{%s, "payload": [%s]}' % (pair, READING)))
            assert error["loc"] == ["body", field] and error["msg"] == f"{field} {problem}; {FIX}"
        # any other string with a lone surrogate is echoed escaped in the 422: it was a 500 too
        odd = http.post("/v1/push/sensorlogger", content=r'{"sessionId": "s", "payload": [{"name": "\ud800"}]}')
        assert odd.status_code == 422 and "\\ud800" in odd.text
    assert (
        server.metric("rest_server_requests_total", method="POST", path="/v1/push/sensorlogger", status_code="500") == 0
    )
    assert server.query("SELECT COUNT(*) FROM connections")[0][0] == 0  # no session opened for any of them
    assert "Traceback" not in server.log()
