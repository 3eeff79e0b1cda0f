"""The load generator's MQTT client: MQTT 3.1.1 (what ESP32 libraries such as PubSubClient speak)
over one blocking socket, packets built and parsed in bulk.

paho-mqtt costs ~100-500 us of Python per QoS 1 message on each side (its network thread,
a packet dict, a byte-per-``recv`` header read, a ``send`` per packet); a publisher of 5,000
devices built on it needed as much CPU as the server it loads, on the same two cores. Here a
burst of frames is one ``sendall`` and a burst of PUBACKs one ``recv``: the broker sees the
same packets (CONNECT, SUBSCRIBE, PUBLISH QoS 1 with packet ids, PUBACK), posture's side is
unchanged. Only what the bench uses is here: no TLS, no retries, keep-alive off.
"""

from __future__ import annotations

import select
import socket
import struct
from collections.abc import Iterator

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, DISCONNECT = 0x10, 0x20, 0x30, 0x40, 0x82, 0x90, 0xE0
QOS1, RETAIN = 0x02, 0x01


def _length(n: int) -> bytes:
    """MQTT's variable-length integer."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def text(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(raw)) + raw


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _length(len(body)) + body


def publish(topic: bytes, mid: int, payload: bytes, retain: bool = False) -> bytes:
    """PUBLISH, QoS 1 (``topic`` already length-prefixed with ``_text``)."""
    return packet(PUBLISH | QOS1 | (RETAIN if retain else 0), topic + struct.pack("!H", mid) + payload)


class WireClient:
    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()
        self._mid = 0
        body = text("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0) + text(client_id)  # clean session, no keep-alive
        self.sock.sendall(packet(CONNECT, body))
        first, payload = next(self.packets(block=True))
        if first & 0xF0 != CONNACK or payload[1] != 0:
            raise RuntimeError(f"the broker refused the bench's connection: {first:#x} {payload!r}")

    def next_mid(self) -> int:
        self._mid = self._mid % 65535 + 1
        return self._mid

    def subscribe(self, topic: str) -> None:
        self.sock.sendall(packet(SUBSCRIBE, struct.pack("!H", self.next_mid()) + text(topic) + bytes([1])))
        for first, _ in self.packets(block=True):
            if first & 0xF0 == SUBACK:
                return

    def packets(self, block: bool = False) -> Iterator[tuple[int, bytes]]:
        """The whole packets received so far (one ``recv`` first; ``block`` waits up to the socket's
        timeout for bytes)."""
        data = b""
        if block or select.select([self.sock], [], [], 0)[0]:
            try:
                data = self.sock.recv(1 << 20)  # waits up to the socket's timeout
            except TimeoutError:
                pass
            else:
                if not data:
                    raise ConnectionError("the broker closed the bench's connection")
        buffer = self._buffer
        buffer += data
        pos = 0
        try:
            while pos + 2 <= len(buffer):
                length, shift, at = 0, 0, pos + 1
                while True:
                    if at >= len(buffer):
                        return
                    byte = buffer[at]
                    length |= (byte & 0x7F) << shift
                    shift, at = shift + 7, at + 1
                    if not byte & 0x80:
                        break
                if at + length > len(buffer):
                    return
                first, body = buffer[pos], bytes(buffer[at : at + length])
                pos = at + length
                yield first, body
        finally:
            del buffer[:pos]

    def close(self) -> None:
        try:
            self.sock.sendall(packet(DISCONNECT, b""))
        finally:
            self.sock.close()


def puback(mid: bytes) -> bytes:
    return bytes([PUBACK, 2]) + mid


def published(payload: bytes) -> tuple[bytes, bytes, bytes]:
    """(topic, packet id, message) of a QoS 1 PUBLISH packet's body."""
    size = struct.unpack_from("!H", payload)[0]
    return bytes(payload[2 : 2 + size]), bytes(payload[2 + size : 4 + size]), payload[4 + size :]
