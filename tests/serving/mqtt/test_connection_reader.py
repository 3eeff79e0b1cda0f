"""The bridge's own MQTT reader (``BatchedClient.read_burst``) on raw packets through a socket
pair: frames read straight from the buffer and frames read by paho arrive in order, their
PUBACKs leave in that order, and a packet split across reads is read whole."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from serving.mqtt.connection import BatchedClient


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish(topic: str, mid: int, payload: bytes, properties: bytes = b"\x00") -> bytes:
    """A QoS 1 PUBLISH (MQTT 5); ``properties`` with their length byte."""
    body = len(topic).to_bytes(2, "big") + topic.encode() + mid.to_bytes(2, "big") + properties + payload
    return bytes([0x32]) + varint(len(body)) + body


USER_PROPERTY = b"\x07\x26\x00\x01k\x00\x01v"  # length 7: user property k=v (paho decodes this one)


@pytest.fixture
def reader() -> Iterator[tuple[BatchedClient, socket.socket]]:
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    client = BatchedClient(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5)
    client.on_socket_register_write = lambda *_: None  # as in the server: writes wait for the loop's turn
    client._sock = ours
    messages: list[tuple[str, bytes]] = []
    client.on_message = lambda _c, _u, m: messages.append((m.topic, m.payload))
    client.messages = messages  # type: ignore[attr-defined]
    yield client, broker
    ours.close()
    broker.close()


def acks(client: BatchedClient) -> list[int]:
    out = bytes(client._out)
    assert len(out) % 4 == 0 and all(out[i : i + 2] == b"\x40\x02" for i in range(0, len(out), 4)), out
    return [int.from_bytes(out[i + 2 : i + 4], "big") for i in range(0, len(out), 4)]


def test_frames_and_their_pubacks_keep_their_order_whoever_reads_them(
    reader: tuple[BatchedClient, socket.socket],
) -> None:
    client, broker = reader
    got: list[tuple[str, bytes]] = []
    packets = [
        publish("posture/a/imu", 1, b"one"),
        publish("posture/b/imu", 2, b"two", USER_PROPERTY),  # properties: paho's reader
        publish("posture/a/imu", 3, b"three"),
        publish("posture/c/hello", 4, b"x" * 300),  # a two-byte remaining length
    ]
    broker.sendall(b"".join(packets))
    more = client.read_burst(lambda topic, payload: got.append((topic, payload)), lambda: False)
    paho_read = client.messages  # type: ignore[attr-defined]
    assert not more
    assert got == [("posture/a/imu", b"one"), ("posture/a/imu", b"three"), ("posture/c/hello", b"x" * 300)]
    assert paho_read == [("posture/b/imu", b"two")]
    assert acks(client) == [1, 2, 3, 4]


def test_a_packet_split_across_reads_is_read_whole(reader: tuple[BatchedClient, socket.socket]) -> None:
    client, broker = reader
    got: list[tuple[str, bytes]] = []
    packet = publish("posture/a/imu", 9, b'{"samples":[[1,2,3,4,5,6]]}')
    broker.sendall(publish("posture/a/imu", 8, b"first") + packet[:10])
    client.read_burst(lambda topic, payload: got.append((topic, payload)), lambda: False)
    assert got == [("posture/a/imu", b"first")]
    broker.sendall(packet[10:])
    client.read_burst(lambda topic, payload: got.append((topic, payload)), lambda: False)
    assert got + client.messages == [  # type: ignore[attr-defined]
        ("posture/a/imu", b"first"),
        ("posture/a/imu", b'{"samples":[[1,2,3,4,5,6]]}'),
    ]
    assert acks(client) == [8, 9]


def test_a_failing_handler_costs_its_message_not_the_reader(reader: tuple[BatchedClient, socket.socket]) -> None:
    client, broker = reader
    got: list[bytes] = []

    def handler(_topic: str, payload: bytes) -> None:
        if payload == b"bad":
            raise RuntimeError("a bug")
        got.append(payload)

    broker.sendall(publish("t/a", 1, b"ok") + publish("t/a", 2, b"bad") + publish("t/a", 3, b"later"))
    client.read_burst(handler, lambda: False)
    assert got == [b"ok", b"later"]
    assert acks(client) == [1, 2, 3]
