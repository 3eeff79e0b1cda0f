"""Structured server logs: one JSON object per line, to stderr and optionally a rotating file.

Events carry context (session id, model version, error) but never raw sensor payloads.
uvicorn's own loggers go through the same formatter, so the whole stream parses as JSON.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

LOGGER_NAME = "posture.serve"
LOG_FILE_BYTES = 20 * 1024 * 1024
LOG_FILE_BACKUPS = 5
UVICORN_INVALID_UTF8 = "Invalid UTF-8 sequence received from client."  # uvicorn's websockets-sansio message


class JsonLinesFormatter(logging.Formatter):
    """``{"time", "level", "logger", "event", ...fields}``; exceptions as one escaped string."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.getMessage(),
        }
        payload.update(getattr(record, "fields", {}))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with its fields, e.g. ``log_event("session_opened", session_id=...)``."""
    get_logger().log(level, event, extra={"event": event, "fields": fields})


class ClientFaultFilter(logging.Filter):
    """uvicorn logs a text frame that is not UTF-8 as an ERROR with a traceback, then closes the
    connection with 1007 as RFC 6455 requires. It is the client's fault, and any client could
    repeat it to flood the log: it becomes one warning line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == UVICORN_INVALID_UTF8:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = record.exc_text = None
            record.__dict__.update(event="frame_not_utf8", fields={"close_code": 1007})  # as log_event's extra
        return True


class BackgroundHandler(logging.handlers.QueueHandler):
    """Formats a record where it is logged and hands the line to a thread that writes it.

    A write releases the GIL, and while the store's writer thread is busy the event loop
    then waits for it to come back, line after line: 2,000 sessions closing at once
    stalled the loop for ~100 ms. Lines still queued are written when logging shuts down.
    """

    def __init__(self, log_file: str | None = None) -> None:
        super().__init__(queue.SimpleQueue())
        self.setFormatter(JsonLinesFormatter())
        line = logging.Formatter("%(message)s")  # the record's message is the finished JSON line by then
        targets: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
        if log_file is not None:
            Path(log_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
            targets.append(
                logging.handlers.RotatingFileHandler(
                    Path(log_file).expanduser(),
                    maxBytes=LOG_FILE_BYTES,
                    backupCount=LOG_FILE_BACKUPS,
                    encoding="utf-8",
                )
            )
        for target in targets:
            target.setFormatter(line)
        self._listener: logging.handlers.QueueListener | None = logging.handlers.QueueListener(self.queue, *targets)
        self._listener.start()

    def close(self) -> None:
        if self._listener is not None:  # close may be called more than once
            self._listener.stop()  # writes what is queued
            for target in self._listener.handlers:
                target.close()
            self._listener = None
        super().close()


def log_config(log_file: Path | None = None, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict (what uvicorn's ``log_config`` takes) for our
    logger and uvicorn's: JSON lines to stderr, and to ``log_file`` rotated at 20 MiB,
    written by a background thread (``BackgroundHandler``)."""
    handler = {"()": f"{__name__}.BackgroundHandler", "log_file": str(log_file) if log_file is not None else None}
    logger = {"handlers": ["json"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"json": handler},
        "filters": {"client_faults": {"()": f"{__name__}.ClientFaultFilter"}},
        "loggers": {
            LOGGER_NAME: logger,
            "uvicorn": dict(logger),
            # uvicorn logs every WebSocket accept at INFO: thousands of devices would drown the events.
            "uvicorn.error": {"level": "WARNING", "propagate": True, "filters": ["client_faults"]},
            "uvicorn.access": {"handlers": ["json"], "level": "WARNING", "propagate": False},
        },
    }
