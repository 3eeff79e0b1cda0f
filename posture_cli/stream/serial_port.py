"""A serial port (pyserial) that prints one IMU sample per text line, as Arduino/ESP32 sketches do.

Line format: ``ax,ay,az[,gx,gy,gz]`` with an optional leading timestamp in ms
(``millis()``); commas, semicolons, tabs or spaces separate the fields. The first two
consecutive lines with the same field count (3, 4, 6 or 7) fix the layout; anything else
(boot banners, headers, torn or garbled lines) is counted as malformed and skipped.
"""

from __future__ import annotations

import asyncio
import math
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from features.contract import ACC_CHANNELS, ALL_CHANNELS, STANDARD_GRAVITY
from pipelines.read_options import ReadOptions
from posture_cli.stream.chunks import CHUNK_ROWS, Chunk, DeviceError

# field count -> (leading timestamp?, channels)
LAYOUTS: dict[int, tuple[bool, tuple[str, ...]]] = {
    3: (False, ACC_CHANNELS),
    4: (True, ACC_CHANNELS),
    6: (False, ALL_CHANNELS),
    7: (True, ALL_CHANNELS),
}
SEPARATORS = re.compile(r"[,;\s]+")
WARMUP_SAMPLES = 50  # lines read before streaming: the layout, the unit check and the rate estimate
WARMUP_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 0.2  # how often the reader thread looks at the stop flag
MAX_LINE_BYTES = 1024  # a longer run without a newline is not a sample line

Sample = tuple[float | None, list[float]]  # (device time in s, channel values)


class LineParser:
    """Text lines -> samples in m/s^2 and rad/s; malformed lines are counted, never raised."""

    def __init__(self, acc_units: str = "m/s2", gyro_units: str = "rad/s") -> None:
        self.scale = np.array(
            [STANDARD_GRAVITY if acc_units == "g" else 1.0] * 3
            + [math.pi / 180.0 if gyro_units == "deg/s" else 1.0] * 3
        )
        self.fields: int | None = None  # the layout, once two consecutive lines agree
        self._candidate: tuple[int, list[float]] | None = None
        self.malformed = 0
        self.last_malformed = ""

    @property
    def channels(self) -> tuple[str, ...]:
        return LAYOUTS[self.fields][1] if self.fields else ()

    def feed(self, line: str) -> list[Sample]:
        """The samples this line completes: none, one, or two when it fixes the layout."""
        text = line.strip()
        if not text:
            return []
        numbers = _numbers(text)
        if numbers is None or len(numbers) not in LAYOUTS or (self.fields and len(numbers) != self.fields):
            self._reject(text)
            return []
        if self.fields is None:
            return self._settle(numbers, text)
        return [self._sample(numbers)]

    def _settle(self, numbers: list[float], text: str) -> list[Sample]:
        """Before the layout is fixed: hold one line until the next one agrees with it."""
        if self._candidate is not None and self._candidate[0] == len(numbers):
            self.fields = len(numbers)
            first = self._candidate[1]
            self._candidate = None
            return [self._sample(first), self._sample(numbers)]
        if self._candidate is not None:
            self._reject("(held line that the next one did not agree with)")
        self._candidate = (len(numbers), numbers)
        return []

    def _sample(self, numbers: list[float]) -> Sample:
        timed = LAYOUTS[len(numbers)][0]
        values = numbers[1:] if timed else numbers
        scaled = (np.asarray(values) * self.scale[: len(values)]).tolist()
        return (numbers[0] / 1000.0 if timed else None), scaled

    def _reject(self, text: str) -> None:
        self.malformed += 1
        self.last_malformed = text[:80]


def _numbers(text: str) -> list[float] | None:
    try:
        numbers = [float(field) for field in SEPARATORS.split(text) if field]
    except ValueError:
        return None
    return numbers if all(math.isfinite(n) for n in numbers) else None


def estimate_rate(device_times: list[float | None], arrivals: list[float]) -> float:
    """From the device's timestamps when it sends them, else from when lines arrived (rougher)."""
    times = device_times if device_times and device_times[0] is not None else arrivals
    span = float(times[-1]) - float(times[0])  # type: ignore[arg-type]
    if len(times) < 2 or span <= 0:
        raise DeviceError("cannot tell the serial device's sampling rate.", "pass --rate HZ.")
    rate = (len(times) - 1) / span
    return float(round(rate)) if rate >= 1.0 else rate


