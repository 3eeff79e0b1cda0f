"""paho-mqtt 2 driven by the server's asyncio loop: no network thread, reconnect with backoff.

paho does the protocol (MQTT 5, QoS 1 retries, keep-alive); the loop watches its socket
(``add_reader``/``add_writer``, the pattern of paho's own asyncio example), so a message
costs one callback in the loop that serves HTTP and WebSocket, and nothing crosses a thread.
Only the blocking TCP/TLS connect runs in a worker thread.

Socket I/O is batched (``BatchedClient``): paho reads each packet's header a byte per
``recv()`` and sends each packet with its own ``send()``, which at thousands of messages a
second was ~15% of the server's CPU (bench/mqtt_load.py under py-spy). Here reads come out
of one large ``recv()``, and what paho writes in a turn of the loop (the PUBACKs of a burst
of frames, the predictions of a batch) leaves in one ``send()``.

The broker session is persistent: clean start off, a session expiry interval and a stable
client id, so QoS 1 frames published while posture is away are queued by the broker and
delivered when it reconnects (subscriptions are renewed at each connect all the same, which
also brings the retained hellos again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from serving.logs import log_event
from serving.mqtt.settings import BrokerAddress, MqttSettings

KEEPALIVE_S = 15
BACKOFF_FIRST_S, BACKOFF_MAX_S = 0.2, 10.0
# Our QoS 1 publishes awaiting PUBACK: as many as the broker's CONNACK allows (its Receive
# Maximum; MQTT 5 says 65,535 when it names none, and a broker may disconnect a client that
# sends more). Mosquitto's default allows 20, which throttles predictions (deploy/mosquitto sets
# max_inflight_messages 0: no limit). The rest wait in paho's queue, which it walks at every
# PUBACK: with a limit of 1,000 and more waiting, that walk was ~11% of the server's CPU.
DEFAULT_RECEIVE_MAXIMUM = 65535
RECEIVE_MAXIMUM = 65535  # the broker's QoS 1 messages in flight to us
READ_BURST = 512  # packets through paho's reader per turn of the loop at most, so other work gets turns
READ_SIZE = 256 * 1024  # bytes taken from the socket at once
READS_PER_TURN = 4  # socket reads per turn of the loop at most (~400 frames of 50 samples)
WRITE_SIZE = 256 * 1024  # bytes handed to the socket at once

PUBLISH, PUBACK, QOS_1 = 0x30, 0x40, 0x02  # fixed-header bits (MQTT 5, 2.1.2)
PUBACK_HEADER = bytes((PUBACK, 2))  # a PUBACK with reason 0 and no properties: the header, then the packet id
PUBACK_SUCCESS = ReasonCode(PacketTypes.PUBACK)  # shared, read-only: what paho would make for a 2-byte PUBACK
NO_PROPERTIES = Properties(PacketTypes.PUBACK)

OnMessage = Callable[[str, bytes], None]  # (topic, payload) of a message from the broker


class BrokerConnection:
    def __init__(
        self,
        address: BrokerAddress,
        settings: MqttSettings,
        client_id: str,
        subscriptions: list[str],
        on_message: OnMessage,
        on_state: Callable[[bool], None] = lambda _: None,
    ) -> None:
        self.address, self.subscriptions, self.on_state = address, subscriptions, on_state
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._lost = asyncio.Event()
        self._paused = False
        self._unacked: set[int] = set()  # mids of our QoS 1 publishes without PUBACK yet
        self._misc: asyncio.Task[None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._write_due = False  # a write is scheduled for this turn of the loop
        self._writer: Any = None  # the socket watched for writability while the kernel's buffer is full
        client = self.client = BatchedClient(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, reconnect_on_failure=False
        )
        client.max_inflight_messages_set(DEFAULT_RECEIVE_MAXIMUM)  # until the CONNACK names the broker's
        client.max_queued_messages_set(0)  # publishes made while disconnected wait, unbounded
        if address.username:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                certfile=str(settings.cert_file) if settings.cert_file else None,
                keyfile=str(settings.key_file) if settings.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(settings.tls_insecure)
        self.on_message = on_message
        client.on_message = lambda _c, _u, message: on_message(message.topic, message.payload)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = settings.session_expiry_s
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect_async(address.host, address.port, KEEPALIVE_S, clean_start=False, properties=properties)

    # --- running ---------------------------------------------------------------------------

    def start(self) -> None:
        self._runner = self._loop.create_task(self._run(), name="mqtt-connection")

    async def _run(self) -> None:
        """Connect, and after each loss reconnect with exponential backoff (with jitter)."""
        delay = BACKOFF_FIRST_S
        while True:
            self._lost.clear()
            try:
                await self._loop.run_in_executor(None, self.client.reconnect)
            except (OSError, ssl.SSLError, mqtt.WebsocketConnectionError) as err:
                log_event("mqtt_connect_failed", logging.WARNING, broker=self._where(), error=str(err), retry_s=delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            await self._lost.wait()
            if self.connected.is_set() or delay == BACKOFF_FIRST_S:
                delay = BACKOFF_FIRST_S  # it was up: retry soon
            self.connected.clear()
            self.reconnects += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX_S)

    def pause(self) -> None:
        """Read no more from the broker: what it has not delivered stays queued in our session."""
        self._paused = True
        sock = self.client.socket()
        if sock is not None:
            self._loop.remove_reader(sock)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until the broker has acknowledged our QoS 1 publishes; False past ``timeout_s``."""
        deadline = self._loop.time() + timeout_s
        while self._unacked and self._loop.time() < deadline:
            await asyncio.sleep(0.01)
        return not self._unacked

    async def close(self) -> None:
        """Disconnect cleanly; the broker keeps our session (and queues for it) for the expiry interval."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self.connected.is_set():
            self.client.disconnect()
            self._write()
        if self._misc is not None:
            self._misc.cancel()

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 1; while disconnected paho keeps it and sends it after the reconnect."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        self._unacked.add(info.mid)

    def _where(self) -> str:
        return f"{self.address.host}:{self.address.port}"

    # --- paho callbacks (in the loop's thread, except the socket ones during a connect) -------

    def _on_connect(self, client: mqtt.Client, _u: object, flags: object, reason: object, properties: object) -> None:
        if getattr(reason, "is_failure", False):
            log_event("mqtt_refused", logging.ERROR, broker=self._where(), reason=str(reason))
            return  # the broker closes the socket: _on_disconnect retries
        # Before paho resends what is unacknowledged (it does once this returns).
        self.client.keep_to(getattr(properties, "ReceiveMaximum", DEFAULT_RECEIVE_MAXIMUM))
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        self.connected.set()
        self.on_state(True)
        log_event(
            "mqtt_connected",
            broker=self._where(),
            client_id=client._client_id.decode(),
            session_present=bool(getattr(flags, "session_present", False)),
            subscriptions=len(self.subscriptions),
            receive_maximum=self.client.max_inflight_messages,
        )

    def _on_disconnect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        if self.connected.is_set():
            log_event("mqtt_disconnected", logging.WARNING, broker=self._where(), reason=str(reason))
        self.on_state(False)
        self._lost.set()

    def _on_publish(self, _c: object, _u: object, mid: int, reason: object, _p: object) -> None:
        self._unacked.discard(mid)
        if getattr(reason, "is_failure", False):  # e.g. not authorized by the ACL
            log_event("mqtt_publish_refused", logging.WARNING, broker=self._where(), reason=str(reason))

    def _in_loop(self, callback: Callable[[], None]) -> None:
        if threading.get_ident() == self._loop_thread:
            callback()
        else:
            self._loop.call_soon_threadsafe(callback)

    def _on_socket_open(self, client: mqtt.Client, _u: object, sock: Any) -> None:
        def watch() -> None:
            if not self._paused:
                self._loop.add_reader(sock, self._readable)
            if self._misc is None or self._misc.done():
                self._misc = self._loop.create_task(self._misc_loop(), name="mqtt-misc")

        self._in_loop(watch)

    def _on_socket_close(self, client: mqtt.Client, _u: object, sock: Any) -> None:
        def unwatch() -> None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            if self._writer is sock:
                self._writer = None

        self._in_loop(unwatch)

    def _on_register_write(self, client: mqtt.Client, _u: object, sock: Any) -> None:
        """paho has packets to send: write them once this turn's callbacks have queued theirs."""
        self._in_loop(self._write_soon)

    def _write_soon(self) -> None:
        if not self._write_due:
            self._write_due = True
            self._loop.call_soon(self._write)

    def _on_unregister_write(self, client: mqtt.Client, _u: object, sock: Any) -> None:
        """Nothing to do: ``_write`` watches the socket itself while bytes wait."""

    def _write(self) -> None:
        """paho's queued packets into the buffer, the buffer into the socket; what the kernel
        cannot take yet waits for the socket to be writable."""
        self._write_due = False
        client = self.client
        client.loop_write()
        done = client.send_buffered()
        sock = client.socket()
        if not done and sock is not None and self._writer is None:
            self._writer = sock
            self._loop.add_writer(sock, self._write)
        elif done and self._writer is not None:
            self._loop.remove_writer(self._writer)
            self._writer = None

    def _readable(self) -> None:
        """Read what the socket holds (a turn's share at most), then write what that queued."""
        client = self.client
        more = client.read_burst(self.on_message, lambda: self._paused)
        if more:  # bytes left (in our buffer, or decrypted in the TLS object, where the selector cannot see them)
            self._loop.call_soon(self._readable)
        if client.has_output():  # PUBACKs of the frames read; paho may also write without asking (its CONNACK handling)
            self._write_soon()

    async def _misc_loop(self) -> None:
        """Keep-alive pings and QoS retries: paho's periodic work."""
        while self.client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            await asyncio.sleep(1.0)


