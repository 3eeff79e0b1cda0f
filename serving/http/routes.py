"""HTTP endpoints: health, readiness, metrics, the served model, and batch prediction."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from features.feature_sets import window_contexts
from serving.batcher import BatcherClosed
from serving.http.request_windows import request_windows
from serving.http.schemas import (
    ErrorResponse,
    HealthResponse,
    ModelsResponse,
    PredictRequest,
    PredictResponse,
    ReadyResponse,
    ValidationErrorResponse,
)
from serving.metrics import CONTENT_TYPE
from serving.runtime import Runtime
from serving.stream.work_limits import WorkLimits

READY_PING_TIMEOUT_S = 2.0

router = APIRouter()


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


@router.get("/healthz", response_model=HealthResponse, tags=["health"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=ReadyResponse,
    tags=["health"],
    summary="Model loaded; database reachable, or rows spooling while it is not",
    responses={503: {"model": ReadyResponse, "description": "Not ready; `reasons` says why."}},
)
async def readyz(request: Request) -> JSONResponse:
    """200 ``ready``; 200 ``degraded`` while the store is unreachable and rows spool (the
    instance still serves, see docs/deployment.md); 503 ``not_ready`` without a model, while
    shutting down, or when neither the database nor the spool takes rows."""
    rt = runtime_of(request)
    store = rt.store
    reasons = []
    if not rt.holder.loaded:
        reasons.append("no model loaded")
    if rt.draining:
        reasons.append("shutting down")
    try:  # the writer's view first: a locked table still answers a ping
        writable = store.schema_ready and not store.database_failing
        database_ok = writable and await asyncio.wait_for(store.ping(), READY_PING_TIMEOUT_S)
    except asyncio.TimeoutError:
        database_ok = False
    if not database_ok and store.spool_failing:
        reasons.append("store unreachable and the spool refuses rows (disk full?): rows wait in memory")
    degraded = []
    if not database_ok and not store.spool_failing:
        last = store.schema_problem or (store.last_error if store.database_failing else None)
        degraded.append(f"store unreachable, spooling ({last or 'rows are replayed when it returns'})")
    if rt.bridge is not None and not rt.bridge.connected:
        degraded.append("MQTT broker unreachable: devices' frames wait in the broker's session for the reconnect")
    body = ReadyResponse(
        status="not_ready" if reasons else "degraded" if degraded else "ready",
        reasons=reasons + degraded,
        model_version=rt.holder.current.version if rt.holder.loaded else None,
        database="ok" if database_ok else "unreachable",
        backlog=store.backlog,
        rows_dropped=store.rows_dropped,
        quarantined=store.quarantined,
    )
    return JSONResponse(body.model_dump(), status_code=503 if reasons else 200)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    tags=["health"],
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    return Response(runtime_of(request).metrics.render(), media_type=CONTENT_TYPE)


@router.get("/v1/models", response_model=ModelsResponse, tags=["models"], summary="The model being served")
async def models(request: Request) -> dict[str, Any]:
    return {"models": [runtime_of(request).holder.current.describe()]}


# The body is parsed by pydantic-core straight from bytes (``parse_predict_body``) instead
# of FastAPI's ``json.loads`` + validation, which costs ~5x more for 600 floats; so the
# request schema is declared here and added to the components by ``add_body_schemas``.
PREDICT_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
}


def parse_predict_body(raw: bytes) -> PredictRequest:
    """The request body, or FastAPI's own 422 (``loc`` starting with ``"body"``)."""
    try:
        return PredictRequest.model_validate_json(raw)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        if errors[0]["type"] == "json_invalid":
            errors = _errors_by_field(raw) or errors
        raise RequestValidationError([_under_body(error) for error in errors]) from None


def _errors_by_field(raw: bytes) -> list[ErrorDetails] | None:
    """JSON that pydantic's parser refuses but RFC 8259 allows: a lone surrogate escaped in a
    string (``"\\ud800x"``). Read by the standard parser and validated again, the 422 names the
    field (``session_id`` ...) instead of a position in the body. None for a body that is not JSON."""
    try:
        document = json.loads(raw, parse_constant=_refuse_constant)
        PredictRequest.model_validate(document)
    except ValidationError as err:
        return err.errors(include_url=False)
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError included), or nested too deep
        return None
    return None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _under_body(error: ErrorDetails) -> dict[str, Any]:
    """A pydantic error located under ``body``. A not-JSON error's input is the raw body: it is
    left out (undecodable bytes turned the 422 into a 500, and echoing a whole body helps no one)."""
    located = {**error, "loc": ("body", *error["loc"])}
    if isinstance(located.get("input"), bytes):
        located["input"] = None
    return located


def add_body_schemas(openapi: dict[str, Any]) -> None:
    """Put the schemas of bodies parsed by hand (``PREDICT_BODY``) into the OpenAPI components."""
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    components["PredictRequest"] = schema


@router.post(
    "/v1/predict",
    response_model=PredictResponse,
    tags=["predict"],
    summary="Predict every window of a batch of samples",
    responses={
        422: {"model": ValidationErrorResponse, "description": "The body names what is wrong."},
        503: {"model": ErrorResponse, "description": "The server is shutting down."},
    },
    openapi_extra={"requestBody": PREDICT_BODY},
)
async def predict(request: Request) -> Response:
    """Samples (rows or columns, resampled from `rate_hz` when it differs from the model's
    rate) are cut into the model's windows; or send ready windows. One prediction per window."""
    rt = runtime_of(request)
    started = time.perf_counter()
    body = parse_predict_body(await request.body())
    served = rt.holder.current  # one version answers the whole request
    windows, starts = request_windows(body, served.spec, WorkLimits.of(rt.settings))
    try:  # a request is a stream of its own: its windows' context comes from its windows alone
        probabilities = await rt.batcher.submit(windows, window_contexts(windows, served.spec), served)
    except BatcherClosed:
        return JSONResponse({"detail": "the server is shutting down"}, status_code=503)
    latency_ms = (time.perf_counter() - started) * 1000.0
    classes, window_s = served.classes, served.spec.window_s
    rows, best, begins = probabilities.tolist(), probabilities.argmax(axis=1).tolist(), starts.tolist()
    labels = rt.predictions.log(served, "http", body.session_id, body.device_id, begins, rows, best, latency_ms)
    predictions = [
        {
            "index": index,
            "start": start,
            "end": start + window_s,
            "label": label,
            "confidence": row[k],
            "probabilities": dict(zip(classes, row)),
            "model_version": served.version,
        }
        for index, (row, k, start, label) in enumerate(zip(rows, best, begins, labels))
    ]
    # Built by hand (response_model documents it) to skip validating every window a second time.
    answer = {
        "model_name": served.name,
        "model_version": served.version,
        "latency_ms": latency_ms,
        "predictions": predictions,
    }
    return Response(orjson.dumps(answer), media_type="application/json")
