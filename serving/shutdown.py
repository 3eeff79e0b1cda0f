"""Close stream sessions with 1001 (going away) when the server is told to stop.

uvicorn answers SIGTERM/SIGINT by closing every WebSocket with 1012 (service restart) and
only then runs the lifespan shutdown, too late to say goodbye. So while uvicorn serves,
its signal handlers are wrapped: the first signal drains the sessions (bounded), then
hands the signal on to uvicorn, whose graceful shutdown and our lifespan flush follow.
A second signal goes straight to uvicorn (its force-quit).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from serving.logs import log_event

DRAIN_TIMEOUT_S = 5.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_drain_on_signals(drain: Callable[[], Awaitable[None]]) -> bool:
    """Wrap uvicorn's handlers for SIGINT/SIGTERM; False when uvicorn does not own them here."""
    if threading.current_thread() is not threading.main_thread():
        return False
    loop = asyncio.get_running_loop()
    handlers = {sig: signal.getsignal(sig) for sig in SIGNALS}
    if not all(_is_uvicorn_handler(h) for h in handlers.values()):
        return False
    signalled: list[int] = []
    tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def start_drain(forward: Any, sig: int) -> None:
        task = loop.create_task(_drain_then_forward(drain, forward, sig))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_signal(sig: int, frame: FrameType | None) -> None:
        forward = handlers[signal.Signals(sig)]
        if signalled:
            forward(sig, frame)
            return
        signalled.append(sig)
        loop.call_soon_threadsafe(start_drain, forward, sig)

    for sig in SIGNALS:
        signal.signal(sig, on_signal)
    return True


async def _drain_then_forward(drain: Callable[[], Awaitable[None]], forward: Any, sig: int) -> None:
    try:
        await asyncio.wait_for(drain(), DRAIN_TIMEOUT_S)
    except Exception as err:  # shut down anyway; uvicorn closes what is left
        log_event("drain_failed", logging.WARNING, error=repr(err))
    forward(sig, None)


def _is_uvicorn_handler(handler: Any) -> bool:
    owner = getattr(handler, "__self__", None)
    return owner is not None and type(owner).__module__.startswith("uvicorn")