class BatchedClient(mqtt.Client):
    """paho's client with batched socket I/O (paho-mqtt 2's ``_sock_recv``/``_sock_send``, the
    two calls through which it reads and writes). Used from the event loop's thread only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._io_sock: Any = None  # the socket the buffers belong to: a new connection starts them afresh
        self._in = memoryview(b"")
        self._out = bytearray()

    def keep_to(self, receive_maximum: int) -> None:
        """Have at most ``receive_maximum`` QoS 1 publishes unacknowledged (the rest wait in
        paho's queue). paho's setter refuses a connected client, but the CONNACK that names the
        broker's limit is only read once connected."""
        self._max_inflight_messages = receive_maximum

    def buffered(self) -> bool:
        """Whether bytes already read wait for paho."""
        return len(self._in) > 0 and self._sock is self._io_sock

    def has_output(self) -> bool:
        """Whether bytes wait to be sent."""
        return len(self._out) > 0 and self._sock is self._io_sock

    def _own(self) -> None:
        if self._sock is not self._io_sock:
            self._io_sock, self._in, self._out = self._sock, memoryview(b""), bytearray()

    def _sock_recv(self, bufsize: int) -> bytes:
        self._own()
        if not self._in:
            data = super()._sock_recv(READ_SIZE)  # b"" at the end of the stream: paho sees the connection lost
            if len(data) <= bufsize:
                return data
            self._in = memoryview(data)
        chunk, self._in = self._in[:bufsize], self._in[bufsize:]
        return bytes(chunk)

    def _sock_send(self, buf: bytes | bytearray) -> int:
        """Taken whole into the buffer; ``send_buffered`` writes it."""
        self._own()
        self._out += buf
        return len(buf)

    def read_burst(self, on_message: OnMessage, paused: Callable[[], bool]) -> bool:
        """Read the socket until it has nothing more, ``paused()`` or a turn's share is read,
        handing each message to ``on_message``; True when bytes are left for another turn.
        The two packets every frame brings (a device's QoS 1 PUBLISH, the broker's PUBACK of a
        prediction) are read here straight from the buffer; the rest, and a packet split
        across reads, go through paho's reader one at a time."""
        self._own()
        fills = packets = 0
        while self._sock is not None and not paused() and fills < READS_PER_TURN and packets < READ_BURST:
            if self._in_packet["command"] == 0 and not self._in:  # paho between packets, nothing buffered
                try:
                    data = super()._sock_recv(READ_SIZE)
                except BlockingIOError:
                    return False
                except OSError:
                    data = b""
                if not data:  # closed or failing: paho's own read sees it and disconnects
                    self._read_one()
                    return False
                self._in, fills = memoryview(data), fills + 1
            if self._in_packet["command"] == 0:
                self._take_frames(on_message)
                if not self._in:
                    continue
            packets += 1
            if not self._read_one():
                return False
        return self.buffered() or (isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0)

    def _read_one(self) -> bool:
        """One packet through paho's reader, as ``loop_read`` reads it; False when it must wait
        for more bytes, or the connection is gone. What paho queued in answer (a PUBACK) goes
        into the send buffer now, ahead of the PUBACKs of the frames read after it: QoS 1
        acknowledgements leave in the order their PUBLISHes came."""
        rc = self._packet_read()
        if rc > 0:
            self._loop_rc_handle(rc)
        elif self._out_packet:
            self._packet_write()
        return rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _take_frames(self, on_message: OnMessage) -> None:
        """The complete QoS 1 PUBLISHes without properties and 2-byte PUBACKs at the head of the
        buffer, without paho's per-packet objects (a ``Properties`` for each, a ``ReasonCode`` per
        PUBACK, an ``MQTTMessage`` and its topic matching: ~100 us a frame, about half the bridge's
        CPU). Stops at the first other packet, or an incomplete one, for paho."""
        data, pos, acks = self._in, 0, bytearray()
        end_of_data = len(data)
        v5 = self._protocol == mqtt.MQTTv5
        while pos + 2 <= end_of_data:
            first, length, shift, at = data[pos], 0, 0, pos + 1
            while at < end_of_data and shift <= 21:  # the remaining length: 1 to 4 bytes, 7 bits each
                byte = data[at]
                length |= (byte & 0x7F) << shift
                at += 1
                if not byte & 0x80:
                    break
                shift += 7
            else:
                break  # incomplete (or malformed: paho reports it)
            end = at + length
            if end > end_of_data:
                break
            kind = first & 0xF0
            if kind == PUBLISH and first & 0x06 == QOS_1 and v5 and length > 2:
                size = (data[at] << 8) | data[at + 1]
                properties = at + 4 + size
                if properties >= end or data[properties] != 0:  # properties (MQTT 5 user properties): paho's
                    break
                acks += PUBACK_HEADER
                acks += data[at + 2 + size : properties]  # the packet id
                try:
                    on_message(str(data[at + 2 : at + 2 + size], "utf-8"), bytes(data[properties + 1 : end]))
                except Exception as err:  # a bug (or a topic that is not UTF-8) costs this message, never the reader
                    log_event("mqtt_message_failed", logging.ERROR, error=repr(err))
            elif kind == PUBACK and length == 2:  # MQTT 5 leaves out reason 0 (success) and empty properties
                self._acknowledged((data[at] << 8) | data[at + 1])
            else:
                break
            pos = end
        if pos:
            self._in = data[pos:]
            self._out += acks
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()  # paho's keep-alive reads it

    def _acknowledged(self, mid: int) -> None:
        with self._out_message_mutex:
            if mid in self._out_messages:
                self._do_on_publish(mid, PUBACK_SUCCESS, NO_PROPERTIES)

    def _packet_handle(self) -> mqtt.MQTTErrorCode:
        """A 2-byte PUBACK read by paho's reader (one split across reads) skips its decoding too."""
        packet = self._in_packet["packet"]
        if self._in_packet["command"] & 0xF0 == PUBACK and len(packet) == 2:
            self._acknowledged(int.from_bytes(packet, "big"))
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        handled: mqtt.MQTTErrorCode = super()._packet_handle()
        return handled

    def _send_publish(
        self,
        mid: int,
        topic: bytes,
        payload: bytes | bytearray = b"",
        qos: int = 0,
        retain: bool = False,
        dup: bool = False,
        info: mqtt.MQTTMessageInfo | None = None,
        properties: Properties | None = None,
    ) -> mqtt.MQTTErrorCode:
        """A QoS 1 PUBLISH without properties (a prediction) goes straight into the write buffer,
        rather than through paho's packet queue (a dict, a deque and a write call per packet);
        paho keeps the message for its PUBACK and resends it after a reconnect all the same.
        Anything else, or while paho's queue holds packets it must send first, is paho's."""
        if (
            qos != 1
            or properties is not None
            or self._protocol != mqtt.MQTTv5
            or self._sock is None
            or self._out_packet
        ):
            sent: mqtt.MQTTErrorCode = super()._send_publish(mid, topic, payload, qos, retain, dup, info, properties)
            return sent
        self._own()
        out = self._out
        out.append(PUBLISH | QOS_1 | (0x08 if dup else 0) | (0x01 if retain else 0))
        remaining = 2 + len(topic) + 2 + 1 + len(payload)  # topic, packet id, property length 0, payload
        while remaining > 0x7F:  # the remaining length: 7 bits a byte, low first
            out.append(remaining & 0x7F | 0x80)
            remaining >>= 7
        out.append(remaining)
        out += len(topic).to_bytes(2, "big")
        out += topic
        out += mid.to_bytes(2, "big")
        out.append(0)
        out += payload
        self._call_socket_register_write()
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def _update_inflight(self) -> mqtt.MQTTErrorCode:
        """paho runs this at every PUBACK, and it walks every message in flight to find one
        queued for a free slot: O(in flight) per acknowledgement. Only our QoS 1 publishes are
        in ``_out_messages``, so none waits when they all count as in flight."""
        if len(self._out_messages) <= self._inflight_messages:
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        result: mqtt.MQTTErrorCode = super()._update_inflight()
        return result

    def send_buffered(self) -> bool:
        """Write the buffer; False while the kernel cannot take all of it."""
        self._own()
        out, sock = self._out, self._sock
        while out and sock is not None:
            try:
                sent = sock.send(out if len(out) <= WRITE_SIZE else out[:WRITE_SIZE])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return False
            except OSError:
                out.clear()  # the connection is gone: reading reports it, and paho resends unacknowledged publishes
                break
            del out[:sent]
        return True
