"""ASGI middleware: API keys on ``/v1/`` (HTTP requests and the ``/v1/stream`` handshake),
then the per-key rate limit of HTTP requests (stream frames are limited by the session).

HTTP takes ``Authorization: Bearer KEY``; the WebSocket handshake the same header or a
``token`` query parameter (browsers cannot set headers on a WebSocket). Open without a
key: ``/healthz``, ``/readyz`` and ``/metrics`` (probes and scrapes; the proxy keeps
``/metrics`` internal), the browser client's static files and the API docs.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.edge.keys import API_KEY_GRANTS, API_KEY_SCOPE, KeyCheckUnavailable, KeyGrant
from serving.http.middleware import runtime_of_scope

PROTECTED_PREFIX = "/v1/"
CHALLENGE = (b"www-authenticate", b'Bearer realm="posture"')


def presented_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    if scope["type"] == "websocket":
        tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        return tokens[0] if tokens else None
    return None


class AuthMiddleware:
    """401 without a valid key, 503 when it cannot be checked, 429 past the key's bucket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = runtime_of_scope(scope)
        guarded = scope["type"] in ("http", "websocket") and scope["path"].startswith(PROTECTED_PREFIX)
        if not guarded or runtime is None or runtime.edge.keys is None:
            await self.app(scope, receive, send)
            return
        grant, refusal = await self._check(runtime, scope)
        if refusal is not None or grant is None:
            await _refuse(runtime, scope, send, *(refusal or (401, "invalid", "unknown or revoked API key")))
            return
        await self.app({**scope, API_KEY_SCOPE: grant.name, API_KEY_GRANTS: grant.scopes}, receive, send)

    async def _check(self, runtime: Any, scope: Scope) -> tuple[KeyGrant | None, tuple[int, str, str] | None]:
        """(the key's grant, None) or (None, (status, reason, detail))."""
        key = presented_key(scope)
        if key is None:
            return None, (401, "missing", "an API key is required: send 'Authorization: Bearer KEY'")
        try:
            grant = await runtime.edge.keys.check(key)
        except KeyCheckUnavailable:
            return None, (503, "unavailable", "the API key cannot be checked now; retry shortly")
        if grant is None:
            return None, (401, "invalid", "unknown or revoked API key")
        if scope["type"] == "http" and not await runtime.edge.key_limiter.allow(f"key:{grant.name}"):
            runtime.metrics.rate_limited.labels("http").inc()
            return None, (429, "", "rate limit of this API key exceeded; slow down")
        return grant, None


async def _refuse(runtime: Any, scope: Scope, send: Send, status: int, reason: str, detail: str) -> None:
    if reason:
        runtime.metrics.auth_refused.labels(scope["type"], reason).inc()
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.append(CHALLENGE if status == 401 else (b"retry-after", b"1"))
    if scope["type"] == "http":
        prefix = "http.response"
    elif "websocket.http.response" in scope.get("extensions", {}):
        prefix = "websocket.http.response"  # a real 401 on the handshake, not a bare 403
    else:
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": f"{prefix}.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}.body", "body": body})
