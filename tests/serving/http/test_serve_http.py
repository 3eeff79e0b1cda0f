"""The HTTP API of the real `posture serve` (subprocess, free port, SQLite store), plus
unit tests of the request parsing and the rate limiter behind it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
from referencing import Registry, Resource

from features.windows import sliding_windows
from pipelines.predict import predict_recording
from pipelines.registry import LoadedModel
from serving.edge.ratelimit import TokenBucketLimiter
from tests.serving.serving_support import CHANNELS, ServerProcess, as_recording, recording


@pytest.fixture(scope="module")
def server(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # A slow refill, so the flood test sees 429 however loaded the machine is.
    limits = {"POSTURE_RATE_LIMIT_PER_S": "20", "POSTURE_RATE_LIMIT_BURST": "200"}
    process = ServerProcess(trained_home, tmp_path_factory.mktemp("http-server"), env=limits)
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        yield http


@pytest.fixture(scope="module")
def ten_seconds(trained_home: Path) -> Any:
    return recording(trained_home, "s05-mixed-1", seconds=10.0)


def test_health_readiness_and_the_model(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "reasons": [],
        "model_version": "1",
        "database": "ok",
        "backlog": 0,
        "rows_dropped": 0,
        "quarantined": 0,
    }
    (model,) = client.get("/v1/models").json()["models"]
    assert (model["name"], model["version"], model["alias"], model["engine"]) == ("posture", "1", "champion", "onnx")
    assert model["classes"] == ["lying", "running", "sitting", "standing", "walking"]
    assert model["spec"]["window_samples"] == 100 and model["spec"]["channels"] == CHANNELS
    assert model["loaded_at"].endswith("+00:00")


def test_predict_matches_posture_predict(client: httpx.Client, champion: LoadedModel, ten_seconds: Any) -> None:
    expected = predict_recording(champion, as_recording(ten_seconds))
    body = {"samples": ten_seconds[CHANNELS].to_numpy().tolist(), "rate_hz": 50, "device_id": "phone-1"}
    answer = client.post("/v1/predict", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["model_name"] == "posture" and result["model_version"] == "1"
    predictions = result["predictions"]
    assert [p["label"] for p in predictions] == list(expected.labels)
    np.testing.assert_allclose([p["start"] for p in predictions], expected.start, atol=1e-9)
    np.testing.assert_allclose([p["end"] for p in predictions], expected.end, atol=1e-9)
    got = np.array([[p["probabilities"][c] for c in expected.classes] for p in predictions])
    np.testing.assert_allclose(got, expected.probabilities, atol=1e-6)
    assert all(p["confidence"] == max(p["probabilities"].values()) and p["model_version"] == "1" for p in predictions)


def test_rows_columns_other_rates_and_ready_windows_agree(client: httpx.Client, ten_seconds: Any) -> None:
    values = ten_seconds[CHANNELS].to_numpy()
    rows = client.post("/v1/predict", json={"samples": values.tolist()}).json()["predictions"]
    columns = client.post("/v1/predict", json={"samples": {c: values[:, i].tolist() for i, c in enumerate(CHANNELS)}})
    reordered = client.post("/v1/predict", json={"samples": values[:, ::-1].tolist(), "channels": CHANNELS[::-1]})
    # 100 Hz: midpoints between the 50 Hz samples; resampled back, the grid hits the originals.
    doubled = np.empty((2 * len(values) - 1, 6))
    doubled[::2], doubled[1::2] = values, (values[:-1] + values[1:]) / 2
    at_100_hz = client.post("/v1/predict", json={"samples": doubled.tolist(), "rate_hz": 100})
    windows = sliding_windows(values, 100, 50)
    ready = client.post("/v1/predict", json={"windows": windows.tolist()})
    for other in (columns, reordered, at_100_hz, ready):
        assert other.status_code == 200, other.text
        got = other.json()["predictions"]
        assert len(got) == len(rows) == 9
        for a, b in zip(got, rows):
            assert a["label"] == b["label"] and a["start"] == pytest.approx(b["start"])
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)


def detail(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    return error


def test_bad_input_gets_a_422_naming_the_field(client: httpx.Client) -> None:
    window = [[0.0, 9.8, 0.0, 0.0, 0.0, 0.0]] * 100
    assert "exactly one of `samples` or `windows`" in detail(client.post("/v1/predict", json={}))["msg"]
    short_row = client.post("/v1/predict", json={"samples": window[:3] + [[1.0, 2.0]] + window[4:]})
    assert detail(short_row)["loc"] == ["body", "samples", 3]
    with_nan = json.dumps({"samples": window[:7] + [[float("nan")] * 6] + window[8:]})
    error = detail(client.post("/v1/predict", content=with_nan, headers={"content-type": "application/json"}))
    assert error["loc"] == ["body", "samples", 7] and "non-finite" in error["msg"]
    too_short = detail(client.post("/v1/predict", json={"samples": window[:60]}))
    assert too_short["loc"] == ["body", "samples"] and "shorter than one window" in too_short["msg"]
    assert detail(client.post("/v1/predict", json={"windows": [window[:50]]}))["loc"] == ["body", "windows"]
    missing = detail(client.post("/v1/predict", json={"samples": {"ax": [0.0] * 100}}))
    assert "gx" in missing["msg"] and missing["loc"] == ["body", "samples"]
    unknown = client.post("/v1/predict", json={"samples": window, "channels": ["ax", "ay", "az", "gx", "gy", "qq"]})
    assert unknown.status_code == 422 and ["body", "channels", 5] in [e["loc"] for e in unknown.json()["detail"]]
    assert client.post("/v1/predict", json={"samples": window, "rate_hz": -5}).status_code == 422
    not_json = client.post("/v1/predict", content=b"{oops", headers={"content-type": "application/json"})
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["type"] == "json_invalid"
    assert client.get("/readyz").status_code == 200  # nothing of it hurt the server


def _refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` in an OpenAPI document."""
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    return spec["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else node


def test_openapi_is_valid_and_describes_real_responses(client: httpx.Client, ten_seconds: Any) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    assert all(ref.rsplit("/", 1)[1] in spec["components"]["schemas"] for ref in _refs(spec))
    post = spec["paths"]["/v1/predict"]["post"]
    assert _resolve(spec, post["requestBody"]["content"]["application/json"]["schema"])["title"] == "PredictRequest"
    assert {"200", "422", "503"} <= set(post["responses"])
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
    # Real answers validate against the schemas the spec declares for them.
    document = spec | {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    registry = Registry().with_resource("urn:spec", Resource.from_contents(document))

    def check(path: str, method: str, answer: httpx.Response) -> None:
        schema = spec["paths"][path][method]["responses"][str(answer.status_code)]["content"]["application/json"][
            "schema"
        ]
        ref = schema["$ref"].replace("#/", "urn:spec#/")
        jsonschema.Draft202012Validator({"$ref": ref}, registry=registry).validate(answer.json())

    check(
        "/v1/predict", "post", client.post("/v1/predict", json={"samples": ten_seconds[CHANNELS].to_numpy().tolist()})
    )
    check("/v1/predict", "post", client.post("/v1/predict", json={"samples": [[0.0] * 6]}))
    check("/v1/models", "get", client.get("/v1/models"))
    check("/readyz", "get", client.get("/readyz"))
    check("/healthz", "get", client.get("/healthz"))


def test_every_prediction_lands_in_sqlite_and_metrics_count_it(
    server: ServerProcess, client: httpx.Client, ten_seconds: Any
) -> None:
    session = uuid.uuid4().hex
    body = {"samples": ten_seconds[CHANNELS].to_numpy().tolist(), "device_id": "watch-9", "session_id": session}
    for _ in range(3):
        assert client.post("/v1/predict", json=body).status_code == 200
    assert client.post("/v1/predict", json={"samples": [[0.0] * 6]}).status_code == 422  # shorter than a window
    count_sql = "SELECT COUNT(*) FROM predictions WHERE session_id = :s AND source = 'http'"
    assert server.wait_rows(count_sql, 27, s=session) == 27
    ((device_hash, version),) = server.query(
        "SELECT DISTINCT device_hash, model_version FROM predictions WHERE session_id = :s", s=session
    )
    assert version == "1" and device_hash and "watch-9" not in device_hash  # pseudonymised
    assert server.metric("rest_server_requests_total", method="POST", path="/v1/predict", status_code="200") >= 3
    assert server.metric("rest_server_requests_total", method="POST", path="/v1/predict", status_code="422") >= 1
    assert server.metric("rest_server_request_duration_seconds_count", method="POST", path="/v1/predict") >= 3
    assert server.metric("batch_request_size_count") >= 3
    assert server.metric("prediction_log_rows_written_total") >= 27
    assert server.metric("prediction_log_rows_dropped_total") == 0
    labels = {p["label"] for p in client.post("/v1/predict", json=body).json()["predictions"]}
    assert (
        sum(
            server.metric(
                "model_predictions_total", label=label, model_name="posture", model_version="1", source="http"
            )
            for label in labels
        )
        >= 36
    )
    assert server.metric("model_info", alias="champion", engine="onnx", model_name="posture", model_version="1") == 1


def test_flooding_http_gets_429_then_recovers(server: ServerProcess, client: httpx.Client) -> None:
    statuses = []
    while 429 not in statuses and len(statuses) < 400:  # burst 200, 20/s
        statuses.append(client.get("/v1/models").status_code)
    assert 429 in statuses and statuses[0] == 200
    # The bucket refills a token every 50 ms, so a lone retry may slip through: several in a row drain it.
    refused = [r for r in (client.get("/v1/models") for _ in range(5)) if r.status_code == 429]
    assert refused and refused[0].headers["retry-after"] == "1"
    assert client.get("/healthz").status_code == 200  # probes are never limited
    assert server.metric("rate_limited_requests_total", scope="http") >= 1
    time.sleep(0.1)  # two tokens back
    assert client.get("/v1/models").status_code == 200


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(rate_per_s=10, burst=5, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(6)] == [True] * 5 + [False]
    assert limiter.take("b")  # buckets are per key
    now[0] += 0.1
    assert limiter.take("a") and not limiter.take("a")
    now[0] += 100
    assert [limiter.take("a") for _ in range(6)] == [True] * 5 + [False]  # capped at the burst
    assert all(TokenBucketLimiter(0, 1).take("x") for _ in range(100))  # rate 0: off
