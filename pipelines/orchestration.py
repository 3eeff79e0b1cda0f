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


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def launch_prefect_api(extra_env: dict[str, str], new_session: bool = False) -> subprocess.Popen[bytes]:
    """Start Prefect's API (its own ``create_app`` under uvicorn) on a free loopback port,
    point ``PREFECT_API_URL`` at it, and stop it when this process exits. Does not wait."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_FINAL": "1", **extra_env},
        stdin=subprocess.DEVNULL,
        start_new_session=new_session,
    )
    atexit.register(stop_process, process)
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    return process


def start_prefect_api() -> None:
    """Start a temporary Prefect API in the background unless a server is configured."""
    global _api_process
    quiet_offline_environment()
    # Failures reach the caller as exceptions (user errors as one red line); Prefect's own
    # log of them would repeat each with a traceback.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")
    if _api_process is not None or os.environ.get("PREFECT_API_URL"):
        return
    _api_process = launch_prefect_api({"PREFECT__SERVER_EPHEMERAL": "1"})


def wait_for_api(process: subprocess.Popen[bytes] | None, timeout_s: float = 120.0) -> None:
    """Block until the API ``process`` serves ``PREFECT_API_URL`` (no-op for an external server)."""
    if process is None:
        return
    import httpx

    url = os.environ["PREFECT_API_URL"] + "/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PostureError(
                f"The local Prefect API exited with code {process.returncode}.",
                "set PREFECT_API_URL to a running `prefect server start`, or check PREFECT_HOME is writable.",
            )
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise PostureError(f"The local Prefect API did not start in {timeout_s:.0f} s.", "set PREFECT_API_URL.")


def run_flow(flow: Callable[..., T], **parameters: Any) -> T:
    """Call a flow with heartbeats off: they cost ~1 s per sync run for nothing in a CLI."""
    start_prefect_api()
    wait_for_api(_api_process)
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return flow(**parameters)
