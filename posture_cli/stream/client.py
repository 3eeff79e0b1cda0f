"""The WebSocket side of ``posture stream`` (protocol: docs/protocol.md).

One task reads the device into the resend buffer; each session sends hello, waits for
ready, then sends frames (paced, joined when they pile up) while it receives predictions
and errors. When the connection goes, the client waits (exponential backoff with
jitter), reconnects and replays what the old session did not confirm.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from features.errors import PostureError
from posture_cli.stream.chunks import Chunk, Device
from posture_cli.stream.resend import RESEND_BUFFER_SAMPLES, Backoff, ResendBuffer
from posture_cli.stream.stats import StreamStats

OPEN_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 2.0
MAX_FRAMES_PER_S = 50.0  # frames pile up and are joined beyond this: fast replays stay under the rate limit
STOP_RECORDING_TIMEOUT_S = 5.0  # the server answers a stop once the last file is written
DRAIN_IDLE_S = 1.0  # after the device ended: close once the server has been quiet this long
JSON_CHARS_PER_VALUE = 24  # the longest float repr plus a separator: bounds a JSON frame's size
DEFAULT_LIMITS = {"max_frame_bytes": 65536, "max_samples_per_frame": 1000, "rate_limit_per_s": 200.0}
FATAL_STATUS = (401, 403, 404)  # retrying cannot fix a refused token or a wrong path
RETRIED_ERRORS = (OSError, asyncio.TimeoutError, WebSocketException)
RECORD_FIXES = {  # error code -> what the user of --record can do
    "recording_disabled": "start the server with POSTURE_RECORDING_ENABLED=true, or stream without --record.",
    "recording_forbidden": "pass a --token made with `posture keys create NAME --scope record`.",
    "bad_record": "pass --label with one of the model's classes and --subject as a plain name (letters, digits, _.-).",
}


class StreamRefused(PostureError):
    """The server refused the stream in a way that reconnecting cannot fix."""


@dataclass(frozen=True)
class ClientOptions:
    url: str
    token: str | None = None
    device_id: str | None = None
    binary: bool = False
    buffer_samples: int = RESEND_BUFFER_SAMPLES
    record: dict[str, str] | None = None  # {"label", "subject"}: the server records the session


Listener = Callable[[dict[str, Any]], None]  # called with each prediction and error message


class StreamClient:
    def __init__(self, device: Device, options: ClientOptions, listener: Listener | None = None) -> None:
        self.device, self.options, self.listener = device, options, listener
        self.stats = StreamStats(device.label, options.url)
        self.buffer = ResendBuffer(device.rate_hz or 1.0, options.buffer_samples)
        self.backoff = Backoff()
        self._data = asyncio.Event()  # the buffer got rows
        self._room = asyncio.Event()  # the buffer let rows go (a replay waits for this when it is full)
        self._device_done = asyncio.Event()
        self._next_t = 0.0  # timeline for devices that give no times
        self._limits: dict[str, Any] = dict(DEFAULT_LIMITS)
        self._last_message = 0.0
        self._streaming = False  # between ready and the end of a session

    async def run(self, stop: asyncio.Event) -> StreamStats:
        """Stream until ``stop`` is set or the device ends (and its last predictions arrived)."""
        self.buffer.rate_hz = self.device.rate_hz
        producer = asyncio.create_task(self._produce(), name="device")
        try:
            while not stop.is_set() and not _failed(producer):
                if await self._until_stopped(self._one_session(stop, producer), stop):
                    break
                await self._wait_before_retry(stop)
            if _failed(producer):
                raise producer.exception()  # type: ignore[misc]
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer
            self.sync()
            self.stats.state = "closed"
        return self.stats

    async def _until_stopped(self, session_coro: Any, stop: asyncio.Event) -> bool:
        """Run one session; a stop while it streams closes it cleanly, a stop before that cancels it."""
        session = asyncio.ensure_future(session_coro)
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not session.done() and not self._streaming:
            session.cancel()
        try:
            return await session
        except asyncio.CancelledError:
            if stop.is_set():
                return True
            raise

    def sync(self) -> None:
        """Copy the buffer's and the device's counters into the stats."""
        self.stats.dropped, self.stats.pending = self.buffer.dropped, self.buffer.pending
        self.stats.malformed, self.stats.last_malformed = self.device.malformed, self.device.last_malformed

    async def _produce(self) -> None:
        async for chunk in self.device.chunks():
            if chunk.t0 is None:
                chunk.t0 = self._next_t
            self._next_t = chunk.t0 + len(chunk) / self.device.rate_hz
            while not self.device.live and self.buffer.held and self.buffer.held + len(chunk) > self.buffer.max_samples:
                self._room.clear()
                await self._room.wait()
            self.buffer.put(chunk)
            self._data.set()
        self._device_done.set()
        self._data.set()

    async def _one_session(self, stop: asyncio.Event, producer: asyncio.Task[None]) -> bool:
        """One connection; True when streaming is over (stopped, or the device ended and drained)."""
        try:
            return await self._session(stop, producer)
        except InvalidStatus as err:
            status = err.response.status_code
            if status in FATAL_STATUS:
                raise StreamRefused(
                    f"the server answered {status} at {self.options.url}.", "check the URL (…/v1/stream) and --token."
                ) from None
            self._lost(f"server answered {status}")
        except ConnectionClosed as err:
            self._lost(_close_text(err))
        except RETRIED_ERRORS as err:
            self._lost(str(err) or type(err).__name__)
        return False

    def _lost(self, why: str) -> None:
        self.buffer.rewind()
        self.stats.on_lost()
        self.stats.last_disconnect, self.stats.state = why, f"disconnected ({why})"

    async def _wait_before_retry(self, stop: asyncio.Event) -> None:
        delay = self.backoff.next_delay()
        self.stats.state = f"{self.stats.state}; retry in {delay:.1f} s"
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)

    async def _session(self, stop: asyncio.Event, producer: asyncio.Task[None]) -> bool:
        headers = {"Authorization": f"Bearer {self.options.token}"} if self.options.token else None
        self.stats.state = "connecting"
        async with websockets.connect(
            self.options.url,
            additional_headers=headers,
            open_timeout=OPEN_TIMEOUT_S,
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=2**20,
        ) as ws:
            await self._hello(ws)
            self._streaming = True
            try:
                return await self._stream(ws, stop, producer)
            finally:
                self._streaming = False

    async def _stream(self, ws: Any, stop: asyncio.Event, producer: asyncio.Task[None]) -> bool:
        sender = asyncio.create_task(self._send_loop(ws), name="sender")
        receiver = asyncio.create_task(self._receive_loop(ws), name="receiver")
        stopper = asyncio.create_task(stop.wait(), name="stop")
        pending: set[asyncio.Task[Any]] = {sender, receiver, stopper, producer}
        try:
            while True:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if done != {producer} or _failed(producer):
                    break  # a device that simply ended is the sender's to drain
        finally:
            for task in (sender, receiver, stopper):
                task.cancel()
            await asyncio.gather(sender, receiver, stopper, return_exceptions=True)
        for task in done & {sender, receiver, producer}:
            if not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]
        if stopper in done or sender in done:
            if self.options.record:
                await self._stop_recording(ws)
            await ws.close(1000, "client finished")
            return True
        protocol = ws.protocol  # the server ended the session (1001 at its shutdown)
        raise ConnectionClosed(protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent)

    async def _hello(self, ws: Any) -> None:
        hello: dict[str, Any] = {
            "type": "hello",
            "rate_hz": self.device.rate_hz,
            "channels": list(self.device.channels),
        }
        if self.options.device_id:
            hello["device_id"] = self.options.device_id
        if self.options.record:
            hello["record"] = self.options.record
        await ws.send(json.dumps(hello))
        async with asyncio.timeout(READY_TIMEOUT_S):
            message = await self._answer(ws, "ready", "stream a device with the channels and rate the model needs.")
            if self.options.record:  # recording asked for and refused: streaming on would record nothing
                self.stats.on_recording(await self._answer(ws, "recording", RECORD_FIXES))
        self._limits = DEFAULT_LIMITS | (message.get("limits") or {})
        self.backoff.reset()
        self.stats.on_ready(message)

    async def _answer(self, ws: Any, kind: str, fix: str | dict[str, str]) -> dict[str, Any]:
        """The next message of ``kind``; an error message first refuses the stream."""
        while True:
            message = json.loads(await ws.recv())
            if message.get("type") == kind:
                return message
            if message.get("type") == "error":
                code = message.get("code")
                raise StreamRefused(
                    f"the server refused the stream: {code}: {message.get('detail')}",
                    fix if isinstance(fix, str) else fix.get(str(code), "see docs/protocol.md."),
                )

    async def _send_loop(self, ws: Any) -> None:
        """Frames out, at most MAX_FRAMES_PER_S; returns once the device ended and the server went quiet."""
        last_end: float | None = None  # the previous frame's end: a frame that does not follow it carries t0
        json_rows, binary_rows = self._max_rows(JSON_CHARS_PER_VALUE), self._max_rows(4)
        interval = 1.0 / min(MAX_FRAMES_PER_S, float(self._limits["rate_limit_per_s"]) / 2)
        next_at = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            self._data.clear()
            chunk = self.buffer.take(binary_rows if self.options.binary else json_rows)
            if chunk is None:
                if self._device_done.is_set():
                    return await self._quiet()
                await self._data.wait()
                continue
            follows = last_end is not None and abs(chunk.t0 - last_end) < 0.5 / self.device.rate_hz  # type: ignore[operator]
            as_json = not (self.options.binary and follows)  # binary frames carry no t0
            if as_json and len(chunk) > json_rows:
                self.buffer.unsend(self.buffer.tail(chunk, len(chunk) - json_rows))
                chunk = Chunk(chunk.values[:json_rows], chunk.t0)
            chunk.sent_at = time.monotonic()
            try:
                await ws.send(self._encode(chunk, as_json))
            except BaseException:
                self.buffer.unsend(chunk)
                raise
            self.buffer.sent(chunk)
            self._room.set()
            self.stats.on_sent(len(chunk))
            last_end, next_at = self.buffer.end(chunk), chunk.sent_at + interval

    async def _quiet(self) -> None:
        self._last_message = max(self._last_message, time.monotonic())
        while time.monotonic() - self._last_message < DRAIN_IDLE_S:
            await asyncio.sleep(DRAIN_IDLE_S / 4)

    def _max_rows(self, bytes_per_value: int) -> int:
        """Rows per frame within the server's limits (a JSON frame's size bounded before encoding)."""
        per_row = len(self.device.channels) * bytes_per_value + 4
        by_bytes = (int(self._limits["max_frame_bytes"]) - 64) // per_row
        return max(1, min(int(self._limits["max_samples_per_frame"]), by_bytes))

    def _encode(self, chunk: Chunk, as_json: bool) -> str | bytes:
        if as_json:
            return json.dumps({"samples": chunk.values.tolist(), "t0": round(float(chunk.t0), 6)})  # type: ignore[arg-type]
        return np.ascontiguousarray(chunk.values, dtype="<f4").tobytes()

    async def _receive_loop(self, ws: Any) -> None:
        async for raw in ws:
            self._on_message(json.loads(raw))

    def _on_message(self, message: dict[str, Any]) -> None:
        self._last_message = time.monotonic()
        kind = message.get("type")
        if kind == "prediction":
            self._on_prediction(message)
        elif kind == "error":
            self.stats.on_error(f"{message.get('code')}: {message.get('detail')}")
        elif kind == "recording":
            self.stats.on_recording(message)
            return
        else:
            return
        if self.listener is not None:
            self.listener(message)

    async def _stop_recording(self, ws: Any) -> None:
        """End the recording before closing: the server writes the last file and says what it wrote."""
        await ws.send(json.dumps({"type": "label", "label": None}))
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(STOP_RECORDING_TIMEOUT_S):
                while self.stats.recording is None or self.stats.recording["recording"]:
                    self._on_message(json.loads(await ws.recv()))

    def _on_prediction(self, message: dict[str, Any]) -> None:
        rate = float((self.stats.model.get("spec") or {}).get("rate_hz", self.device.rate_hz))
        chunk = self.buffer.find_sent(float(message["window_end"]) - 1.0 / rate)
        rtt_ms = (time.monotonic() - chunk.sent_at) * 1000.0 if chunk and chunk.sent_at else None
        if rtt_ms is not None:
            message["rtt_ms"] = round(rtt_ms, 2)
        self.buffer.confirm(float(message["window_start"]) + self.stats.hop_s)
        self._room.set()
        self.stats.on_prediction(message, rtt_ms)


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def _close_text(err: ConnectionClosed) -> str:
    frame = err.rcvd or err.sent
    return f"closed {frame.code} {frame.reason}".strip() if frame else "connection lost"
