"""The topic layout of the MQTT bridge and the partition rule.

Unpartitioned (``partitions = 0``)::

    <prefix>/<device_id>/imu          device -> posture: JSON samples frames (or a hello)
    <prefix>/<device_id>/imu-f32      device -> posture: binary frames (little-endian float32 rows)
    <prefix>/<device_id>/hello        device -> posture, retained: the stream's hello (JSON)
    <prefix>/<device_id>/prediction   posture -> device, QoS 1: one per window
    <prefix>/<device_id>/error        posture -> device, QoS 1: a refused frame
    <prefix>/<device_id>/ready        posture -> device, QoS 1: a session started (its id, the model)
    <prefix>/<device_id>/recording    posture -> device, QoS 1: a recording started, changed, stopped or wrote a file

Partitioned (``partitions = N``): ``<prefix>/<p>/<device_id>/...`` with
``p = crc32(device_id as UTF-8) mod N`` (zlib's crc32: the same number on an ESP32, in
Python, Go or C; Python's ``hash`` is salted per process). Each instance serves a fixed set
of partitions with plain subscriptions, so one consumer holds all of a device's frames, in
order. (A shared subscription of two instances to one partition would spread its messages
per message, splitting a device's windows between them.)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from features.errors import PostureError

KINDS = ("imu", "imu-f32", "hello")  # what devices publish: JSON frames, binary float32 frames, the hello


def partition_of(device_id: str, partitions: int) -> int:
    """The partition of a device: crc32 of its id's UTF-8 bytes, mod ``partitions``."""
    return zlib.crc32(device_id.encode("utf-8")) % partitions


def parse_partition_set(text: str | None, partitions: int) -> tuple[int, ...]:
    """``"0-3,6"`` -> (0, 1, 2, 3, 6); None or empty: every partition."""
    if not text:
        return tuple(range(partitions))
    chosen: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            chosen.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise PostureError(f"partition set {text!r} is not a list of numbers.", "pass e.g. 0-3,6.") from None
    if not chosen or min(chosen) < 0 or max(chosen) >= partitions:
        raise PostureError(
            f"partition set {text!r} is outside 0-{partitions - 1}.", f"pass partitions below {partitions}."
        )
    return tuple(sorted(chosen))


@dataclass(frozen=True)
class TopicLayout:
    prefix: str = "posture"
    partitions: int = 0  # 0: no partition level

    def base(self, device_id: str) -> str:
        if self.partitions:
            return f"{self.prefix}/{partition_of(device_id, self.partitions)}/{device_id}"
        return f"{self.prefix}/{device_id}"

    def topic(self, device_id: str, kind: str) -> str:
        return f"{self.base(device_id)}/{kind}"

    def subscriptions(self, served: tuple[int, ...]) -> list[str]:
        """What an instance serving the partitions ``served`` subscribes to (hellos included)."""
        if not self.partitions:
            return [f"{self.prefix}/+/{kind}" for kind in KINDS]
        return [f"{self.prefix}/{p}/+/{kind}" for p in served for kind in KINDS]

    def parse(self, topic: str) -> tuple[str, str, int | None] | None:
        """(device_id, kind, partition in the topic) of a device topic; None for any other."""
        if not topic.startswith(self.prefix + "/"):
            return None
        levels = topic[len(self.prefix) + 1 :].split("/")
        if len(levels) != (3 if self.partitions else 2) or levels[-1] not in KINDS or not levels[-2]:
            return None
        if not self.partitions:
            return levels[0], levels[1], None
        if not levels[0].isdigit():
            return None
        return levels[1], levels[2], int(levels[0])
