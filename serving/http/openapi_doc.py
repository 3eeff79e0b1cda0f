"""The OpenAPI document as the server really answers, and the static files kept behind the API.

FastAPI documents what each route declares. Some answers come from before any route, and
schemathesis found them missing from the spec (issue 15):

- the per-address rate limit answers 429 (with ``Retry-After``) on every path but the probes
  (``UNLIMITED_PATHS``);
- with API keys required, ``/v1/`` answers 401 without a valid key and 503 when a key cannot
  be checked right now; then the spec also declares the bearer scheme. A server that does not
  require keys never answers 401, so its spec declares no security;
- an HTTP method a route does not take answered 405 ``Allow: GET, HEAD``: the browser client's
  static files, mounted at ``/``, matched every path, so ``OPTIONS /v1/predict`` reached them.
  ``StaticBehindApi`` leaves the API's own paths to the router, which answers such a method
  with 405 and the route's real methods (``Allow: POST``).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Scope

from serving.http.auth_middleware import PROTECTED_PREFIX
from serving.http.middleware import UNLIMITED_PATHS
from serving.http.schemas import ErrorResponse

ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}
SECURITY_SCHEME = "apiKey"
RATE_LIMITED = {
    "description": "Rate limit exceeded (per client address, or per API key); retry after `Retry-After` seconds.",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}},
    "content": {"application/json": {"schema": ERROR_SCHEMA}},
}
NO_KEY = {
    "description": "No valid API key: send `Authorization: Bearer KEY` (`posture keys create NAME` makes one).",
    "content": {"application/json": {"schema": ERROR_SCHEMA}},
}
KEY_UNCHECKED = "The API key cannot be checked right now (key database unreachable); retry shortly."


def document_edge(openapi: dict[str, Any], keys_required: bool) -> None:
    """Add to every operation the answers the edge middleware gives before its route runs."""
    components = openapi.setdefault("components", {})
    components.setdefault("schemas", {}).setdefault("ErrorResponse", ErrorResponse.model_json_schema())
    for path, item in openapi.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            if path not in UNLIMITED_PATHS:
                responses.setdefault("429", RATE_LIMITED)
            if keys_required and path.startswith(PROTECTED_PREFIX):
                responses.setdefault("401", NO_KEY)
                _add_description(responses, "503", KEY_UNCHECKED)
                operation["security"] = [{SECURITY_SCHEME: []}]
    if keys_required:
        components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {"type": "http", "scheme": "bearer"}


def _add_description(responses: dict[str, Any], status: str, description: str) -> None:
    """A status a route already documents gets the edge's reason as well (one status, two causes)."""
    if status in responses:
        responses[status] = {**responses[status], "description": f"{responses[status]['description']} {description}"}
    else:
        responses[status] = {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}


class StaticBehindApi(Mount):
    """A mount at ``/`` that never takes an HTTP request for one of the API's own paths: those
    stay with their route, whose method check answers 405 with the methods it really takes."""

    def __init__(self, app: Any, api_routes: list[BaseRoute], name: str | None = None) -> None:
        super().__init__("/", app=app, name=name)
        self.api_paths = frozenset(route.path for route in api_routes if isinstance(route, Route))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["path"] in self.api_paths:
            return Match.NONE, {}
        return super().matches(scope)
