"""``posture serve``: the HTTP + WebSocket inference server."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from features.errors import PostureError
from posture_cli.console import error_console, load_settings, user_errors

if TYPE_CHECKING:
    from serving.settings import ServerSettings


@user_errors
def serve(
    host: Annotated[Optional[str], typer.Option("--host", help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="TCP port (default 8000).")] = None,
    model_ref: Annotated[
        Optional[str],
        typer.Option("--model", "-m", help="Model URI, version or alias (default: the champion, followed on reload)."),
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option("--workers", min=1, help="Worker processes sharing the port.")
    ] = None,
    log_file: Annotated[
        Optional[Path], typer.Option("--log-file", help="Also write JSON-lines logs here (rotated).")
    ] = None,
    no_migrate: Annotated[
        bool,
        typer.Option(
            "--no-migrate", help="Refuse to start when the database schema is behind, instead of upgrading it."
        ),
    ] = False,
    ssl_certfile: Annotated[Optional[Path], typer.Option("--ssl-certfile", help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Optional[Path], typer.Option("--ssl-keyfile", help="TLS private key (PEM).")] = None,
    mqtt_url: Annotated[
        Optional[str],
        typer.Option(
            "--mqtt",
            help="Also serve IoT devices through this MQTT broker: mqtt://HOST:1883 or mqtts://HOST:8883 "
            "(POSTURE_MQTT_URL; topics and partitions: POSTURE_MQTT_*).",
        ),
    ] = None,
) -> None:
    """Serve the model over HTTP (/v1/predict) and WebSocket (/v1/stream), logging every prediction."""
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise PostureError("--ssl-certfile and --ssl-keyfile go together.", "pass both, or neither.")
    overrides = {
        "host": host,
        "port": port,
        "workers": workers,
        "log_file": log_file,
        "auto_migrate": False if no_migrate else None,
    }
    settings = load_settings(**overrides)
    mqtt_note = _mqtt_preflight(mqtt_url, settings.workers)
    _preflight(settings, model_ref)

    from serving import server

    server.export_to_workers(overrides, model_ref)
    scheme = "https" if ssl_certfile else "http"
    ws_scheme = "wss" if ssl_certfile else "ws"
    error_console.print(
        f"serving on {scheme}://{settings.host}:{settings.port}  "
        f"(stream: {ws_scheme}://{settings.host}:{settings.port}/v1/stream, API docs: /docs)",
        highlight=False,
    )
    if mqtt_note:
        error_console.print(mqtt_note, highlight=False, markup=False)
    server.run(settings, ssl_certfile, ssl_keyfile)


def _mqtt_preflight(url: str | None, workers: int) -> str | None:
    """Check the broker settings now (one red line), and hand --mqtt to the server's process."""
    import os

    from serving.mqtt.plan import describe_plan

    if url is not None:
        os.environ["POSTURE_MQTT_URL"] = url
    return describe_plan(workers)


def _preflight(settings: "ServerSettings", model_ref: str | None) -> None:
    """Unknown model, a database that refuses us or a schema we may not migrate: one red line
    now, not a traceback later. An unreachable database is no reason not to serve: the server
    spools until it answers (docs/deployment.md)."""
    from pipelines.registry import connect, describe_uri, resolve_model_uri
    from serving.store.startup import check_schema

    describe_uri(connect(settings), resolve_model_uri(model_ref, settings))
    assert settings.database_url is not None
    if unreachable := check_schema(settings.database_url, settings.auto_migrate):
        error_console.print(
            f"prediction store unreachable ({unreachable}): serving anyway; rows spool until it answers",
            style="yellow",
            markup=False,
            highlight=False,
        )
