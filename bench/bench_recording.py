"""What recording a session costs the serving hot path, against the same sessions unrecorded.

    python bench/bench_recording.py [--sessions 50] [--seconds 60] [--repeats 3] [--home DIR]

The real session core in this process (``StreamSession``: windower, micro-batcher, the
served 100-tree champion on ONNX Runtime, the prediction log into a store that counts rows),
no transport: ``--sessions`` sessions fed round-robin with frames of 10 samples at 50 Hz
(``--seconds`` of the sample recordings each), timed per frame. Three ways, interleaved
``--repeats`` times, in the same run:

* off: no session asks to record (the peer: the hot path as every server runs it);
* on: every session records (the timeline on the model's grid, buffering, and Parquet parts
  of ``POSTURE_RECORDING_MAX_SAMPLES`` (30,000) samples written to a temporary folder, with
  their manifest lines, as the server writes them);
* on, parts of 1,000 samples (20 s): parts written on the way, the cost of a write spread
  over the frames.

Prints the median per-frame wall time and process CPU of each and the ratios to off, and
the CPU it takes to end a session (the last part written, fsync included).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

FRAME_ROWS = 10
RATE_HZ = 50.0


class CountingStore:
    """The store's two writing calls, counted (the bench measures the session, not a database)."""

    def __init__(self) -> None:
        self.rows = 0

    def add_predictions(self, records: list) -> None:  # type: ignore[type-arg]
        self.rows += len(records)

    def add_connection(self, record: object) -> None:
        pass


class NullOutlet:
    async def send(self, event: object) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass


@dataclass(frozen=True)
class Result:
    frames: int
    wall_us: float  # per frame, the frames (parts that fill up written on the way)
    cpu_us: float
    files: int
    end_ms: float  # process CPU per session to end it (its last part written)


async def run_once(served, samples: list[np.ndarray], sessions: int, record_max: int | None, folder: Path) -> Result:
    from serving.batcher import MicroBatcher
    from serving.edge.ratelimit import TokenBucketLimiter
    from serving.edge.session_states import LocalSessionStore
    from serving.metrics import ServerMetrics
    from serving.prediction_log import PredictionLog
    from serving.recording.recorder import Recorder
    from serving.settings import ServerSettings
    from serving.store.model_stats import ServedStats
    from serving.stream.protocol import Hello, Samples
    from serving.stream.registry import SessionRegistry
    from serving.stream.services import Peer, SessionServices
    from serving.stream.session import Incoming, StreamSession
    from serving.stream.work_limits import WorkLimits

    class Fixed:
        current = served

    settings, metrics, store = ServerSettings(), ServerMetrics(), CountingStore()
    batcher = MicroBatcher(metrics, 0.004, 256)
    batcher.start()
    limiter = TokenBucketLimiter(0.0, 1.0)
    recorder = Recorder(record_max is not None, folder, record_max or 1, "bench", settings.max_gap_s)
    services = SessionServices(
        models=Fixed(),
        predictor=batcher,
        predictions=PredictionLog(store, ServedStats(), metrics),  # type: ignore[arg-type]
        connections=store,
        states=LocalSessionStore(),
        registry=SessionRegistry(),
        metrics=metrics,
        limiter=limiter,
        key_limiter=limiter,
        limits=WorkLimits.of(settings),
        max_frame_bytes=settings.max_frame_bytes,
        max_gap_s=settings.max_gap_s,
        ready_limits={},
        recorder=recorder,
    )
    opened = []
    for i in range(sessions):
        session = StreamSession(services, NullOutlet(), Peer("ws", None))
        session.open()
        record = {"label": served.classes[0], "subject": f"bench{i}"} if record_max is not None else None
        hello = Hello(f"dev-{i}", RATE_HZ, ("ax", "ay", "az", "gx", "gy", "gz"), None, record)
        await session.receive(Incoming(0, "json", lambda _c, h=hello: h))
        opened.append(session)
    frames = [
        [Samples(data[j : j + FRAME_ROWS], j / RATE_HZ) for j in range(0, len(data) - FRAME_ROWS + 1, FRAME_ROWS)]
        for data in samples[:sessions]
    ]
    total = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(min(len(f) for f in frames)):
        # every session's frame k at once, as devices streaming in step send them
        await asyncio.gather(*(s.receive(Incoming(0, "json", lambda _c, f=f[k]: f)) for s, f in zip(opened, frames)))
        total += len(opened)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ending = time.process_time()
    for session in opened:  # the last parts are written as the sessions end
        await session.close(1000)
        await session.finish()
    ending = time.process_time() - ending
    await batcher.close()
    files = len(list(folder.rglob("*.parquet")))
    return Result(total, wall / total * 1e6, cpu / total * 1e6, files, ending / len(opened) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--home", type=Path, default=None, help="A home with a champion to reuse (else a new one).")
    args = parser.parse_args()

    from bench_home import bench_home

    import pyarrow.parquet  # noqa: F401  # imported once here, not inside the first measured write

    from pipelines.settings import Settings
    from serving.model_holder import load_served

    with bench_home("posture-bench-recording-", args.home) as bench:
        served = load_served("models:/posture@champion", Settings(home=bench.home))
        recordings = list(np.load(bench.recordings).values())
        rows = int(args.seconds * RATE_HZ)
        joined = np.concatenate(recordings)
        samples = [np.roll(joined, -i * 997, axis=0)[:rows] for i in range(args.sessions)]
        ways = {"off": None, "on": 30000, "on, 1,000-sample parts": 1000}
        results: dict[str, list[Result]] = {name: [] for name in ways}
        for repeat in range(args.repeats):
            for name, record_max in ways.items():
                folder = bench.tmp / f"incoming-{repeat}-{len(results[name])}-{record_max}"
                results[name].append(asyncio.run(run_once(served, samples, args.sessions, record_max, folder)))
                shutil.rmtree(folder, ignore_errors=True)
        base_wall = statistics.median(r.wall_us for r in results["off"])
        base_cpu = statistics.median(r.cpu_us for r in results["off"])
        print(f"\n{args.sessions} sessions x {args.seconds:g} s, frames of {FRAME_ROWS} samples at {RATE_HZ:g} Hz")
        print(
            f"{'recording':<24} {'frames':>7} {'files':>6} {'wall us/frame':>14} {'cpu us/frame':>13} "
            f"{'ratio':>6} {'end ms/session':>15}"
        )
        for name, runs in results.items():
            wall, cpu = statistics.median(r.wall_us for r in runs), statistics.median(r.cpu_us for r in runs)
            end = statistics.median(r.end_ms for r in runs)
            print(
                f"{name:<24} {runs[0].frames:>7} {runs[0].files:>6} {wall:>14.1f} {cpu:>13.1f} "
                f"{cpu / base_cpu:>6.3f} {end:>15.2f}"
            )
        print(f"(ratios of process CPU per frame to off; off's wall time per frame: {base_wall:.1f} us)")


if __name__ == "__main__":
    main()
