"""The OpenAPI spec tells the truth (issue 15): schemathesis, every check, against the
/openapi.json a real `posture serve` serves, plus the findings it made, pinned one by one.

schemathesis runs as its CLI (all phases: examples, coverage, fuzzing) with a bounded number
of examples and a seed; tests/serving/http/schemathesis.toml says which 422s a schema-valid body may get
and why. Reproduce a failure with the seed the test prints:
``schemathesis --config-file tests/serving/http/schemathesis.toml run URL/openapi.json --checks all --seed S``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.http.openapi_doc import SECURITY_SCHEME, document_edge
from tests.serving.serving_support import ServerProcess

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = int(os.environ.get("POSTURE_SCHEMATHESIS_SEED", "15"))
MAX_EXAMPLES = 150  # per operation and phase: ~500 cases, ~15 s here
UNLIMITED = {"POSTURE_RATE_LIMIT_PER_S": "100000", "POSTURE_RATE_LIMIT_BURST": "100000"}


@pytest.fixture(scope="module")
def server(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Rate limits out of the way: schemathesis sends hundreds of requests a second, and a 429
    # would hide the answer under test.
    process = ServerProcess(trained_home, tmp_path_factory.mktemp("openapi-server"), env=UNLIMITED)
    yield process
    assert process.stop() == 0


def test_every_schemathesis_check_passes_on_the_served_spec(server: ServerProcess, tmp_path: Path) -> None:
    print(f"schemathesis seed {SEED} (POSTURE_SCHEMATHESIS_SEED), {MAX_EXAMPLES} examples")
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--continue-on-failure",
        "--no-color",
    ]
    # Its own folder: schemathesis keeps a case database in ./.schemathesis.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20_000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert counts is not None, output[-5_000:]
    generated, passed = map(int, counts.groups())
    print(f"schemathesis: {generated} cases, {passed} passed")
    assert generated == passed >= 300  # it really ran: every operation, every phase
    assert server.metric("rest_server_requests_total", method="POST", path="/v1/predict", status_code="500") == 0
    assert "Traceback" not in server.log()


def test_post_routes_answer_405_with_their_own_methods(server: ServerProcess) -> None:
    """The static files at / took every method on every path: OPTIONS /v1/predict was their
    405 with `Allow: GET, HEAD`."""
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        for path in ("/v1/predict", "/v1/push/sensorlogger"):
            for method in ("OPTIONS", "GET", "PUT", "DELETE"):
                answer = http.request(method, path)
                assert (answer.status_code, answer.headers["allow"]) == (405, "POST"), (method, path)
        assert http.get("/").status_code == 200 and http.get("/app.js").status_code == 200  # the client still loads


def test_the_spec_says_exactly_one_input_and_every_edge_answer(server: ServerProcess) -> None:
    spec = httpx.get(f"{server.url}/openapi.json", timeout=10.0).json()
    body = spec["components"]["schemas"]["PredictRequest"]
    assert sorted(branch["required"][0] for branch in body["oneOf"]) == ["samples", "windows"]
    push = spec["paths"]["/v1/push/sensorlogger"]["post"]["responses"]
    assert {"200", "400", "413", "422", "429", "503"} <= set(push)
    for path, item in spec["paths"].items():
        limited = path not in ("/healthz", "/readyz", "/metrics")
        assert all(("429" in op["responses"]) == limited for op in item.values()), path
    assert "securitySchemes" not in spec["components"]  # a loopback server asks for no key


def test_a_server_that_requires_keys_documents_them() -> None:
    spec = {
        "paths": {
            "/v1/predict": {"post": {"responses": {"503": {"description": "Shutting down."}}}},
            "/healthz": {"get": {"responses": {"200": {"description": "ok"}}}},
        }
    }
    document_edge(spec, keys_required=True)
    predict = spec["paths"]["/v1/predict"]["post"]
    assert predict["security"] == [{SECURITY_SCHEME: []}] and {"401", "429", "503"} <= set(predict["responses"])
    assert "key cannot be checked" in predict["responses"]["503"]["description"]
    assert "Shutting down." in predict["responses"]["503"]["description"]
    assert set(spec["paths"]["/healthz"]["get"]["responses"]) == {"200"}
    assert spec["components"]["securitySchemes"][SECURITY_SCHEME] == {"type": "http", "scheme": "bearer"}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('{"samples": [["0.1", "9.7", "0.3", "0", "0", "0"]]}', ["body", "samples"]),  # lax mode took them
        ('{"samples": [[true, 9.7, 0.3, 0, 0, 0]]}', ["body", "samples"]),
        ('{"samples": [[1e300, 9.7, 0.3, 0, 0, 0]]}', ["body", "samples", 0]),  # infinite in float32: a 200
        ('{"samples": [[0.1, 9.7, 0.3, 0, 0, 0]], "t0": 1e400}', ["body", "t0"]),  # every start was null
        ('{"samples": [[0.1, 9.7, 0.3, 0, 0, 0]], "t0": 1.7e18}', ["body", "t0"]),  # nanoseconds
        ('{"windows": [], "rate_hz": "50"}', ["body", "rate_hz"]),
    ],
)
def test_predict_refuses_what_the_schema_refuses(server: ServerProcess, body: str, where: list) -> None:
    answer = httpx.post(f"{server.url}/v1/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert [error["loc"][: len(where)] for error in answer.json()["detail"]][0] == where


@pytest.mark.parametrize(
    ("reading", "problem"),
    [
        ({"name": "gyroscope", "time": False, "values": {}}, "payload"),  # was time 0 and a 200
        ({"name": "gyroscope", "time": "1700000000000000000", "values": {}}, "payload"),
        ({"name": "totalacceleration", "time": 1, "values": {"x": True, "y": 9.7, "z": 0.3}}, "numbers x, y and z"),
        ({"name": "totalacceleration", "time": 1, "values": {"x": "0.1", "y": 9.7, "z": 0.3}}, "numbers x, y and z"),
    ],
)
def test_push_refuses_readings_that_are_not_numbers(server: ServerProcess, reading: dict, problem: str) -> None:
    answer = httpx.post(f"{server.url}/v1/push/sensorlogger", json={"sessionId": "strict-1", "payload": [reading]})
    assert answer.status_code == 422 and problem in answer.text, answer.text


@pytest.mark.parametrize("path", ["/v1/predict", "/v1/push/sensorlogger"])
@pytest.mark.parametrize(
    "body",
    [
        '{"sessionId": "s", "payload": [{"name": "gyroscope", "time": 1e400, "values": {}}]}',
        '{"sessionId": 1e400, "payload": []}',
        '{"samples": [[1]], "t0": 1e400, "rate_hz": -1e400}',
    ],
)
def test_an_infinite_input_gets_a_422_not_a_500(server: ServerProcess, path: str, body: str) -> None:
    """1e400 reads as infinity; FastAPI's 422 echoed it, and its JSON encoder refused it."""
    answer = httpx.post(f"{server.url}{path}", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422 and answer.json()["detail"], answer.text
    assert "Traceback" not in server.log()
