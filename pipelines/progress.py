"""Stage reports from flows to whoever renders them (the CLI's rich progress).

A context variable, not a flow parameter: Prefect parameters must serialise, a callback does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

StageListener = Callable[[str, str], None]  # (stage, detail)

_listener: ContextVar[StageListener | None] = ContextVar("posture_stage_listener", default=None)


def report(stage: str, detail: str = "") -> None:
    listener = _listener.get()
    if listener is not None:
        listener(stage, detail)


@contextmanager
def listening(listener: StageListener) -> Iterator[None]:
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
