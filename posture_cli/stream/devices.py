"""Sample sources for ``posture stream``: the simulator, a replayed recording, a serial port.

A device yields ``Chunk``s of rows in the data contract's units (m/s^2, rad/s), paced at
its real rate (times ``--speed`` for the simulator and replays). ``open_device`` turns the
``--device`` argument into one.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from features.contract import ALL_CHANNELS
from pipelines.read_options import ReadOptions
from posture_cli.stream.chunks import CHUNK_ROWS, Chunk, Device, DeviceError
from posture_cli.stream.serial_port import SerialDevice

MAX_CHUNKS_PER_S = 50  # faster replays make bigger chunks instead of more of them
SIM_SECONDS_PER_POSTURE = 20.0
LOOP_GAP_S = 1.0  # between the end of a replay and its next loop: longer than any max_gap_s, so a new segment


def chunk_rows(rate_hz: float, speed: float) -> int:
    """Rows per chunk: CHUNK_ROWS at real time, more when at most MAX_CHUNKS_PER_S would not keep up."""
    return max(CHUNK_ROWS, int(np.ceil(rate_hz * speed / MAX_CHUNKS_PER_S)))


class Pacer:
    """Sleeps until sample ``n`` is due at ``rate_hz * speed``, on one absolute clock (no drift)."""

    def __init__(self, rate_hz: float, speed: float) -> None:
        self.rows_per_s = rate_hz * speed
        self._start: float | None = None

    async def wait_for(self, n_samples: int) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        delay = self._start + n_samples / self.rows_per_s - now
        if delay > 0:
            await asyncio.sleep(delay)


class SimDevice:
    """The built-in synthetic IMU cycling through ``schedule`` (pipelines.synthetic)."""

    malformed, last_malformed = 0, ""
    channels = ALL_CHANNELS
    live = True

    def __init__(
        self, schedule: Sequence[str], rate_hz: float = 50.0, speed: float = 1.0, seed: int | None = None
    ) -> None:
        from pipelines.synthetic import SimulatedIMU

        self.imu = SimulatedIMU(schedule, SIM_SECONDS_PER_POSTURE, rate_hz, seed)
        self.label = "sim:" + ",".join(schedule)
        self.rate_hz, self.speed = rate_hz, speed

    async def open(self) -> None:
        return None

    async def chunks(self) -> AsyncIterator[Chunk]:
        pacer, rows, sent = Pacer(self.rate_hz, self.speed), chunk_rows(self.rate_hz, self.speed), 0
        while True:
            await pacer.wait_for(sent)
            values, _ = self.imu.read(rows)
            yield Chunk(values.astype(np.float32), sent / self.rate_hz)
            sent += rows

    def close(self) -> None:
        return None


class FileDevice:
    """A recording replayed at its recorded rate (times ``speed``), optionally looped.

    Each recording is resampled to its own nominal rate like ``posture predict`` does, and
    split at gaps; times are seconds from the recording's first sample, so the server's
    window times are the ones ``posture predict`` reports for the file.
    """

    malformed, last_malformed = 0, ""
    live = False

    def __init__(
        self,
        path: Path,
        speed: float = 1.0,
        loop: bool = False,
        rate_hz: float | None = None,
        read_options: ReadOptions = ReadOptions(),
    ) -> None:
        self.path, self.speed, self.loop = path, speed, loop
        self.label = str(path)
        self._rate, self.read_options = rate_hz, read_options
        self.segments: list[tuple[float, np.ndarray]] = []  # (t0 from the recording's start, rows)
        self.channels: tuple[str, ...] = ()
        self.rate_hz = 0.0

    async def open(self) -> None:
        self.segments, self.channels, self.rate_hz = await asyncio.to_thread(self._load)

    def _load(self) -> tuple[list[tuple[float, np.ndarray]], tuple[str, ...], float]:
        from pipelines.readers import read_recordings, resample_recording

        recordings = read_recordings(self.path, self.read_options)
        channels = recordings[0].channels
        rate = self._rate or nominal_rate(recordings[0].frame["timestamp"].to_numpy())
        segments, offset = [], 0.0
        for recording in recordings:
            if recording.channels != channels:
                raise DeviceError(
                    f"{self.path}: recordings with different channels ({channels} and {recording.channels}).",
                    "replay them one file at a time.",
                )
            origin = float(recording.frame["timestamp"].iloc[0])
            for segment in resample_recording(recording, rate, self.read_options.max_gap_s):
                frame = segment.frame
                start = offset + float(frame["timestamp"].iloc[0]) - origin
                segments.append((start, frame[list(channels)].to_numpy(np.float32)))
            offset += recording.duration_s + 1.0 / rate + LOOP_GAP_S
        return segments, channels, rate

    async def chunks(self) -> AsyncIterator[Chunk]:
        pacer, rows, sent, lap = Pacer(self.rate_hz, self.speed), chunk_rows(self.rate_hz, self.speed), 0, 0.0
        end = self.segments[-1][0] + len(self.segments[-1][1]) / self.rate_hz + LOOP_GAP_S
        while True:
            for t0, values in self.segments:
                for i in range(0, len(values), rows):
                    await pacer.wait_for(sent)
                    part = values[i : i + rows]
                    yield Chunk(part, lap + t0 + i / self.rate_hz)
                    sent += len(part)
            if not self.loop:
                return
            lap += end

    def close(self) -> None:
        return None


def nominal_rate(t: np.ndarray) -> float:
    """1 / the median step, rounded to whole Hz (a phone's 99.8 Hz is its 100 Hz setting)."""
    step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    if step <= 0:
        raise DeviceError("cannot tell the recording's sampling rate from its timestamps.", "pass --rate HZ.")
    rate = 1.0 / step
    return float(round(rate)) if rate >= 1.0 else rate


def parse_sim(argument: str) -> list[str]:
    from pipelines.synthetic import POSTURES

    names = [p.strip() for p in argument.partition(":")[2].split(",") if p.strip()] or list(POSTURES)
    unknown = [p for p in names if p not in POSTURES]
    if unknown:
        raise DeviceError(
            f"unknown posture(s) {', '.join(unknown)} in --device {argument}.",
            f"use sim:POSTURE[,POSTURE...] with postures from {', '.join(POSTURES)}.",
        )
    return names


def is_serial_path(path: str) -> bool:
    """Anything under /dev/, or a character device (a tty or pty) elsewhere."""
    if path.startswith("/dev/"):
        return True
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


@dataclass(frozen=True)
class DeviceOptions:
    """How to pace a device, and how to read a file's or a serial port's samples (units, gaps)."""

    speed: float = 1.0
    loop: bool = False
    rate_hz: float | None = None
    baud: int = 115200
    read_options: ReadOptions = field(default_factory=ReadOptions)


def open_device(argument: str, options: DeviceOptions) -> Device:
    """``sim[:POSTURE,...]``, ``serial:PORT``, a port under /dev/, or a recording file."""
    if options.speed <= 0:
        raise DeviceError(f"--speed must be positive, got {options.speed}.", "pass e.g. --speed 10.")
    if argument == "sim" or argument.startswith("sim:"):
        return SimDevice(parse_sim(argument), options.rate_hz or 50.0, options.speed)
    port = argument.removeprefix("serial:")
    if argument.startswith("serial:") or is_serial_path(argument):
        if options.speed != 1.0 or options.loop:
            raise DeviceError(
                "--speed and --loop apply to sim and file devices, not to a serial port.", "leave them out."
            )
        return SerialDevice(port, options.baud, options.read_options, options.rate_hz)
    path = Path(argument)
    if not path.exists():
        raise DeviceError(
            f"--device {argument}: no such file, and not sim or a serial port.",
            "pass sim[:POSTURE,...], a recording file, or a serial port such as /dev/ttyUSB0.",
        )
    return FileDevice(path, options.speed, options.loop, options.rate_hz, options.read_options)
