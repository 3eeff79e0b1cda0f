"""WebSocket /v1/stream: one ``StreamSession`` per connection (protocol in docs/protocol.md).

The adapter between a socket and the transport-neutral session: text and binary frames go
in as ``Incoming`` (decoded by ``stream/protocol.py`` once the session knows its layout),
events come back as JSON text frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from serving.edge.keys import API_KEY_GRANTS, API_KEY_SCOPE
from serving.stream.events import Event
from serving.stream.messages import message_of
from serving.stream.protocol import CLOSE_GOING_AWAY, parse_binary, parse_text
from serving.stream.services import Peer
from serving.stream.session import Incoming, StreamSession

if TYPE_CHECKING:
    from serving.runtime import Runtime

GONE = (RuntimeError, WebSocketDisconnect, OSError)  # what sending to a client that left raises


class WebSocketOutlet:
    """Events as JSON text frames; after a close (or the client leaving) nothing more is sent."""

    def __init__(self, websocket: WebSocket) -> None:
        self.ws = websocket
        self._lock = asyncio.Lock()  # a close never interleaves with a send
        self._closing = False

    async def send(self, event: Event) -> None:
        async with self._lock:
            if self._closing:
                return
            try:
                await self.ws.send_text(orjson.dumps(message_of(event)).decode())
            except GONE:
                self._closing = True  # the client is gone; the receive loop sees the disconnect

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame once; the receive loop ends when the client answers."""
        async with self._lock:
            if self._closing:
                return
            self._closing = True
            try:
                await self.ws.close(code, reason[:120])
            except GONE:
                pass  # already gone


async def stream_endpoint(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    if runtime.draining:  # between the shutdown signal and the listener closing
        await websocket.close(CLOSE_GOING_AWAY, "server shutting down")
        return
    address = websocket.client.host if websocket.client else None
    peer = Peer("ws", address, websocket.scope.get(API_KEY_SCOPE), websocket.scope.get(API_KEY_GRANTS))
    session = StreamSession(runtime.session_services, WebSocketOutlet(websocket), peer)
    await websocket.accept()
    await session.run(_frames(websocket, session, runtime.settings.max_samples_per_frame))


async def _frames(websocket: WebSocket, session: StreamSession, max_samples: int) -> AsyncIterator[Incoming]:
    """The socket's frames until the client's close, which the session is told."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            session.disconnected(int(message.get("code") or 1005))
            return
        data: bytes | None = message.get("bytes")
        if data is not None:
            yield Incoming(len(data), "binary", partial(parse_binary, data, max_samples=max_samples))
        else:
            text: str = message.get("text") or ""
            yield Incoming(len(text.encode()), "json", partial(parse_text, text, max_samples=max_samples))
