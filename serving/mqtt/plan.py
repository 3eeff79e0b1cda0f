"""What ``posture serve --mqtt`` will do, checked before the server starts (no paho import)."""

from __future__ import annotations

from features.errors import PostureError
from serving.mqtt.settings import MqttSettings, broker_address, default_client_id
from serving.mqtt.topics import TopicLayout, parse_partition_set


def describe_plan(workers: int) -> str | None:
    """One line on the bridge (None when no broker is set); a ``PostureError`` for bad settings."""
    settings = MqttSettings()  # type: ignore[call-arg]  # pydantic-settings fills the fields
    if not settings.url:
        return None
    if workers > 1:
        raise PostureError(
            "the MQTT bridge runs in one process, and --workers asks for several.",
            "serve MQTT with --workers 1 and scale out by partitions (POSTURE_MQTT_PARTITIONS, "
            "POSTURE_MQTT_PARTITION_SET: docs/protocol.md).",
        )
    address = broker_address(settings.url, settings.username, settings.password)
    served = parse_partition_set(settings.partition_set, settings.partitions)
    topics = TopicLayout(settings.prefix, settings.partitions).subscriptions(served)
    shown = ", ".join(topics[:3]) + (f" (+{len(topics) - 3} more)" if len(topics) > 3 else "")
    scheme = "mqtts" if address.tls else "mqtt"
    client_id = settings.client_id or default_client_id(settings)
    return f"MQTT: {scheme}://{address.host}:{address.port} as {client_id}, subscribing to {shown}"
