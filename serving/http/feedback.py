"""POST /v1/feedback: ground truth sent back for logged predictions.

The true label of a session's windows in a range of the stream's own seconds (what the
prediction messages' ``window_start``/``window_end`` say), or of a device's predictions in
a range of server time (ISO 8601). The row goes through the prediction store's writer like
every other row (spooled while the database is down); live accuracy per model version then
shows in ``posture db stats`` and in ``/metrics`` (serving/store/live_accuracy.py).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Self

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.client_text import ClientId
from serving.http.schemas import ErrorResponse, ValidationErrorResponse
from serving.store.records import FeedbackRecord

if TYPE_CHECKING:
    from serving.runtime import Runtime

router = APIRouter()


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: ClientId | None = Field(None, description="The stream session (its ready message's session_id).")
    device_id: ClientId | None = Field(None, description="The device, across its sessions; stored pseudonymised.")
    start: float | datetime = Field(
        description="Seconds of the stream (with session_id: windows that start at or after it), "
        "or an ISO 8601 time (predictions made at or after it)."
    )
    end: float | datetime = Field(description="Same kind as start: windows that end at or before it.")
    label: ClientId = Field(description="The true label: one of the served model's classes.")

    @model_validator(mode="after")
    def _one_range(self) -> Self:
        if self.session_id is None and self.device_id is None:
            raise ValueError("name the predictions: give session_id, device_id or both")
        start, end = self.start, self.end
        if isinstance(start, datetime) and isinstance(end, datetime):
            if _utc(end) <= _utc(start):
                raise ValueError("end must come after start")
            return self
        if isinstance(start, datetime) or isinstance(end, datetime):
            raise ValueError("start and end must both be seconds of the stream or both ISO 8601 times")
        if self.session_id is None:
            raise ValueError("seconds of the stream need session_id; for a device, send ISO 8601 times")
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError("start and end must be finite seconds")
        if end <= start:
            raise ValueError("end must come after start")
        return self

    def record(self) -> FeedbackRecord:
        start, end = self.start, self.end
        record = FeedbackRecord(session_id=self.session_id, device_id=self.device_id, label=self.label)
        if isinstance(start, datetime) and isinstance(end, datetime):
            record.time_from, record.time_to = _utc(start), _utc(end)
        else:
            record.window_from, record.window_to = float(start), float(end)  # type: ignore[arg-type]
        return record


class FeedbackResponse(BaseModel):
    accepted: bool = Field(description="Queued for the store (written within a second, or spooled).")


def _utc(value: datetime) -> datetime:
    """A time without a zone is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@router.post(
    "/v1/feedback",
    response_model=FeedbackResponse,
    status_code=202,
    tags=["feedback"],
    summary="Ground truth: the true label of a session's or a device's predictions in a range",
    responses={
        400: {"model": ErrorResponse, "description": "The body cannot be read (not JSON text)."},
        422: {
            "model": ValidationErrorResponse | ErrorResponse,
            "description": "A body that is not feedback, or a label that is not one of the model's classes.",
        },
        503: {"model": ErrorResponse, "description": "The server is shutting down."},
    },
)
async def feedback(body: FeedbackRequest, request: Request) -> FeedbackResponse:
    runtime: Runtime = request.app.state.runtime
    if runtime.draining:
        raise HTTPException(503, "the server is shutting down")
    classes = runtime.holder.current.classes
    if body.label not in classes:
        raise HTTPException(
            422, f"label {body.label!r} is not one of the model's classes. Fix: send one of {', '.join(classes)}."
        )
    runtime.store.add_feedback(body.record())
    return FeedbackResponse(accepted=True)
