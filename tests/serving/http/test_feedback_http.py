"""POST /v1/feedback against a running server: ground truth changes the live accuracy that
`posture db stats` and /metrics report; feedback that cannot be used is refused clearly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import run_cli
from tests.serving.serving_support import CHANNELS, ServerProcess, recording

FEEDBACK_SQL = "SELECT COUNT(*) FROM feedback"


@pytest.fixture(scope="module")
def server(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(
        trained_home, tmp_path_factory.mktemp("feedback-server"), env={"POSTURE_LIVE_ACCURACY_INTERVAL_S": "0.2"}
    )
    yield process
    assert process.stop() == 0


def live_accuracy(server: ServerProcess, home: Path) -> list[dict[str, Any]]:
    result = run_cli("db", "stats", "--json", "--database-url", server.database_url, home=home)
    return json.loads(result.stdout)["live_accuracy"]


def metric_reaches(server: ServerProcess, name: str, value: float, timeout_s: float = 20.0) -> float:
    deadline = time.monotonic() + timeout_s
    seen = server.metric(name, model_name="posture", model_version="1")
    while seen != pytest.approx(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = server.metric(name, model_name="posture", model_version="1")
    return seen


def test_feedback_changes_the_live_accuracy(server: ServerProcess, trained_home: Path) -> None:
    part = recording(trained_home, "s05-mixed-1", seconds=20.0)
    body = {"samples": part[CHANNELS].to_numpy().tolist(), "rate_hz": 50, "session_id": "walk-1", "device_id": "p-1"}
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        predictions = http.post("/v1/predict", json=body).json()["predictions"]
        labels = [p["label"] for p in predictions]
        first, last = predictions[0]["start"], predictions[-1]["end"]
        server.wait_rows("SELECT COUNT(*) FROM predictions WHERE session_id = 'walk-1'", len(predictions))
        # The whole session was the label the model said most: that many windows right.
        truth = max(set(labels), key=labels.count)
        sent = http.post("/v1/feedback", json={"session_id": "walk-1", "start": first, "end": last, "label": truth})
        assert sent.status_code == 202 and sent.json() == {"accepted": True}
        assert server.wait_rows(FEEDBACK_SQL, 1) == 1
        (row,) = live_accuracy(server, trained_home)
        right = labels.count(truth)
        assert (row["model_version"], row["windows"], row["correct"]) == ("1", len(labels), right)
        assert metric_reaches(server, "posture_live_accuracy", right / len(labels)) == pytest.approx(
            right / len(labels)
        )
        # A correction: the first half was another class. The newest feedback wins there.
        other = next(c for c in http.get("/v1/models").json()["models"][0]["classes"] if c != truth)
        middle = predictions[len(predictions) // 2]["end"]
        sent = http.post("/v1/feedback", json={"session_id": "walk-1", "start": first, "end": middle, "label": other})
        assert sent.status_code == 202
        assert server.wait_rows(FEEDBACK_SQL, 2) == 2
    covered = [p for p in predictions if p["end"] <= middle]
    expected = sum(p["label"] == other for p in covered) + sum(
        p["label"] == truth for p in predictions if p["end"] > middle
    )
    (row,) = live_accuracy(server, trained_home)
    assert (row["windows"], row["correct"]) == (len(labels), expected) and expected != right
    assert metric_reaches(server, "posture_live_accuracy_windows", len(labels)) == len(labels)
    assert metric_reaches(server, "posture_live_accuracy", expected / len(labels)) == pytest.approx(
        expected / len(labels)
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"session_id": "s", "start": 0, "end": 10, "label": "flying"}, "not one of the model's classes"),
        ({"device_id": "d", "start": 0, "end": 10, "label": "sitting"}, "need session_id"),
        ({"start": 0, "end": 10, "label": "sitting"}, "give session_id, device_id or both"),
        ({"session_id": "s", "start": 10, "end": 5, "label": "sitting"}, "end must come after start"),
        ({"session_id": "s", "start": 0, "end": "2026-12-06T10:00:00Z", "label": "sitting"}, "both be seconds"),
        ({"session_id": "s\u0000x", "start": 0, "end": 1, "label": "sitting"}, "session_id"),
    ],
)
def test_feedback_that_cannot_be_used_is_refused(server: ServerProcess, body: dict[str, Any], says: str) -> None:
    before = server.query(FEEDBACK_SQL)[0][0]
    answer = httpx.post(f"{server.url}/v1/feedback", json=body, timeout=10.0)
    assert answer.status_code == 422 and says in answer.text, answer.text
    assert server.query(FEEDBACK_SQL)[0][0] == before
