"""ASGI middleware for HTTP requests: Prometheus request metrics and per-address rate limits.

Pure ASGI (not BaseHTTPMiddleware, which costs ~0.1 ms a request); WebSocket scopes pass
through, the stream session applies its own limits per frame.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Probes and scrapes are never rate limited: a busy client must not make the server look dead.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def runtime_of_scope(scope: Scope) -> Any:
    """The app's Runtime (None before the lifespan started it)."""
    return getattr(getattr(scope.get("app"), "state", None), "runtime", None)


class RequestMetricsMiddleware:
    """rest_server_requests_total and rest_server_request_duration_seconds by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            runtime = runtime_of_scope(scope)
            if runtime is not None:
                metrics = runtime.metrics
                route = scope.get("route")
                path = getattr(route, "path", None) or "unmatched"  # templates only: bounded label values
                metrics.requests.labels(scope["method"], path, str(status)).inc()
                metrics.request_duration.labels(scope["method"], path).observe(time.perf_counter() - started)


class RateLimitMiddleware:
    """429 with Retry-After when a client address exceeds its token bucket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        runtime = runtime_of_scope(scope)
        client = scope.get("client")
        if runtime is None or await runtime.edge.limiter.allow(f"address:{client[0] if client else None}"):
            await self.app(scope, receive, send)
            return
        runtime.metrics.rate_limited.labels("http").inc()
        body = json.dumps({"detail": "rate limit exceeded; slow down"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"retry-after", b"1"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
