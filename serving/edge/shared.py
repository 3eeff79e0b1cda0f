"""What one server instance shares with the others behind the proxy through Redis, or keeps
in-process without it: rate limits, resumable stream-session state, registry look-ups;
and the API-key check (docs/deployment.md)."""

from __future__ import annotations

from dataclasses import dataclass

from serving.settings import ServerSettings
from serving.edge.keys import KeyVerifier, auth_required
from serving.edge.ratelimit import RateLimiter, make_limiter
from serving.edge.redis_state import AliasCache, RedisUnavailable, SharedRedis
from serving.logs import log_event
from serving.metrics import ServerMetrics
from serving.store.db import redact
from serving.edge.session_states import SessionStore, make_session_store


@dataclass
class Edge:
    limiter: RateLimiter  # per client address (HTTP and frames) and per session (frames)
    key_limiter: RateLimiter  # per API key, all instances together
    session_store: SessionStore
    keys: KeyVerifier | None  # None: API keys are not required
    redis: SharedRedis | None = None
    alias_cache: AliasCache | None = None

    async def close(self) -> None:
        if self.keys is not None:
            self.keys.close()
        if self.redis is not None:
            await self.redis.close()


async def build_edge(settings: ServerSettings, metrics: ServerMetrics) -> Edge:
    """Redis when ``POSTURE_REDIS_URL`` is set (an unreachable one is logged, then fallen back from)."""
    redis = None
    if settings.redis_url:
        redis = SharedRedis(
            settings.redis_url,
            settings.redis_prefix,
            settings.redis_timeout_s,
            on_error=lambda operation: metrics.redis_errors.labels(operation).inc(),
        )
        try:
            await redis.call("ping", lambda r: r.ping())
        except RedisUnavailable:
            pass  # logged by the breaker; every caller falls back until Redis answers
    assert settings.database_url is not None
    keys = KeyVerifier(settings.database_url, settings.api_key_cache_s) if auth_required(settings) else None
    log_event(
        "edge_ready",
        redis=redact(settings.redis_url) if settings.redis_url else None,
        api_keys_required=keys is not None,
    )
    return Edge(
        limiter=make_limiter(settings.rate_limit_per_s, settings.rate_limit_burst, redis, "client"),
        key_limiter=make_limiter(settings.rate_limit_key_per_s, settings.rate_limit_key_burst, redis, "key"),
        session_store=make_session_store(redis, settings.session_ttl_s),
        keys=keys,
        redis=redis,
        alias_cache=AliasCache(redis, settings.model_cache_ttl_s) if redis is not None else None,
    )
