"""The lane: the frames of devices in an open session, many devices' at a time, one prediction call.

A device's first frames open its session on the device's own task (``DeviceStream``: the hello
wait, the ready publish). From then on its frames come here: whatever arrived since the lane
last ran is one burst. Each frame is cut by its device's session (``DirectSession.cut``: the
checks, the windowing, the stream context), the windows of the whole burst are predicted in
one call, on the lane's own turn of the event loop (``MicroBatcher.predict_now``: the lane has
batched them already), and each session then delivers its own (logs, smooths, publishes). So
a frame costs no task, lock wait, future or event-loop turn of its own. Bursts grow with load:
the longer a burst takes, the more frames the next one finds. With rate limits shared through
Redis the devices of a burst are cut side by side (a task each), so that their checks go to
Redis in one call.

A device's frames stay in order: bursts are served one at a time, in arrival order, and a
frame the lane does not cut (a new hello or a restarted device clock ends the session; the
session ended) goes to the device's own task only after the lane has delivered the device's
earlier frames.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from prometheus_client import Histogram

from serving.batcher import BatcherClosed
from serving.logs import log_event
from serving.mqtt.device import AGAIN, GO_ON, RESTART_REASON, DeviceStream
from serving.stream.direct import DirectSession
from serving.stream.events import SessionClosed
from serving.stream.protocol import CLOSE_GOING_AWAY
from serving.stream.services import Predictor
from serving.stream.session import Cut

Frame = tuple[DeviceStream, bytes, bool]  # (device, payload, binary)
# A burst's frames at most: its windows are featurized while the event loop waits, so a lane
# that has fallen behind still lets the loop read and answer others every ~256 frames.
BURST_FRAMES = 256


class FrameLane:
    def __init__(self, predictor: Predictor, burst_frames: Histogram, hold_s: float, side_by_side: bool) -> None:
        self.predictor = predictor
        # Cut the devices' frames side by side (a task per device in the burst) rather than one
        # after another: for rate limits shared through Redis, whose checks of one event-loop
        # turn go to Redis in one call, but only when checks are made side by side.
        self.side_by_side = side_by_side
        self.burst_frames = burst_frames  # frames cut per burst: how much the lane batches
        self.hold_s = hold_s
        self._waiting: list[Frame] = []
        self._first_waiting_at = 0.0  # when the oldest waiting frame came
        self._last_burst_at = float("-inf")  # when the last burst ended
        self._wake = asyncio.Event()
        self._serving = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mqtt-lane")

    async def stop(self) -> None:
        """End the lane's task (the bridge stops reading and waits for the lane to go idle first)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def idle(self) -> bool:
        return not self._waiting and not self._serving

    def add(self, device: DeviceStream, payload: bytes, binary: bool) -> None:
        device.lane_frames += 1  # until the lane is done with the frame: the device's next ones follow it here
        if not self._waiting:
            self._first_waiting_at = time.perf_counter()
        self._waiting.append((device, payload, binary))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await self._hold()
                burst, self._waiting = self._waiting[:BURST_FRAMES], self._waiting[BURST_FRAMES:]
                if self._waiting:
                    self._first_waiting_at = time.perf_counter()
                self._serving = True
                try:
                    frames_cut = await Burst(self.predictor, self.side_by_side).serve(burst)
                    self.burst_frames.observe(frames_cut)
                except Exception as err:  # a bug costs this burst, never the bridge
                    log_event("mqtt_lane_failed", logging.ERROR, frames=len(burst), error=repr(err))
                finally:
                    self._serving = False
                    self._last_burst_at = time.perf_counter()
                if self._waiting:  # behind: let the loop read and answer others between bursts
                    await asyncio.sleep(0)

    async def _hold(self) -> None:
        """Under load (the last burst ended less than ``hold_s`` ago) wait until the oldest frame
        has waited ``hold_s``, or a burst is full: frames trickle in a few per socket read, and
        featurizing one window alone costs twice what it costs in a batch. A quiet lane
        serves a frame at once."""
        now = time.perf_counter()
        if now - self._last_burst_at >= self.hold_s or len(self._waiting) >= BURST_FRAMES:
            return
        wait = self._first_waiting_at + self.hold_s - now
        if wait > 0:
            await asyncio.sleep(wait)


