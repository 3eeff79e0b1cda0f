"""Request and response bodies of the HTTP API (they make the OpenAPI spec)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serving.client_text import ClientId
from serving.stream.protocol import MAX_ABS_T0_S  # bounds t0 as on the stream

Channel = Literal["ax", "ay", "az", "gx", "gy", "gz"]

ROWS_EXAMPLE = {
    "samples": [[0.1, 9.7, 0.3, 0.01, 0.0, -0.02]] * 100,
    "rate_hz": 50,
    "device_id": "phone-7",
}


# "Exactly one of samples or windows" in JSON Schema: a present, non-null one of the two. A null
# counts as absent, as in the validator below, so {"samples": null, "windows": [...]} is valid.
ONE_INPUT = {
    "oneOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in ("samples", "windows")]
}


class PredictRequest(BaseModel):
    """Samples (rows or columns, at ``rate_hz``) or ready windows; exactly one of the two."""

    # strict: JSON numbers only, as on the stream (docs/protocol.md): lax mode took "9.7" and true as numbers.
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [ROWS_EXAMPLE], **ONE_INPUT})

    samples: list[list[float]] | dict[Channel, list[float]] | None = Field(
        None,
        description="Rows [[ax, ay, az, gx, gy, gz], ...] in `channels` order, or columns "
        '{"ax": [...], ...}. m/s^2 and rad/s. Cut into the model\'s windows and hop.',
    )
    windows: list[list[list[float]]] | None = Field(
        None, description="Ready windows (n, window_samples, channels) at the model's rate, in `channels` order."
    )
    channels: list[Channel] | None = Field(
        None, description="Column order of `samples` rows or `windows`; default: the model's channels."
    )
    rate_hz: float | None = Field(
        None, gt=0, le=2000, description="Sampling rate of `samples`; resampled when it differs from the model's."
    )
    t0: float = Field(
        0.0,
        ge=-MAX_ABS_T0_S,
        le=MAX_ABS_T0_S,  # 1e400 read as infinity made every start and end null
        description="Time of the first sample in seconds; window start/end are relative to it.",
    )
    # Checked for both stores at the edge (serving/client_text.py): no NUL, no lone surrogate.
    device_id: ClientId | None = Field(None, description="Stored pseudonymised.")
    session_id: ClientId | None = Field(None, description="Groups requests in the log.")

    @model_validator(mode="after")
    def _one_input(self) -> "PredictRequest":
        if (self.samples is None) == (self.windows is None):
            raise ValueError("give exactly one of `samples` or `windows`")
        return self


class WindowPrediction(BaseModel):
    index: int = Field(description="Window number in this request, from 0.")
    start: float = Field(description="Window start, seconds (t0 + offset; ready windows: t0 + index * hop).")
    end: float = Field(description="Window end, seconds.")
    label: str
    confidence: float = Field(description="Probability of `label`.")
    probabilities: dict[str, float] = Field(description="Probability of every class.")
    model_version: str


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    latency_ms: float = Field(description="Server time from request to predictions.")
    predictions: list[WindowPrediction]


class SpecInfo(BaseModel):
    rate_hz: float
    window_s: float
    hop_s: float
    window_samples: int
    hop_samples: int
    channels: list[str]
    feature_set_version: str
    classes: list[str]


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str | None
    uri: str
    engine: Literal["onnx", "sklearn"]
    classes: list[str]
    spec: SpecInfo
    loaded_at: str = Field(description="ISO 8601, UTC.")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready", "degraded", "not_ready"] = Field(
        description="ready and degraded (store unreachable, rows spooling) answer 200; not_ready 503."
    )
    reasons: list[str] = Field(description="Why not ready or degraded; empty when ready.")
    model_version: str | None
    database: Literal["ok", "unreachable"]
    backlog: int = Field(description="Prediction-log rows spooled, waiting for the database.")
    rows_dropped: int
    quarantined: int = Field(
        description="Prediction-log rows the database refused as data, set aside in the spool's quarantine folder."
    )


class ErrorResponse(BaseModel):
    detail: str


class ValidationErrorItem(BaseModel):
    loc: list[str | int] = Field(description='Where: ["body", field, index...].')
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ValidationErrorItem]
