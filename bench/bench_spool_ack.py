"""What a zero SIGKILL loss window would cost: every prediction's row fsynced to the spool
before the prediction is sent, against today's in-memory queue (issue 20, item 3).

    python bench/bench_spool_ack.py [--seconds 5] [--batch-sizes 1,8,64] [--dir PATH]

Today ``PredictionStore.add_predictions`` only appends to a deque; the writer thread writes
batches every 0.25 s, so a SIGKILL loses the rows of the last interval (plus, while the
database hangs, one call timeout). Zero loss means one fsynced spool append per micro-batch
(the batcher's tick gathers the windows of all sessions) before their predictions go out:
the append's latency is added to every prediction, and every row is written twice (spool,
then database). For each batch size this prints the append's CPU per row and its latency
(p50/p99: what each prediction would wait), next to the queue's cost per row measured in
the same run. --dir picks the disk (default: a temporary folder, as the spool's data/ disk
usually is). Bounded: --seconds per case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from serving.store.prediction_store import PredictionRecord, PredictionStore
from serving.store.spool import claim_lane

CLASSES = ["lying", "running", "sitting", "standing", "walking"]


def record(seq: int) -> PredictionRecord:
    return PredictionRecord(
        time=datetime.now(UTC),
        session_id="4f0c2b7e-1d7a-4c1e-9a55-3f1f0e6d2a10",
        device_id=f"phone-{seq % 500}",
        source="ws",
        model_name="posture",
        model_version="7",
        label="walking",
        confidence=0.91,
        probabilities=dict(zip(CLASSES, [0.01, 0.02, 0.03, 0.03, 0.91])),
        window_start=float(seq),
        window_end=seq + 2.0,
        latency_ms=1.7,
    )


def queue_cost_us(folder: Path, seconds: float) -> float:
    """CPU per row of today's request path: build the row and append it to the queue."""
    store = PredictionStore(f"sqlite:///{folder / 'q.db'}", folder / "q-spool", "bench-key", batch_size=10**9)
    records = [record(i) for i in range(1000)]
    rows, cpu0, until = 0, time.process_time(), time.monotonic() + seconds
    while time.monotonic() < until:
        for rec in records:
            store.add_predictions([rec])
        rows += len(records)
        store._pending.clear()  # the bench measures the request path only, not the writer
    asyncio.run(store.close())
    return (time.process_time() - cpu0) / rows * 1e6


def append_cost(folder: Path, batch: int, seconds: float) -> tuple[float, float, float]:
    """(CPU us per row, p50 ms, p99 ms) of one fsynced spool append per ``batch`` rows."""
    store = PredictionStore(f"sqlite:///{folder / 'a.db'}", folder / "a-spool", "bench-key", batch_size=10**9)
    lane = claim_lane(folder / f"spool-{batch}")
    items = []
    for i in range(batch):
        store.add_predictions([record(i)])
        items.append(store._pending.popleft())
    latencies, rows, cpu0, until = [], 0, time.process_time(), time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.perf_counter()
        lane.append(items)
        latencies.append(time.perf_counter() - started)
        rows += batch
    cpu = (time.process_time() - cpu0) / rows * 1e6
    lane.close()
    asyncio.run(store.close())
    latencies.sort()
    return cpu, statistics.median(latencies) * 1e3, latencies[int(0.99 * (len(latencies) - 1))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch-sizes", default="1,8,64")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    print("load average at start: {:.2f} {:.2f} {:.2f} (1/5/15 min; {} cores)".format(*os.getloadavg(), os.cpu_count()))
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        queued = queue_cost_us(folder, args.seconds)
        print(f"today: queue a row (request path)           {queued:8.1f} us CPU/row")
        for batch in (int(size) for size in args.batch_sizes.split(",")):
            cpu, p50, p99 = append_cost(folder, batch, args.seconds)
            print(
                f"zero loss: fsynced append of {batch:3d} rows      {cpu:8.1f} us CPU/row ({cpu / queued:5.1f}x), "
                f"each prediction waits p50 {p50:.2f} ms, p99 {p99:.2f} ms"
            )


if __name__ == "__main__":
    main()
