"""Running Prefect flows from the CLI: offline, quiet, and with the API's start hidden.

With no ``PREFECT_API_URL`` Prefect would start a temporary API server itself when the
first flow runs, after importing the whole server stack into this process as well. We
start the same temporary server (Prefect's own ``create_app`` under uvicorn) as a
subprocess the moment a command begins, so its start overlaps the command's imports and
set-up, and this process never imports the server. With ``PREFECT_API_URL`` set (a running
``prefect server start``) nothing is started and a flow run costs ~0.1 s.
"""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from features.errors import PostureError
from pipelines.settings import quiet_offline_environment

T = TypeVar("T")

_api_process: subprocess.Popen[bytes] | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop_api() -> None:
    if _api_process is not None and _api_process.poll() is None:
        _api_process.terminate()
        try:
            _api_process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _api_process.kill()


def start_prefect_api() -> None:
    """Start a temporary Prefect API in the background unless a server is configured."""
    global _api_process
    quiet_offline_environment()
    # Failures reach the caller as exceptions (user errors as one red line); Prefect's own
    # log of them would repeat each with a traceback.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    if _api_process is not None or os.environ.get("PREFECT_API_URL"):
        return
    port = _free_port()
    _api_process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"],
        env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"},
        stdin=subprocess.DEVNULL,
    )
    atexit.register(_stop_api)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"


def _wait_for_api(timeout_s: float = 120.0) -> None:
    if _api_process is None:
        return
    import httpx

    url = os.environ["PREFECT_API_URL"] + "/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _api_process.poll() is not None:
            raise PostureError(
                f"The temporary Prefect API exited with code {_api_process.returncode}.",
                "set PREFECT_API_URL to a running `prefect server start`, or check PREFECT_HOME is writable.",
            )
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise PostureError(f"The temporary Prefect API did not start in {timeout_s:.0f} s.", "set PREFECT_API_URL.")


def run_flow(flow: Callable[..., T], **parameters: Any) -> T:
    """Call a flow with heartbeats off: they cost ~1 s per sync run for nothing in a CLI."""
    start_prefect_api()
    _wait_for_api()
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return flow(**parameters)
