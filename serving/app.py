"""The app factory: HTTP endpoints, the /v1/stream WebSocket, and the lifespan that starts
and stops the model holder, micro-batcher, prediction store and reload poller."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.middleware import Middleware

from serving.settings import ServerSettings
from serving.edge.keys import auth_required
from serving.http.auth_middleware import AuthMiddleware
from serving.http.fast_lane import FastLaneMiddleware, validation_error_response
from serving.http.middleware import RateLimitMiddleware, RequestMetricsMiddleware
from serving.http.openapi_doc import StaticBehindApi, document_edge
from serving.http.routes import add_body_schemas, predict, router
from serving.runtime import start_runtime
from serving.shutdown import install_drain_on_signals
from serving.http.feedback import router as feedback_router
from serving.http.sensorlogger import router as sensorlogger_router
from serving.stream.websocket import stream_endpoint

SERVE_MODEL_ENV = "POSTURE_SERVE_MODEL"  # `posture serve --model`, handed to worker processes

DESCRIPTION = """Posture predictions from IMU samples.

* `POST /v1/predict`: a batch of samples (rows or columns) or ready windows -> one prediction per window.
* `WebSocket /v1/stream`: live frames -> a prediction each time a window completes (see docs/protocol.md).
* API keys (required unless the server binds to loopback): `Authorization: Bearer KEY` on `/v1/`
  (the stream also takes `?token=KEY`); `posture keys create NAME` makes one.
"""


def _package_version() -> str:
    try:
        return version("posture")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(settings: ServerSettings, model_uri: str | None = None) -> FastAPI:
    """A server app for ``model_uri`` (a URI, version or alias; default the settings' alias)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await start_runtime(settings, model_uri)
        app.state.runtime = runtime
        install_drain_on_signals(runtime.drain)
        try:
            yield
        finally:
            await runtime.stop()

    middleware = [Middleware(RequestMetricsMiddleware)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"]
            )
        )
    middleware.append(Middleware(RateLimitMiddleware))
    middleware.append(Middleware(AuthMiddleware))  # inside the per-address limit: bad-key floods are limited too
    middleware.append(Middleware(FastLaneMiddleware, lanes=_fast_lanes()))
    app = FastAPI(
        title="posture",
        version=_package_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers={RequestValidationError: validation_error_response},
    )
    app.include_router(router)
    app.include_router(sensorlogger_router)
    app.include_router(feedback_router)
    app.add_api_websocket_route("/v1/stream", stream_endpoint, name="stream")
    # The browser test client (serving/static) at /, mounted last so it shadows no API route.
    from fastapi.staticfiles import StaticFiles

    static = StaticFiles(directory=os.path.join(os.path.dirname(__file__), "static"), html=True)
    # Included routers hold their own routes.
    api_routes = [*app.routes, *router.routes, *sensorlogger_router.routes, *feedback_router.routes]
    app.router.routes.append(StaticBehindApi(static, api_routes, name="static"))
    _document(app, auth_required(settings))
    return app


def _fast_lanes() -> dict:
    """The hot routes that skip FastAPI's routing (serving/http/fast_lane.py), with their route objects."""
    (route,) = [r for r in router.routes if getattr(r, "endpoint", None) is predict]
    return {("POST", "/v1/predict"): (predict, route)}


def _document(app: FastAPI, keys_required: bool) -> None:
    """OpenAPI: add the schemas of request bodies that routes parse themselves, and the answers
    the edge gives before any route (serving/http/openapi_doc.py)."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            spec = generate()  # generate() caches its result in app.openapi_schema
            add_body_schemas(spec)
            document_edge(spec, keys_required)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def app_from_env() -> FastAPI:
    """``uvicorn --factory`` entry for each worker: settings from ``POSTURE_*`` variables."""
    return create_app(ServerSettings(), os.environ.get(SERVE_MODEL_ENV) or None)
