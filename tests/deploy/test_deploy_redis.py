"""The parts instances share, on the real Redis (and PostgreSQL for API keys): the Lua token
bucket, session-state ownership, the registry cache, the fallback when Redis is down, the
windower's snapshot and replay, and the API-key check with its cache."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import websockets

from features.spec import WindowSpec
from serving.settings import ServerSettings
from serving.edge.keys import KeyCheckUnavailable, KeyVerifier, auth_required
from serving.edge.ratelimit import RedisTokenBucketLimiter, TokenBucketLimiter
from serving.edge.redis_state import AliasCache, SharedRedis
from serving.store.api_keys import create_key, hash_key, revoke_key
from serving.store.db import upgrade
from serving.stream.buffer import StreamWindower
from serving.stream.protocol import FrameError, Hello, parse_text
from serving.edge.session_states import LocalSessionStore, RedisSessionStore
from serving.stream.snapshot import SessionSnapshot
from tests.deploy.deploy_support import REDIS_URL, redis_prefix
from tests.serving.serving_support import ServerProcess, free_port, json_frames, recording
from tests.serving.store.store_helpers import TcpProxy, pg_url, throwaway_database

SPEC = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0, channels=("ax", "ay", "az", "gx", "gy", "gz"))


@pytest.fixture
def prefix() -> Iterator[str]:
    with redis_prefix() as name:
        yield name


def shared(prefix: str, url: str = REDIS_URL) -> SharedRedis:
    return SharedRedis(url, prefix, timeout_s=0.25)


def test_two_instances_share_one_token_bucket(prefix: str) -> None:
    async def scenario() -> tuple[list[bool], list[bool]]:
        a, b = shared(prefix), shared(prefix)  # two processes' clients
        limit_a = RedisTokenBucketLimiter(a, rate_per_s=0.01, burst=5, name="client")
        limit_b = RedisTokenBucketLimiter(b, rate_per_s=0.01, burst=5, name="client")
        first = [await limit_a.allow("address:203.0.113.9") for _ in range(3)]
        then = [await limit_b.allow("address:203.0.113.9") for _ in range(3)]
        await limit_b.forget("address:203.0.113.9")  # shared buckets are not reset by one instance
        then.append(await limit_b.allow("address:203.0.113.9"))
        await a.close(), await b.close()
        return first, then

    first, then = asyncio.run(scenario())
    assert first == [True] * 3 and then == [True, True, False, False]


def test_the_lua_bucket_is_atomic_under_concurrency(prefix: str) -> None:
    async def scenario() -> int:
        clients = [shared(prefix) for _ in range(4)]
        limiters = [RedisTokenBucketLimiter(c, rate_per_s=0.001, burst=25, name="key") for c in clients]
        results = await asyncio.gather(*(limiters[i % 4].allow("key:fleet") for i in range(200)))
        await asyncio.gather(*(c.close() for c in clients))
        return sum(results)

    assert asyncio.run(scenario()) == 25


def test_session_buckets_stay_in_process(prefix: str) -> None:
    import redis

    async def scenario() -> bool:
        client = shared(prefix)
        limiter = RedisTokenBucketLimiter(client, rate_per_s=10, burst=10, name="client")
        allowed = await limiter.allow("session:abc")
        await client.close()
        return allowed

    assert asyncio.run(scenario())
    assert not list(redis.Redis.from_url(REDIS_URL).scan_iter(match=f"{prefix}:*"))


def test_redis_down_falls_back_in_process_and_logs_once(prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    errors: list[str] = []

    async def scenario() -> tuple[list[bool], Any]:
        dead = SharedRedis(f"redis://127.0.0.1:{free_port()}/0", prefix, 0.25, on_error=errors.append)
        limiter = RedisTokenBucketLimiter(dead, rate_per_s=0.01, burst=2, name="client")
        store = RedisSessionStore(dead, ttl_s=60)
        allowed = [await limiter.allow("address:x") for _ in range(3)]
        assert not dead.available  # the breaker is open
        saved = await store.save("s1", "conn", None, lambda: b"state")  # skipped, the session goes on
        claimed = await store.claim("s1", "conn2", None)
        await dead.close()
        return allowed, (saved, claimed)

    with caplog.at_level(logging.WARNING, logger="posture.serve"):
        allowed, (saved, claimed) = asyncio.run(scenario())
    assert allowed == [True, True, False]  # the same limit, from the in-process bucket
    assert errors == ["rate_limit"]  # the breaker: one failed call, the others fall back at once
    assert saved is True and claimed is None
    assert [r.getMessage() for r in caplog.records].count("redis_unavailable") == 1


@pytest.mark.parametrize("kind", ["redis", "local"])
def test_session_state_has_one_owner(kind: str, prefix: str) -> None:
    async def scenario() -> list[Any]:
        client = shared(prefix)
        store = RedisSessionStore(client, ttl_s=0.4) if kind == "redis" else LocalSessionStore(ttl_s=0.4)
        results = [await store.save("s1", "conn-a", "fleet", lambda: b"v1")]
        results.append(await store.claim("s1", "conn-b", "other-key"))  # another key's client: nothing
        results.append(await store.claim("s1", "conn-b", "fleet"))
        results.append(await store.save("s1", "conn-a", "fleet", lambda: b"stale"))  # the old connection is refused
        results.append(await store.save("s1", "conn-b", "fleet", lambda: b"v2"))
        results.append(await store.claim("s1", "conn-c", "fleet"))
        await asyncio.sleep(0.5)
        results.append(await store.claim("s1", "conn-d", "fleet"))  # expired
        await store.save("s2", "conn-e", None, lambda: b"x")
        results.append(await store.save("s2", "conn-e", None, None))  # dropped at a normal close
        results.append(await store.claim("s2", "conn-f", None))
        await client.close()
        return results

    assert asyncio.run(scenario()) == [True, None, b"v1", False, True, b"v2", None, True, None]


def test_local_store_reads_an_open_session_when_claimed() -> None:
    """In-process, an open session's state is taken when a reconnecting client claims it:
    the newest one, never expired while the session is open."""

    async def scenario() -> tuple[bytes | None, bool]:
        store = LocalSessionStore(ttl_s=0.2)
        state = [b"after window 1"]
        assert await store.save("s1", "conn-a", None, lambda: state[0], live=True)
        state[0] = b"after window 2"
        await asyncio.sleep(0.3)  # longer than the time-to-live
        claimed = await store.claim("s1", "conn-b", None)
        state[0] = b"after window 3"  # the old connection goes on, but no longer owns the session
        return claimed, await store.save("s1", "conn-a", None, lambda: state[0], live=True)

    assert asyncio.run(scenario()) == (b"after window 2", False)


def test_alias_cache_asks_the_registry_once_per_ttl(prefix: str) -> None:
    asked: list[int] = []

    async def look_up() -> str:
        asked.append(1)
        return "7"

    async def scenario() -> list[str | None]:
        a, b = shared(prefix), shared(prefix)
        answers = [await AliasCache(a, 0.3).version("models:/posture@champion", look_up)]
        answers.append(await AliasCache(b, 0.3).version("models:/posture@champion", look_up))
        await asyncio.sleep(0.4)
        answers.append(await AliasCache(b, 0.3).version("models:/posture@champion", look_up))
        await a.close(), await b.close()
        return answers

    assert asyncio.run(scenario()) == ["7", "7", "7"] and len(asked) == 2


def stream_rows(seconds: float, rate: float = 100.0, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(int(seconds * rate), 6)).astype(np.float32)


def push_all(
    windower: StreamWindower, rows: np.ndarray, size: int, start: int = 0
) -> tuple[list[np.ndarray], list[float]]:
    windows, starts = [], []
    for i in range(start, len(rows), size):
        w, s = windower.push(rows[i : i + size], i / windower.rate_hz)
        windows.extend(w)
        starts.extend(s.tolist())
    return windows, starts


def test_a_restored_windower_continues_exactly_and_drops_replayed_rows() -> None:
    rows = stream_rows(12.0)  # at 100 Hz, resampled to the model's 50 Hz
    whole, whole_starts = push_all(StreamWindower(SPEC, SPEC.channels, 100.0, 0.5), rows, 30)
    first = StreamWindower(SPEC, SPEC.channels, 100.0, 0.5)
    part, part_starts = push_all(first, rows[:630], 30)
    saved = SessionSnapshot(
        "s",
        None,
        100.0,
        list(SPEC.channels),
        "2026-01-01T00:00:00+00:00",
        21,
        len(part),
        0,
        SPEC.to_dict(),
        first.state(),
        np.full(5, 0.2),
        ["a", "b", "c", "d", "e"],
    )
    snapshot = SessionSnapshot.from_bytes(saved.to_bytes())
    assert len(saved.to_bytes()) < 8000 and snapshot.belief.shape == (5,)
    resumed = StreamWindower(WindowSpec.from_dict(snapshot.spec), snapshot.channels, 100.0, 0.5)
    resumed.restore(snapshot.windower)
    assert resumed.next_t == pytest.approx(6.3)
    rest, rest_starts = push_all(resumed, rows, 30, start=390)  # replays 2.4 s the session already has
    assert part_starts + rest_starts == whole_starts
    np.testing.assert_array_equal(np.array(part + rest), np.array(whole))


def test_api_keys_auto_required_off_loopback() -> None:
    assert not auth_required(ServerSettings(host="127.0.0.1")) and not auth_required(ServerSettings(host="::1"))
    assert auth_required(ServerSettings(host="0.0.0.0")) and auth_required(ServerSettings(host="posture.internal"))
    assert not auth_required(ServerSettings(host="0.0.0.0", api_keys_required=False))
    assert auth_required(ServerSettings(host="127.0.0.1", api_keys_required=True))


def test_key_verifier_caches_revocation_and_survives_a_database_outage() -> None:
    with throwaway_database() as name:
        upgrade(pg_url(name))
        key, other = create_key(pg_url(name), "fleet"), create_key(pg_url(name), "other")
        with psycopg.connect(f"host=127.0.0.1 user=postgres dbname={name}") as conn:
            stored = conn.execute("SELECT key_hash FROM api_keys WHERE name = 'fleet'").fetchone()[0]
        assert key.startswith("pk_") and len(key) > 40 and stored == hash_key(key) != key  # only the digest
        proxy = TcpProxy()
        try:
            asyncio.run(_verify_through(proxy, pg_url(name, proxy.port), pg_url(name), key, other))
        finally:
            proxy.close()


async def _verify_through(proxy: TcpProxy, via_proxy: str, direct: str, key: str, other: str) -> None:
    now = [0.0]  # the verifier's clock, moved by hand: a slow machine must not age the cache
    verifier = KeyVerifier(via_proxy, cache_s=0.3, clock=lambda: now[0])
    assert await verifier.verify(key) == "fleet" and await verifier.verify("pk_nonsense") is None
    assert await asyncio.gather(*(verifier.verify(other) for _ in range(20))) == ["other"] * 20
    revoke_key(direct, "fleet")
    assert await verifier.verify(key) == "fleet"  # cached
    now[0] += 0.35
    assert await verifier.verify(key) is None  # the cache ran out: revoked
    proxy.cut()
    now[0] += 0.35
    assert await verifier.verify(other) == "other"  # database down: the last answer stands
    with pytest.raises(KeyCheckUnavailable):
        await verifier.verify("pk_never-seen")
    proxy.restore()
    verifier.close()


def test_in_process_limiter_is_still_the_default() -> None:
    from serving.edge.ratelimit import make_limiter

    assert isinstance(make_limiter(10, 20, None, "client"), TokenBucketLimiter)


def test_a_stream_goes_on_when_redis_goes_away(trained_home: Path, tmp_path: Path) -> None:
    proxy = TcpProxy(target=("127.0.0.1", 6379))  # Redis behind a cable this test can cut
    with redis_prefix() as prefix:
        env = {"POSTURE_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0", "POSTURE_REDIS_PREFIX": prefix}
        server = ServerProcess(trained_home, tmp_path / "instance", env=env)
        try:
            frames = list(json_frames(recording(trained_home, "s02-mixed-1", seconds=20.0), rows=25))
            got, errors = asyncio.run(_stream_with_a_cut(server.ws_url, frames, proxy))
            assert len(got) == 19 and not errors  # every window, on one session
            failed = {op: server.metric("redis_errors_total", operation=op) for op in ("rate_limit", "session_save")}
            assert sum(failed.values()) >= 1, failed  # whichever call met the cut first
            events = [e["event"] for e in server.events()]
            assert events.count("redis_unavailable") == 1 and "session_failed" not in events
        finally:
            assert server.stop() == 0
            proxy.close()


async def _stream_with_a_cut(url: str, frames: list[str], proxy: TcpProxy) -> tuple[list[Any], list[Any]]:
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "hello", "rate_hz": 50}))
        for frame in frames[:20]:
            await ws.send(frame)
        proxy.cut()
        for frame in frames[20:]:
            await ws.send(frame)
        messages = [json.loads(await ws.recv()) for _ in range(1 + 19)]
    return [m for m in messages if m["type"] == "prediction"], [m for m in messages if m["type"] == "error"]


def test_hello_names_the_session_to_resume() -> None:
    assert parse_text('{"type": "hello", "session_id": "4f0c_a-9"}', 6, 10) == Hello(None, None, None, "4f0c_a-9")
    for bad in ('"../etc"', '""', "7", '"' + "a" * 65 + '"'):
        with pytest.raises(FrameError) as raised:
            parse_text('{"type": "hello", "session_id": %s}' % bad, 6, 10)
        assert raised.value.code == "bad_hello"


def test_without_redis_a_dropped_stream_resumes_on_the_same_instance(trained_home: Path, tmp_path: Path) -> None:
    server = ServerProcess(trained_home, tmp_path / "instance")
    try:
        frames = list(json_frames(recording(trained_home, "s04-mixed-1", seconds=12.0), rows=25))  # 11 windows
        first, unknown, mismatched, second = asyncio.run(_drop_and_resume(server.ws_url, frames))
        reasons = [e["reason"] for e in server.events() if e["event"] == "session_not_resumed"]
    finally:
        assert server.stop() == 0
    assert reasons == ["unknown, expired or another key's", "the hello's layout differs"]
    assert (second["session_id"], second["resumed"], second["next_t"]) == (first["session_id"], True, 8.0)
    assert [m["window_start"] for m in second["predictions"]] == [7.0, 8.0, 9.0, 10.0]
    assert unknown["resumed"] is False and unknown["session_id"] != "0" * 32
    assert mismatched["resumed"] is False and mismatched["session_id"] != first["session_id"]


async def _drop_and_resume(url: str, frames: list[str]) -> list[dict[str, Any]]:
    hello = {"type": "hello", "device_id": "local-1", "rate_hz": 50}
    ws = await websockets.connect(url)
    await ws.send(json.dumps(hello))
    first = json.loads(await ws.recv())
    for frame in frames[:16]:  # 400 samples: windows 0..6; the state also holds 8.0 s of timeline
        await ws.send(frame)
    while json.loads(await ws.recv()).get("window_start") != 6.0:
        pass
    await ws.close(4000, "network change")  # not the client's normal 1000: the session may resume
    answers = []
    for extra, sent in (
        ({"session_id": "0" * 32}, []),
        ({"session_id": first["session_id"], "rate_hz": 100}, []),
        ({"session_id": first["session_id"]}, frames[12:]),
    ):
        async with websockets.connect(url) as again:
            await again.send(json.dumps({**hello, **extra}))
            ready = json.loads(await again.recv())
            for frame in sent:  # replays from 6 s
                await again.send(frame)
            ready["predictions"] = [json.loads(await again.recv()) for _ in range(4 if sent else 0)]
            answers.append(ready)
    return [first, *answers]
