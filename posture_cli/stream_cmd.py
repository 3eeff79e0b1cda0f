"""``posture stream``: stream a device's samples to the server and show its predictions live."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from features.errors import PostureError
from posture_cli import read_flags
from posture_cli.console import console, error_console, load_settings, user_errors

if TYPE_CHECKING:
    from posture_cli.stream.chunks import Device
    from posture_cli.stream.client import ClientOptions
    from posture_cli.stream.stats import StreamStats

DEFAULT_URL = "ws://127.0.0.1:8000/v1/stream"
DEFAULT_BUFFER = 30_000  # posture_cli.stream.resend.RESEND_BUFFER_SAMPLES, without importing it for --help


@user_errors
def stream(
    device: Annotated[
        str,
        typer.Option(
            "--device", "-d", help="sim[:POSTURE,...], a recording file, or a serial port (/dev/ttyUSB0, serial:PORT)."
        ),
    ],
    url: Annotated[str, typer.Option("--url", help="The server's stream endpoint.")] = DEFAULT_URL,
    token: Annotated[
        Optional[str], typer.Option("--token", envvar="POSTURE_TOKEN", help="Sent as 'Authorization: Bearer TOKEN'.")
    ] = None,
    device_id: Annotated[
        Optional[str], typer.Option("--device-id", help="Names this device in the server's log (stored pseudonymised).")
    ] = None,
    speed: Annotated[float, typer.Option("--speed", help="Replay/simulation speed-up (sim and file devices).")] = 1.0,
    loop: Annotated[bool, typer.Option("--loop", help="Replay the file again and again.")] = False,
    rate: Annotated[
        Optional[float],
        typer.Option(
            "--rate", help="Sampling rate in Hz (default: sim 50, file from its timestamps, serial estimated)."
        ),
    ] = None,
    baud: Annotated[int, typer.Option("--baud", help="Serial baud rate.")] = 115200,
    acc_units: str = read_flags.acc_units("m/s2 or g (serial and file devices)."),
    gyro_units: str = read_flags.gyro_units("rad/s or deg/s (serial and file devices)."),
    binary: Annotated[bool, typer.Option("--binary", help="Send compact binary frames (float32 rows).")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON line per prediction on stdout instead of the live view.")
    ] = False,
    duration: Annotated[
        Optional[float], typer.Option("--duration", min=0.0, help="Stop after this many seconds.")
    ] = None,
    buffer: Annotated[
        int,
        typer.Option(
            "--buffer", min=1, help="Samples kept for resending while the server is away (oldest dropped first)."
        ),
    ] = DEFAULT_BUFFER,
    mqtt_url: Annotated[
        Optional[str],
        typer.Option(
            "--mqtt",
            help="Publish as an IoT device through this MQTT broker (mqtt://HOST:1883) instead of the WebSocket; "
            "topics and credentials from POSTURE_MQTT_*.",
        ),
    ] = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Have the server record this session as labelled data for retraining (needs --label and --subject).",
        ),
    ] = False,
    label: Annotated[
        Optional[str], typer.Option("--label", help="What the wearer does while recording: one of the model's classes.")
    ] = None,
    subject: Annotated[
        Optional[str], typer.Option("--subject", help="Who wears the device while recording, e.g. alice.")
    ] = None,
) -> None:
    """Stream IMU samples live to `posture serve` and show the predictions as they come."""
    from posture_cli.stream.client import ClientOptions
    from posture_cli.stream.devices import DeviceOptions, open_device

    if mqtt_url is not None:
        from serving.mqtt.settings import broker_address

        broker_address(mqtt_url)  # one red line for a bad URL, before any I/O
        url = mqtt_url
    elif not url.startswith(("ws://", "wss://")):
        raise PostureError(
            f"--url {url} is not a WebSocket URL.", f"pass ws://HOST:PORT/v1/stream (default {DEFAULT_URL})."
        )
    recorded = _record_request(record, label, subject)
    settings = load_settings()
    # one red line for a unit typo, before any I/O
    read_options = read_flags.read_options(acc_units=acc_units, gyro_units=gyro_units, max_gap_s=settings.max_gap_s)
    source = open_device(
        device, DeviceOptions(speed=speed, loop=loop, rate_hz=rate, baud=baud, read_options=read_options)
    )
    options = ClientOptions(
        url=url, token=token, device_id=device_id, binary=binary, buffer_samples=buffer, record=recorded
    )
    stats = asyncio.run(_run(source, options, json_out, duration, mqtt=mqtt_url is not None))
    summary = stats.summary()
    if json_out:
        sys.stderr.write(json.dumps(summary) + "\n")
    else:
        from posture_cli.stream.view import summary_table

        console.print(summary_table(summary))


def _record_request(record: bool, label: str | None, subject: str | None) -> dict[str, str] | None:
    """The hello's ``record`` object; --label and --subject go with --record, and it needs both."""
    if not record:
        if label is not None or subject is not None:
            raise PostureError("--label and --subject label a recording.", "add --record to record this session.")
        return None
    if label is None or subject is None:
        raise PostureError(
            "--record needs --label and --subject.", "e.g. posture stream --record --label sitting --subject alice."
        )
    return {"label": label, "subject": subject}


async def _run(
    device: "Device", options: "ClientOptions", json_out: bool, duration: float | None, mqtt: bool = False
) -> "StreamStats":
    """Open the device, stream until Ctrl-C / SIGTERM / --duration / the end of a replay."""
    from posture_cli.stream.client import StreamClient

    if mqtt:
        from posture_cli.stream.mqtt_client import MqttStreamClient as Client
    else:
        Client = StreamClient  # type: ignore[assignment]
    from posture_cli.stream.view import json_listener, live_view

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await device.open()
        client = Client(device, options, json_listener if json_out else None)
        if duration is not None:
            loop.call_later(duration, stop.set)
        if json_out:
            return await client.run(stop)

        def synced() -> "StreamStats":
            client.sync()
            return client.stats

        with live_view(synced, console) if console.is_terminal else contextlib.nullcontext():
            if not console.is_terminal:
                error_console.print(f"streaming {device.label} to {options.url}", highlight=False)
            return await client.run(stop)
    finally:
        device.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
