"""POST /v1/push/sensorlogger: the Sensor Logger app's HTTP push, fed into a stream session.

Each (deviceId, sessionId) of the app gets one ``StreamSession``, the same object a
WebSocket client gets (windows, micro-batcher, smoothing, store, metrics, limits), driven
by calls (``DirectSession``): a push becomes decoded hello and samples frames, and the
events they cause become the HTTP answer. Sessions close (1000) after PUSH_IDLE_CLOSE_S
without a push, and with the server (1001).

Acceleration follows pipelines/readers/sensorlogger.py: Sensor Logger's "accelerometer"
has gravity removed, so "totalacceleration" is used, else "accelerometer" + "gravity";
the accelerometer alone is refused. Accelerometer and gyroscope readings (times in ns)
are aligned onto the model's sampling grid by ``ImuAligner``, at most
``WorkLimits.max_grid_samples`` rows a push (serving/stream/work_limits.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from features.contract import ACC_CHANNELS, GYRO_CHANNELS, looks_like_g
from serving.client_text import ClientId
from serving.http.schemas import ErrorResponse, ValidationErrorResponse
from serving.stream.direct import DirectSession
from serving.stream.events import Prediction, Rejected
from features.streaming_align import ImuAligner, Readings, TooManyRows
from serving.stream.messages import message_of
from serving.stream.protocol import BINARY_DTYPE, CLOSE_POLICY_VIOLATION, CLOSE_TOO_BIG, Hello, Samples
from serving.stream.services import Peer
from serving.stream.session import Incoming
from serving.stream.work_limits import WorkLimits

if TYPE_CHECKING:
    from serving.runtime import Runtime

PUSH_IDLE_CLOSE_S = 60.0  # a push session without a push for this long is closed (1000)
MAX_READINGS = 50_000  # payload entries per push; more is refused with 413
MAX_TIME_NS = 2**63 - 1  # times fit int64, and so do their differences
JSON_NUMBER_TYPES = (int, float)  # bool is not one: a reading's x of true is no acceleration
TOTAL, USER, GRAVITY, GYRO = "totalacceleration", "accelerometer", "gravity", "gyroscope"
NsReadings = tuple[np.ndarray, np.ndarray]  # times (ns since the epoch, int64), values (n, 3) x, y, z
CLOSE_STATUS = {CLOSE_POLICY_VIOLATION: 429, CLOSE_TOO_BIG: 413}  # other closes: 503

router = APIRouter()


class Reading(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(description='Sensor: "totalacceleration", "accelerometer", "gravity", "gyroscope", ...')
    time: int = Field(ge=0, le=MAX_TIME_NS, strict=True, description="Nanoseconds since the epoch.")
    values: dict[str, Any] = Field(default_factory=dict, description="x, y, z for the motion sensors.")


class SensorLoggerPush(BaseModel):
    model_config = ConfigDict(extra="allow")

    messageId: int | None = Field(None, strict=True, description="Increments per push; a repeated one is ignored.")
    sessionId: ClientId  # the same check for both stores as every edge (serving/client_text.py)
    deviceId: ClientId | None = Field(None, description="Stored pseudonymised.")
    payload: list[Reading]


class PushResponse(BaseModel):
    session_id: str = Field(description="The server's stream session fed by this app session.")
    samples: int = Field(description="Rows this push added on the model's grid (later ones wait for both sensors).")
    predictions: list[dict[str, Any]] = Field(
        description="Windows this push completed: the stream's prediction messages."
    )
    errors: list[dict[str, Any]] = Field(description="The stream's error messages for this push.")
    duplicate: bool = Field(False, description="True when messageId was seen already (nothing was added).")


@dataclass
class PushStream:
    direct: DirectSession
    aligner: ImuAligner
    channels: tuple[str, ...]
    device_id: str | None = None
    base_ns: int | None = None  # times are seconds from the session's first reading
    last_message_id: int | None = None
    greeted: bool = False


@router.post(
    "/v1/push/sensorlogger",
    response_model=PushResponse,
    tags=["push"],
    summary="Sensor Logger app HTTP push: accelerometer + gyroscope into a stream session",
    responses={
        400: {"model": ErrorResponse, "description": "The body cannot be read (not UTF-8)."},
        413: {"model": ErrorResponse, "description": "Too many readings in one push."},
        422: {
            "model": ValidationErrorResponse | ErrorResponse,
            "description": "A body that is not a push (FastAPI's list of errors), or readings the model "
            "cannot use: no gravity, no gyroscope, wrong units, values out of range, or "
            "spread over too long a time for one push (one `detail` string).",
        },
        429: {"model": ErrorResponse, "description": "The session was closed for flooding."},
        503: {"model": ErrorResponse, "description": "The server is shutting down."},
    },
)
async def push_sensorlogger(body: SensorLoggerPush, request: Request) -> PushResponse:
    runtime: Runtime = request.app.state.runtime
    if runtime.draining:
        raise HTTPException(503, "the server is shutting down")
    if len(body.payload) > MAX_READINGS:
        raise HTTPException(413, f"{len(body.payload)} readings in one push; the limit is {MAX_READINGS}")
    readings = group_readings(body.payload)
    while True:
        stream = _stream_for(request, runtime, body)
        async with stream.direct.lock:
            if stream.direct.closed:  # it went idle while this push waited for the lock: open another
                continue
            if _seen(stream, body.messageId):
                session_id = stream.direct.session.id
                return PushResponse(session_id=session_id, samples=0, predictions=[], errors=[], duplicate=True)
            frames, samples = _frames(stream, readings, runtime)
            events = await stream.direct.feed(frames) if frames else []
            break
    code = stream.direct.close_code
    if stream.direct.closed and code not in (None, 1000):
        raise HTTPException(CLOSE_STATUS.get(code, 503), f"the stream session was closed ({code})")
    return PushResponse(
        session_id=stream.direct.session.id,
        samples=samples,
        predictions=[message_of(e) for e in events if isinstance(e, Prediction)],
        errors=[message_of(e) for e in events if isinstance(e, Rejected)],
    )


def _seen(stream: PushStream, message_id: int | None) -> bool:
    """A messageId at or below the last one: the app retried a push that arrived."""
    if message_id is None:
        return False
    if stream.last_message_id is not None and message_id <= stream.last_message_id:
        return True
    stream.last_message_id = message_id
    return False


def _stream_for(request: Request, runtime: "Runtime", body: SensorLoggerPush) -> PushStream:
    """The open push stream of this app session, or a new one (forgotten when its session ends)."""
    streams: dict[tuple[str, str], PushStream] | None = getattr(request.app.state, "sensorlogger_streams", None)
    if streams is None:
        streams = request.app.state.sensorlogger_streams = {}
    key = (body.deviceId or "", body.sessionId)
    stream = streams.get(key)
    if stream is not None and not stream.direct.closed:
        return stream

    def forget(ended: DirectSession) -> None:
        if key in streams and streams[key].direct is ended:
            del streams[key]

    spec = runtime.holder.current.spec
    with_gyro = any(c in GYRO_CHANNELS for c in spec.channels)
    peer = Peer("ws", request.client.host if request.client else None)  # logged as a stream session
    stream = streams[key] = PushStream(
        DirectSession(runtime.session_services, peer, PUSH_IDLE_CLOSE_S, on_end=forget),
        ImuAligner(
            spec.rate_hz,
            2 if with_gyro else 1,
            runtime.settings.max_gap_s,
            WorkLimits.of(runtime.settings).max_grid_samples,
        ),
        ACC_CHANNELS + GYRO_CHANNELS if with_gyro else ACC_CHANNELS,
        body.deviceId,
    )
    return stream


def group_readings(payload: list[Reading]) -> dict[str, NsReadings]:
    """Motion readings by sensor name: times (ns, int64) and (n, 3) x, y, z; others are ignored."""
    grouped: dict[str, tuple[list[int], list[list[float]]]] = {}
    for index, reading in enumerate(payload):
        name = reading.name.lower()
        if name not in (TOTAL, USER, GRAVITY, GYRO):
            continue
        try:
            raw = [reading.values[axis] for axis in ("x", "y", "z")]
            if not all(type(value) in JSON_NUMBER_TYPES for value in raw):  # not "9.7", not true
                raise TypeError
            xyz = [float(value) for value in raw]
        except (KeyError, TypeError):
            raise HTTPException(
                422, f"payload[{index}] ({reading.name}): values must hold numbers x, y and z"
            ) from None
        except OverflowError:  # an integer literal beyond float range, such as 1 followed by 400 zeros
            raise HTTPException(422, f"payload[{index}] ({reading.name}): x, y and z must be finite") from None
        if not all(map(math.isfinite, xyz)):
            raise HTTPException(422, f"payload[{index}] ({reading.name}): x, y and z must be finite")
        times, values = grouped.setdefault(name, ([], []))
        times.append(reading.time)
        values.append(xyz)
    return {name: (np.asarray(t, dtype=np.int64), np.asarray(v, dtype=float)) for name, (t, v) in grouped.items()}


def acceleration(readings: dict[str, NsReadings]) -> NsReadings | None:
    """Acceleration with gravity (ns, m/s^2), the way the Sensor Logger file reader builds it."""
    if TOTAL in readings:
        return readings[TOTAL]
    if USER in readings and GRAVITY in readings:
        (t, user), (tg, gravity) = readings[USER], readings[GRAVITY]
        order = np.argsort(tg)
        aligned = np.column_stack([np.interp(t, tg[order], gravity[order, axis]) for axis in range(3)])
        return t, user + aligned
    if USER in readings:
        raise HTTPException(
            422,
            "Sensor Logger's 'accelerometer' has gravity removed and this push has neither "
            "'totalacceleration' nor 'gravity'. "
            "Fix: enable Total Acceleration (or Gravity) in the app.",
        )
    return None


def _frames(stream: PushStream, readings: dict[str, NsReadings], runtime: "Runtime") -> tuple[list[Incoming], int]:
    """Hello (first push), then the new grid rows as sample frames of at most max_samples_per_frame rows."""
    acc = acceleration(readings)
    batches = [_seconds(stream, acc)]
    if len(stream.channels) > 3:
        if GYRO not in readings and acc is not None and len(stream.aligner.tracks[1].t) == 0:
            raise HTTPException(
                422, "the model needs the gyroscope and this push has none. Fix: enable Gyroscope in the app."
            )
        batches.append(_seconds(stream, readings.get(GYRO)))
    if acc is not None and len(stream.aligner.tracks[0].t) == 0 and looks_like_g(acc[1]):
        raise HTTPException(
            422,
            "the acceleration's magnitude is about 1, which looks like g; Sensor Logger sends m/s^2. "
            "Fix: check the app's unit settings.",
        )
    try:
        aligned = stream.aligner.push(batches)
    except TooManyRows as err:
        problem = WorkLimits.of(runtime.settings).grid_problem(err.rows, "this push")
        raise HTTPException(
            422,
            f"{problem} Fix: push more often (a batch period of about 1 s), and check "
            "that times are nanoseconds since the epoch.",
        ) from None
    frames = [] if stream.greeted else [_decoded(Hello(stream.device_id, stream.aligner.rate_hz, stream.channels))]
    stream.greeted = True
    if aligned is None:
        return frames, 0
    t0, rows = aligned
    values = rows.astype(BINARY_DTYPE)  # what a stream frame's samples become
    if not np.isfinite(values).all():
        raise HTTPException(422, "values beyond the float32 range of a stream sample. Fix: send m/s^2 and rad/s.")
    per_frame = runtime.settings.max_samples_per_frame
    for start in range(0, len(values), per_frame):
        frame_t0 = round(t0 + start / stream.aligner.rate_hz, 6)
        frames.append(_decoded(Samples(values[start : start + per_frame], frame_t0)))
    return frames, len(rows)


def _decoded(frame: Hello | Samples) -> Incoming:
    """A frame built here, not read off a wire: nothing to decode, no wire size."""
    return Incoming(0, "json", lambda _channels: frame)


def _seconds(stream: PushStream, readings: NsReadings | None) -> Readings:
    """ns since the epoch -> seconds since the session's first reading (float64 keeps us precision)."""
    if readings is None or len(readings[0]) == 0:
        return np.empty(0), np.empty((0, 3))
    t_ns, values = readings
    if stream.base_ns is None:
        stream.base_ns = int(t_ns.min())
    return (t_ns - stream.base_ns) * 1e-9, values
