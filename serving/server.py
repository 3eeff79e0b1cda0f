"""Run the app under uvicorn: one process, or N workers sharing the socket."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from serving.settings import ServerSettings
from serving.app import SERVE_MODEL_ENV
from serving.logs import log_config

APP_FACTORY = "serving.app:app_from_env"
GRACEFUL_SHUTDOWN_S = 30
# The WebSocket layer admits frames up to this multiple of max_frame_bytes, so the app
# itself sees oversize frames and closes with 1009 and a reason (larger ones: 1009 too).
WS_MAX_SIZE_FACTOR = 4


def export_to_workers(overrides: dict[str, Any], model_uri: str | None) -> None:
    """Worker processes build their settings from the environment: put the flags there."""
    for key, value in overrides.items():
        if value is not None:
            os.environ[f"POSTURE_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    if model_uri:
        os.environ[SERVE_MODEL_ENV] = model_uri


def uvicorn_options(settings: ServerSettings, ssl_certfile: Path | None, ssl_keyfile: Path | None) -> dict[str, Any]:
    return {
        "factory": True,
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "lifespan": "on",
        "ws": "websockets-sansio",
        "ws_max_size": WS_MAX_SIZE_FACTOR * settings.max_frame_bytes,
        # Heartbeats: a client that does not answer a ping within the interval is dropped.
        "ws_ping_interval": settings.heartbeat_interval_s,
        "ws_ping_timeout": settings.heartbeat_interval_s,
        "log_config": log_config(settings.log_file),
        "access_log": False,  # rest_server_requests_total counts requests; logs keep events
        "proxy_headers": True,  # the client address behind nginx (trusted: forwarded_allow_ips)
        "server_header": False,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "ssl_certfile": str(ssl_certfile) if ssl_certfile else None,
        "ssl_keyfile": str(ssl_keyfile) if ssl_keyfile else None,
    }


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(settings: ServerSettings, ssl_certfile: Path | None = None, ssl_keyfile: Path | None = None) -> None:
    """Serve until SIGTERM/SIGINT; returns after the graceful shutdown (sessions closed, log flushed)."""
    import uvicorn

    # uvicorn re-raises the signal it handled once it has shut down gracefully; with these
    # handlers in place that ends the process with status 0 instead of 143 or a traceback.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    uvicorn.run(APP_FACTORY, **uvicorn_options(settings, ssl_certfile, ssl_keyfile))
