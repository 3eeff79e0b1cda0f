"""The deployment on real components: the shipped nginx config (TLS with a certificate made
here) in front of two real `posture serve` instances that share a throwaway PostgreSQL
database and the real Redis. HTTPS predict and WSS streams through nginx; API keys refused,
accepted and revoked; a rate limit hit on one instance enforced by the other; and one
instance killed mid-stream, the client reconnecting through nginx to the other and its
session resuming from Redis with no window lost or repeated."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pipelines.predict import predict_recording
from pipelines.registry import LoadedModel
from tests.conftest import REPO, run_cli
from tests.deploy.deploy_support import REDIS_URL, NginxProcess, client_tls, create_key, nginx_folder, redis_prefix
from tests.serving.serving_support import CHANNELS, ServerProcess, as_recording, json_frames, recording
from tests.serving.store.store_helpers import pg_url, throwaway_database

# Refills of 1 token/s (an emptied bucket stays empty while the test looks), and bursts the
# streams here stay well inside. A key's burst is twice an address's, so each flood below is
# stopped by the bucket it is about.
REFILL_PER_S, ADDRESS_BURST, KEY_BURST = 1, 300, 600
LIMITS = {
    "POSTURE_RATE_LIMIT_PER_S": str(REFILL_PER_S),
    "POSTURE_RATE_LIMIT_BURST": str(ADDRESS_BURST),
    "POSTURE_RATE_LIMIT_KEY_PER_S": str(REFILL_PER_S),
    "POSTURE_RATE_LIMIT_KEY_BURST": str(KEY_BURST),
}
KEY_CACHE_S = 0.5


@dataclass
class Deployment:
    nginx: NginxProcess
    servers: list[ServerProcess]
    database_url: str
    prefix: str
    keys: dict[str, str]
    home: Path

    def https(self, key: str | None = "fleet") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.Client(base_url=self.nginx.https, verify=client_tls(self.nginx.cert), headers=headers, timeout=20)


@pytest.fixture(scope="module")
def deployment(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("deploy")
    with throwaway_database() as name, redis_prefix() as prefix, nginx_folder() as folder:
        url = pg_url(name)
        keys = {key: create_key(trained_home, url, key) for key in ("fleet", "burst", "flood", "doomed")}
        env = {
            "POSTURE_DATABASE_URL": url,
            "POSTURE_REDIS_URL": REDIS_URL,
            "POSTURE_REDIS_PREFIX": prefix,
            "POSTURE_API_KEYS_REQUIRED": "true",
            "POSTURE_API_KEY_CACHE_S": str(KEY_CACHE_S),
            **LIMITS,
        }
        servers: list[ServerProcess] = []
        nginx = None
        try:
            servers = [ServerProcess(trained_home, root / f"instance-{i}", env=env) for i in range(2)]
            nginx = NginxProcess(folder, [f"127.0.0.1:{s.port}" for s in servers])
            yield Deployment(nginx, servers, url, prefix, keys, trained_home)
        finally:
            if nginx is not None:
                nginx.stop()
            for server in servers:
                server.stop()


def test_edge_redirects_serves_the_client_and_sets_security_headers(deployment: Deployment) -> None:
    plain = httpx.get(f"{deployment.nginx.http}/v1/models", follow_redirects=False)
    assert plain.status_code == 301 and plain.headers["location"] == f"{deployment.nginx.https}/v1/models"
    with deployment.https(key=None) as client:
        page = client.get("/", headers={"Accept-Encoding": "gzip"})
        assert page.status_code == 200 and page.text == (REPO / "serving" / "static" / "index.html").read_text()
        assert page.headers["content-encoding"] == "gzip"
        headers = page.headers
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert f"connect-src 'self' wss://127.0.0.1:{deployment.nginx.https_port}" in headers["content-security-policy"]
        assert client.get("/healthz").json() == {"status": "ok"}  # probes need no key
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 403  # scraped on the internal network only


def test_https_predict_needs_a_valid_key(deployment: Deployment, champion: LoadedModel) -> None:
    ten = recording(deployment.home, "s05-mixed-1", seconds=10.0)
    body = {"samples": ten[CHANNELS].to_numpy().tolist(), "rate_hz": 50, "device_id": "edge-1"}
    with deployment.https(key=None) as anonymous:
        refused = anonymous.post("/v1/predict", json=body)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        wrong = anonymous.post("/v1/predict", json=body, headers={"Authorization": "Bearer pk_wrong"})
        assert wrong.status_code == 401 and "unknown or revoked" in wrong.json()["detail"]
    with deployment.https() as client:
        answer = client.post("/v1/predict", json=body, headers={"Accept-Encoding": "gzip"})
        assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip"
        expected = predict_recording(champion, as_recording(ten))
        got = answer.json()["predictions"]
        assert [p["label"] for p in got] == list(expected.labels)
        np.testing.assert_allclose(
            [[p["probabilities"][c] for c in expected.classes] for p in got], expected.probabilities, atol=1e-6
        )
        too_big = client.post(
            "/v1/predict", content=b" " * (1024 * 1024 + 1), headers={"Content-Type": "application/json"}
        )
        assert too_big.status_code == 413  # nginx's client_max_body_size, before any instance


def test_wss_without_a_key_is_refused(deployment: Deployment) -> None:
    async def attempt(url: str) -> int:
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(url, ssl=client_tls(deployment.nginx.cert)):
                pass
        return refused.value.response.status_code

    assert asyncio.run(attempt(deployment.nginx.wss)) == 401
    assert asyncio.run(attempt(f"{deployment.nginx.wss}?token=pk_wrong")) == 401


def test_a_revoked_key_stops_working_within_the_cache_time(deployment: Deployment) -> None:
    with deployment.https(key="doomed") as client:
        assert client.get("/v1/models").status_code == 200
        run_cli("keys", "revoke", "doomed", "--database-url", deployment.database_url, home=deployment.home)
        revoked_at = time.monotonic()
        while client.get("/v1/models").status_code == 200:
            assert time.monotonic() - revoked_at < KEY_CACHE_S + 3.0, "the revoked key still works"
            time.sleep(0.05)
    listed = json.loads(
        run_cli("keys", "list", "--json", "--database-url", deployment.database_url, home=deployment.home).stdout
    )
    assert {k["name"]: k["revoked_at"] is not None for k in listed} == {
        "fleet": False,
        "burst": False,
        "flood": False,
        "doomed": True,
    }


def _flood(url: str, key: str, address: str | None) -> tuple[int, float]:
    """GET /v1/models until 429: (how many were let through, seconds). ``address`` None: a new one each time."""
    started = time.monotonic()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        for allowed in range(2000):
            forwarded = address or f"198.51.100.{allowed % 250}"
            if client.get("/v1/models", headers={"X-Forwarded-For": forwarded}).status_code == 429:
                return allowed, time.monotonic() - started
    raise AssertionError("never limited")


@pytest.mark.parametrize("bucket", ["address", "key"])
def test_a_rate_limit_hit_on_one_instance_holds_on_the_other(deployment: Deployment, bucket: str) -> None:
    a, b = deployment.servers
    key = deployment.keys["burst" if bucket == "key" else "flood"]
    address = "203.0.113.7" if bucket == "address" else None  # None: every request from another address
    burst = KEY_BURST if bucket == "key" else ADDRESS_BURST
    allowed, seconds = _flood(a.url, key, address)
    assert burst <= allowed <= burst + REFILL_PER_S * seconds + 1  # the burst, plus what refilled meanwhile
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": address or "198.51.100.251"}
    answers = [httpx.get(f"{b.url}/v1/models", headers=headers) for _ in range(3)]
    # The bucket A emptied: at most the one token that may refill in the meantime.
    refused = [r for r in answers if r.status_code == 429]
    assert len(refused) >= 2 and refused[0].headers["retry-after"] == "1"
    assert b.metric("rate_limited_requests_total", scope="http") >= 1
    buckets = {k.decode() for k in redis.Redis.from_url(REDIS_URL).scan_iter(match=f"{deployment.prefix}:rl:*")}
    assert f"{deployment.prefix}:rl:key:key:burst" in buckets or bucket == "address"
    assert f"{deployment.prefix}:rl:client:address:203.0.113.7" in buckets or bucket == "key"


async def _collect(ws: Any, predictions: int, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Messages until ``predictions`` predictions arrived (errors kept, to assert there are none)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while sum(m["type"] == "prediction" for m in out) < predictions:
            out.append(json.loads(await ws.recv()))
    return out


def test_killed_instance_mid_stream_resumes_on_the_other(deployment: Deployment, champion: LoadedModel) -> None:
    half = recording(deployment.home, "s03-mixed-2", seconds=30.0)  # 1,500 samples: 29 windows
    frames = list(json_frames(half, rows=25))  # 60 frames; frame 30 starts at 15.0 s
    hello = {"type": "hello", "device_id": "resume-1", "rate_hz": 50, "channels": CHANNELS}
    before, after, ready, resumed, victim = asyncio.run(_stream_across_a_kill(deployment, frames, hello))
    survivor = next(s for s in deployment.servers if s is not victim)
    assert [m for m in before + after if m["type"] == "error"] == []
    got = [m for m in before + after if m["type"] == "prediction"]
    expected = predict_recording(champion, as_recording(half))
    smoothed = predict_recording(champion, as_recording(half), smooth=True)
    assert [m["window_start"] for m in got] == pytest.approx(list(expected.start))  # 0..28, once each
    np.testing.assert_allclose(
        [[m["probabilities"][c] for c in expected.classes] for m in got], expected.probabilities, atol=1e-6
    )
    np.testing.assert_allclose(
        [[m["smoothed_probabilities"][c] for c in expected.classes] for m in got], smoothed.probabilities, atol=1e-6
    )
    session = ready["session_id"]
    assert resumed["resumed"] is True and resumed["session_id"] == session and resumed["next_t"] == pytest.approx(15.0)
    assert {m["session_id"] for m in got} == {session}
    assert any(e["event"] == "session_resumed" and e["session_id"] == session for e in survivor.events())
    sql = "SELECT COUNT(*) FROM predictions WHERE session_id = :s"
    assert survivor.wait_rows(sql, len(got), s=session) == len(got)
    starts = survivor.query("SELECT window_start FROM predictions WHERE session_id = :s ORDER BY id", s=session)
    assert [row[0] for row in starts] == pytest.approx(list(expected.start))  # logged once each, in order
    closed = "SELECT predictions, close_code FROM connections WHERE session_id = :s AND closed_at IS NOT NULL"
    assert survivor.wait_rows(closed.replace("predictions, close_code", "COUNT(*)"), 1, s=session) == 1
    assert survivor.query(closed, s=session) == [(len(got), 1000)]
    state = redis.Redis.from_url(REDIS_URL)
    assert not state.exists(f"{deployment.prefix}:session:{session}")  # a normal close ends the session


async def _stream_across_a_kill(
    deployment: Deployment, frames: list[str], hello: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any], dict[str, Any], ServerProcess]:
    tls, key = client_tls(deployment.nginx.cert), deployment.keys["fleet"]
    async with websockets.connect(f"{deployment.nginx.wss}?token={key}", ssl=tls) as ws:  # the browser way
        await ws.send(json.dumps(hello))
        ready = json.loads(await ws.recv())
        for frame in frames[:30]:
            await ws.send(frame)
        before = await _collect(ws, 14)
        # Once the 14 rows are in the database the state saved right after window 13's
        # prediction is long in Redis, and a SIGKILL loses no queued row.
        sql = "SELECT COUNT(*) FROM predictions WHERE session_id = :s"
        assert deployment.servers[0].wait_rows(sql, 14, s=ready["session_id"]) == 14
        victim = next(s for s in deployment.servers if s.metric("websocket_sessions_open") == 1)
        victim.kill()  # SIGKILL: no close frame, no goodbye
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(10):
                while True:
                    await ws.recv()
    headers = {"Authorization": f"Bearer {key}"}  # the header way this time
    async with websockets.connect(deployment.nginx.wss, ssl=tls, additional_headers=headers) as ws:
        await ws.send(json.dumps({**hello, "session_id": ready["session_id"]}))
        resumed = json.loads(await ws.recv())
        for frame in frames[26:]:  # replays from 13 s, what the client was not sure had arrived
            await ws.send(frame)
        after = await _collect(ws, 15)
        await ws.close()
    return before, after, ready, resumed, victim
