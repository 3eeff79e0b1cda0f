"""ASGI: ``POST /v1/predict`` straight to its handler, past FastAPI's per-request machinery.

FastAPI's routing (every route and mount is matched in turn), dependency solving and
exception middleware cost ~0.3 ms of a one-window prediction that otherwise takes ~1 ms.
This middleware sits innermost, after metrics, rate limits and API keys, so those
still apply; it calls the route's own handler, which FastAPI keeps declared for the
OpenAPI spec (and which every other path still reaches through the router).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]


class FastLaneMiddleware:
    """Answers ``(method, path)`` pairs of ``lanes`` with their handlers; the rest goes on."""

    def __init__(self, app: ASGIApp, lanes: dict[tuple[str, str], tuple[Handler, BaseRoute]]) -> None:
        self.app = app
        self.lanes = lanes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = self.lanes.get((scope.get("method", ""), scope["path"])) if scope["type"] == "http" else None
        if lane is None:
            await self.app(scope, receive, send)
            return
        handler, route = lane
        scope["route"] = route  # what the router would set: metrics label requests by its path
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except RequestValidationError as err:
            response = await validation_error_response(request, err)
        await response(scope, receive, send)


async def validation_error_response(request: Request, err: Exception) -> Response:
    """FastAPI's own 422 format (``{"detail": [{"loc", "msg", "type", "input"}]}``), for every route.

    FastAPI's handler renders with ``json.dumps(allow_nan=False)``: an input of 1e400 (read as
    infinity), even nested in an unknown field, turned the 422 into a 500. Such values become
    null (orjson would too, but it refuses integers beyond 64 bits, which inputs can be). An
    echoed string with a lone surrogate (``"\\ud800"``, which the standard JSON parser reads)
    cannot be encoded as UTF-8 and was a 500 too: it is echoed escaped."""
    assert isinstance(err, RequestValidationError)
    return JSONResponse({"detail": _encodable(jsonable_encoder(err.errors()))}, status_code=422)


def _encodable(value: Any) -> Any:
    """``value`` with every infinite or NaN float replaced by None (JSON has no such numbers)
    and every lone surrogate in a string (key or value) written as its escape, ``\\ud800``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    return value