class Burst:
    """One burst's frames through the sessions: cut, predicted together, delivered."""

    def __init__(self, predictor: Predictor, side_by_side: bool) -> None:
        self.predictor, self.side_by_side = predictor, side_by_side
        self.held: dict[DeviceStream, DirectSession] = {}  # sessions whose lock this burst holds
        self.cuts: list[tuple[DirectSession, Cut]] = []  # the windows of the frames that completed any
        self.frames_cut = 0
        self.passed_on: set[DeviceStream] = set()  # held devices whose further frames go to their own task
        self.afterwards: list[Frame] = []  # those frames, handed over once the burst is delivered
        self.restarting: list[tuple[DeviceStream, DirectSession]] = []  # sessions a frame ended

    async def serve(self, burst: list[Frame]) -> int:
        """Serve ``burst``; how many of its frames it cut (the rest went to their devices' tasks)."""
        try:
            if self.side_by_side:
                by_device: dict[DeviceStream, list[Frame]] = defaultdict(list)
                for frame in burst:
                    by_device[frame[0]].append(frame)
                await asyncio.gather(*(self._take_all(frames) for frames in by_device.values()))
            else:
                await self._take_all(burst)
            await self._predict_and_deliver()
        finally:
            for device, direct in self.held.items():
                direct.lock.release()
                device.report(direct, direct.take_events())
            for device, direct in self.restarting:
                if not direct.closed:
                    await direct.close(1000, RESTART_REASON)
            for device, _, _ in burst:
                device.lane_frames -= 1
            for device, payload, binary in self.afterwards:
                device.receive(payload, binary)
        return self.frames_cut

    async def _take_all(self, frames: list[Frame]) -> None:
        for device, payload, binary in frames:
            try:
                await self._take(device, payload, binary)
            except Exception as err:  # a bug costs the frame, not the burst
                log_event("mqtt_device_failed", logging.ERROR, error=repr(err))

    async def _take(self, device: DeviceStream, payload: bytes, binary: bool) -> None:
        direct = self.held.get(device)
        if device in self.passed_on:
            self.afterwards.append((device, payload, binary))
            return
        if direct is None:
            if not device.steady:  # no open session, or its own task feeds it: the frame joins that
                device.receive(payload, binary)
                return
            direct = device.direct
            assert direct is not None  # steady
            await direct.lock.acquire()  # free: steady
            self.held[device] = direct
        frame, restart = device.incoming(payload, binary, len(direct.session.channels))
        if restart != GO_ON:  # a new hello (taken) or a restarted clock: the session ends here
            self.passed_on.add(device)
            self.restarting.append((device, direct))
            if restart == AGAIN:  # the frame opens the next session
                self.afterwards.append((device, payload, binary))
            return
        if frame is None:  # a redelivery, or the same hello again
            return
        cut = await direct.cut(frame)
        self.frames_cut += 1
        if cut is not None:
            self.cuts.append((direct, cut))
        if direct.closed:  # a limit, or a bug: the device's next frame opens a new session
            self.passed_on.add(device)

    async def _predict_and_deliver(self) -> None:
        if not self.cuts:
            return
        try:
            results = self.predictor.predict_now([cut for _, cut in self.cuts])
        except BatcherClosed:
            results = [SessionClosed(CLOSE_GOING_AWAY, "server shutting down")] * len(self.cuts)
        for (direct, cut), result in zip(self.cuts, results):
            if isinstance(result, Exception):  # its model's call failed: the session ends, the burst goes on
                await direct.fail(result)
            else:
                await direct.deliver(cut, result)