class SerialDevice:
    """Reads lines in a thread (pyserial blocks), hands samples to the event loop."""

    live = True

    def __init__(
        self,
        port: str,
        baud: int = 115200,
        read_options: ReadOptions = ReadOptions(),
        rate_hz: float | None = None,
    ) -> None:
        self.port, self.baud, self.read_options = port, baud, read_options
        self.label = f"serial:{port}@{baud}"
        self.parser = LineParser(read_options.acc_units, read_options.gyro_units)
        self.rate_hz = rate_hz or 0.0
        self._queue: asyncio.Queue[tuple[float, Sample] | Exception] = asyncio.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warm: list[tuple[float, Sample]] = []

    @property
    def channels(self) -> tuple[str, ...]:
        return self.parser.channels

    @property
    def malformed(self) -> int:
        return self.parser.malformed

    @property
    def last_malformed(self) -> str:
        return self.parser.last_malformed

    async def open(self) -> None:
        try:
            import serial
        except ImportError:
            raise DeviceError(
                "serial devices need pyserial, which is not installed.", "pip install pyserial."
            ) from None
        try:
            handle = serial.Serial(self.port, self.baud, timeout=READ_TIMEOUT_S)
        except (serial.SerialException, OSError, ValueError) as err:
            raise DeviceError(
                f"cannot open serial port {self.port}: {err}.",
                "check the path (ls /dev/tty*), that nothing else holds it, and --baud.",
            ) from None
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._read_lines, args=(handle, loop), name="serial-reader", daemon=True)
        self._thread.start()
        await self._warm_up()

    async def _warm_up(self) -> None:
        """Read the first samples: they fix the layout, check the units, estimate the rate."""
        deadline = time.monotonic() + WARMUP_TIMEOUT_S
        while len(self._warm) < WARMUP_SAMPLES:
            try:
                item = await asyncio.wait_for(self._queue.get(), max(0.0, deadline - time.monotonic()))
                self._warm.append(self._check(item))
            except asyncio.TimeoutError:
                if len(self._warm) >= 2:
                    break
                raise DeviceError(
                    f"no sample lines from {self.port} in {WARMUP_TIMEOUT_S:g} s ({self.malformed} malformed"
                    + (f", last: {self.last_malformed!r}" if self.last_malformed else "")
                    + ").",
                    "check --baud and that the sketch prints lines like 'ax,ay,az,gx,gy,gz'.",
                ) from None
        self._check_units(np.array([sample[1] for _, sample in self._warm]))
        if not self.rate_hz:
            self.rate_hz = estimate_rate([s[0] for _, s in self._warm], [arrived for arrived, _ in self._warm])

    def _check_units(self, values: np.ndarray) -> None:
        """The unit checks of reading a file, on the raw values: refuse what contradicts the flags."""
        import pandas as pd

        from pipelines.validation import check_declared_units

        raw = pd.DataFrame(values / self.parser.scale[: values.shape[1]], columns=list(self.channels))
        check_declared_units(raw, f"serial port {self.port}", self.read_options)

    def _read_lines(self, handle: Any, loop: asyncio.AbstractEventLoop) -> None:
        """In the reader thread: bytes -> lines -> samples -> the event loop's queue."""
        pending = b""
        try:
            while not self._stop.is_set():
                data = handle.read(max(1, handle.in_waiting))
                pending += data
                *lines, pending = pending.split(b"\n")
                if len(pending) > MAX_LINE_BYTES:
                    lines.append(pending)
                    pending = b""
                arrived = time.monotonic()
                for line in lines:
                    for sample in self.parser.feed(line.decode("ascii", errors="replace")):
                        loop.call_soon_threadsafe(self._queue.put_nowait, (arrived, sample))
        except Exception as err:  # the port went away (unplugged): the stream ends and says why
            loop.call_soon_threadsafe(self._queue.put_nowait, err)
        finally:
            handle.close()

    async def chunks(self) -> AsyncIterator[Chunk]:
        """Chunks of CHUNK_ROWS rows, or fewer when the device pauses for two chunks' time."""
        rows: list[list[float]] = [sample[1] for _, sample in self._warm]
        self._warm = []
        wait_s = 2 * CHUNK_ROWS / self.rate_hz
        while True:
            try:
                _, (_, values) = self._check(await asyncio.wait_for(self._queue.get(), wait_s))
            except asyncio.TimeoutError:
                values = None
            if values is not None:
                rows.append(values)
            if rows and (len(rows) >= CHUNK_ROWS or values is None):
                yield Chunk(np.asarray(rows, dtype=np.float32))
                rows = []

    def _check(self, item: tuple[float, Sample] | Exception) -> tuple[float, Sample]:
        if isinstance(item, Exception):
            raise DeviceError(f"serial port {self.port} failed: {item}.", "check the cable and the port.")
        return item

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * READ_TIMEOUT_S + 1.0)
