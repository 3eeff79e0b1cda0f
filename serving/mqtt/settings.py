"""``MqttSettings``: the bridge's ``POSTURE_MQTT_*`` settings, and the broker address of a URL.

Kept apart from the server's settings: ``posture stream --mqtt`` reads the same ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.errors import PostureError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class MqttSettings(BaseSettings):
    """The broker, the topics and the broker session of this instance (docs/protocol.md)."""

    model_config = SettingsConfigDict(env_prefix="POSTURE_MQTT_", extra="ignore")

    url: str | None = Field(None, description="mqtt://HOST:1883 or mqtts://HOST:8883; the bridge is off without.")
    username: str | None = Field(None, description="Broker user (or user:password@ in the URL).")
    password: str | None = Field(None, description="Broker password (or in the URL).")
    prefix: str = Field("posture", description="First level of every topic.")
    partitions: int = Field(0, ge=0, le=4096, description="0: <prefix>/<device>/imu; N: <prefix>/<p>/<device>/imu.")
    partition_set: str | None = Field(None, description="Partitions this instance serves, e.g. 0-3,6 (default all).")
    client_id: str | None = Field(None, description="Stable client id, the broker session's name (default derived).")
    session_expiry_s: int = Field(3600, ge=0, description="How long the broker queues frames while we are away.")
    idle_close_s: float = Field(300.0, gt=0, description="A device session without a frame this long ends.")
    hello_wait_s: float = Field(1.0, ge=0, description="Frames wait this long for a device's retained hello.")
    lane_hold_ms: float = Field(
        4.0, ge=0, description="Under load, frames wait this long for other devices' to be predicted with (ms)."
    )
    ca_file: Path | None = Field(None, description="mqtts: CA bundle (default: the system's).")
    cert_file: Path | None = Field(None, description="mqtts: client certificate (PEM), with key_file.")
    key_file: Path | None = Field(None, description="mqtts: the client certificate's private key (PEM).")
    tls_insecure: bool = Field(False, description="mqtts: skip the broker host-name check (tests only).")


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def broker_address(url: str, username: str | None = None, password: str | None = None) -> BrokerAddress:
    """mqtt://[user[:password]@]host[:port] (mqtts:// for TLS); settings' user and password win."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise PostureError(f"{url!r} is not a broker URL.", "pass mqtt://HOST:1883 or mqtts://HOST:8883.")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise PostureError(f"{url!r} has a bad port.", "pass mqtt://HOST:PORT with a port of 1-65535.") from None
    return BrokerAddress(
        parts.hostname,
        port,
        parts.scheme == "mqtts",
        username or (unquote(parts.username) if parts.username else None),
        password or (unquote(parts.password) if parts.password else None),
    )


def default_client_id(settings: MqttSettings) -> str:
    """posture-<prefix>[-n<N>-p<partition set>]: stable across restarts, so the broker session
    (and the frames it queued while we were away) is found again."""
    name = f"posture-{settings.prefix}"
    if settings.partitions:
        name += f"-n{settings.partitions}-p{settings.partition_set or 'all'}"
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)
