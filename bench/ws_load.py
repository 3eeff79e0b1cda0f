"""WebSocket load generator for `posture serve`: how many live devices one machine holds.

    python bench/ws_load.py [--steps 100,250,500,1000,1500,2000,2500] [--step-seconds 20] [--workers 1]

A throwaway home gets the sample dataset and a 100-tree champion (window 2 s, hop 1 s at
50 Hz: one prediction per second per device); `posture serve` runs on loopback with rate
limits off and its embedded SQLite store (or --database-url). For each N of the ramp, N
simulated devices in --shards separate client processes (asyncio + websockets) each:
open /v1/stream, send a hello (device id, 50 Hz) and wait for `ready` (all devices are
connected before streaming starts), then send real sample rows (from the sample
recordings) in JSON frames of 10 samples, paced in real time (a frame every 200 ms, each
device starting at a random phase within the 1 s hop, so windows complete evenly over
each second), for --step-seconds; then wait up to 5 s for the outstanding predictions and,
once every device of every shard has them, close (1000). (Devices closing one by one as
they finished used to put ~2,000 closes into the last second of a step, which delayed the
last windows of the devices still waiting: at 2,000 devices the server's own p99 was
11-37 ms in every second of streaming and 222 ms in that last one.) Measured per step:

* latency, client side: from just before the client sends the frame that completes a
  window to the moment its client task has that window's prediction (matched by
  window_start). It includes both directions of loopback and the client's own
  event-loop delays (send lag, below, shows how far the clients fall behind).
* latency, server side: the prediction's `latency_ms` (the completing frame's arrival
  at the server to the prediction being ready).
* predictions received vs expected (windows completed by the frames sent); late ones
  count as missing.
* no row lost: the predictions table's row count before and after the step (after the
  store has flushed) against the predictions the clients received, and (one worker) the
  server's own `model_predictions` counter and `prediction_log_rows_dropped`.
* where the server's CPU goes: its CPU per frame (all its processes, from /proc), the
  clients' CPU, and (one worker) the micro-batches' size and featurizing time.

A step "holds" when client-side p99 < --p99-ms (100), every expected prediction arrived
and no row was lost; the ramp stops after the first step that does not hold (unless
--keep-going). Then a peer gets the same clients: a bare uvicorn + Starlette WebSocket
app (json.loads per frame, a prediction-shaped reply per window, nothing else), at the
last step's N and at 2,000 devices: the floor the framework itself sets on this machine.
Clients and server share this machine's cores (and other jobs may run): the tables give
the CPU each used and the load average. Bounded: at most the steps given, each about
--step-seconds + 10 s; everything is stopped at the end. About 2-5 minutes on 2 cores
(up to 2 of them setting up the home; --home reuses one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_home import bench_home  # noqa: E402
from bench_serve_http import (  # noqa: E402
    ServerProcess,
    bench_env,
    free_port,
    group_cpu_seconds,
    load_average,
    posture_server,
    scrape,
)

RATE_HZ = 50.0
FRAME_ROWS = 10
FRAME_PERIOD_S = FRAME_ROWS / RATE_HZ
WINDOW, HOP = 100, 50  # the sample model's spec (checked against /v1/models)
# Each device starts at a random phase within one hop, so window completions (one per
# device per hop) spread evenly over the second, as devices that connect at random do.
HOP_S = HOP / RATE_HZ
CONNECTS_IN_FLIGHT = 64  # per shard: concurrent WebSocket handshakes while connecting
CONNECT_TIMEOUT_S = 120.0
GRACE_S = 5.0  # after streaming: how long a device waits for its outstanding predictions
FLUSH_TIMEOUT_S = 30.0


# -- the client shards (separate processes) ------------------------------------------------


@dataclass
class Device:
    id: str
    frames: list[Any]
    offset: int
    phase: float
    sent_at: dict[int, float]  # window index -> when its completing frame was sent
    latencies: list[float]
    server_ms: list[float]
    lags: list[float]
    frames_sent: int = 0
    received: int = 0
    unmatched: int = 0
    errors: int = 0
    close_code: int | None = None


def build_frames(path: Path, binary: bool) -> list[list[Any]]:
    """Every recording as a list of ready-to-send frames of FRAME_ROWS rows."""
    data = np.load(path)
    out = []
    for key in data.files:
        values = data[key]
        usable = len(values) - len(values) % FRAME_ROWS
        if binary:
            out.append([values[i : i + FRAME_ROWS].astype("<f4").tobytes() for i in range(0, usable, FRAME_ROWS)])
        else:
            rounded = np.round(values.astype(np.float64), 4)
            out.append(
                [json.dumps({"samples": rounded[i : i + FRAME_ROWS].tolist()}) for i in range(0, usable, FRAME_ROWS)]
            )
    return out


async def _connect(url: str, device: Device, deflate: bool) -> Any:
    from websockets.asyncio.client import connect

    ws = await connect(
        url,
        compression="deflate" if deflate else None,
        max_size=None,
        ping_interval=None,
        open_timeout=CONNECT_TIMEOUT_S,
        close_timeout=5,
    )
    await ws.send(json.dumps({"type": "hello", "device_id": device.id, "rate_hz": RATE_HZ}))
    ready = json.loads(await ws.recv())
    if ready.get("type") != "ready":
        raise RuntimeError(f"expected ready, got {ready}")
    return ws


async def _receive(ws: Any, device: Device, expected: asyncio.Event) -> None:
    async for message in ws:
        now = time.monotonic()
        data = json.loads(message)
        kind = data.get("type")
        if kind == "prediction":
            sent = device.sent_at.pop(round(data["window_start"] * RATE_HZ / HOP), None)
            if sent is None:
                device.unmatched += 1
                continue
            device.received += 1
            device.latencies.append(now - sent)
            device.server_ms.append(float(data["latency_ms"]))
            if expected.is_set() and not device.sent_at:
                return
        elif kind == "error":
            device.errors += 1


async def _stream(ws: Any, device: Device, start: float, stop: float) -> None:
    loop = asyncio.get_running_loop()
    samples, k = 0, 0
    while (due := start + device.phase + k * FRAME_PERIOD_S) < stop:
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic()
        device.lags.append(now - due)
        samples += FRAME_ROWS
        if samples >= WINDOW and (samples - WINDOW) % HOP == 0:
            device.sent_at[(samples - WINDOW) // HOP] = now
        await ws.send(device.frames[(device.offset + k) % len(device.frames)])
        k += 1
        device.frames_sent = k


async def _run_device(ws: Any, device: Device, start: float, stop: float) -> None:
    """Stream, then wait for the predictions still due; the connection stays open."""
    done_sending = asyncio.Event()
    reader = asyncio.create_task(_receive(ws, device, done_sending))
    try:
        await _stream(ws, device, start, stop)
        done_sending.set()
        if device.sent_at:
            await asyncio.wait_for(asyncio.shield(reader), max(0.1, stop + GRACE_S - time.monotonic()))
    except (asyncio.TimeoutError, Exception):  # missing predictions are counted from sent_at
        pass
    finally:
        reader.cancel()


async def _close(ws: Any, device: Device) -> None:
    try:
        await ws.close()
        device.close_code = ws.close_code
    except Exception:
        pass


async def _shard(cfg: dict[str, Any], control: Any, results: Any) -> dict[str, Any]:
    rng = random.Random(cfg["seed"])
    recordings = build_frames(Path(cfg["recordings"]), cfg["binary"])
    devices = []
    for i in cfg["device_ids"]:
        frames = recordings[rng.randrange(len(recordings))]
        devices.append(Device(f"bench-{i}", frames, rng.randrange(len(frames)), rng.uniform(0, HOP_S), {}, [], [], []))
    gate = asyncio.Semaphore(CONNECTS_IN_FLIGHT)

    async def connect_one(device: Device) -> Any:
        async with gate:
            try:
                return await _connect(cfg["url"], device, cfg["deflate"])
            except Exception as err:  # counted: a device that could not connect
                return err

    connected_at = time.monotonic()
    sockets = await asyncio.gather(*(connect_one(d) for d in devices))
    failures = [s for s in sockets if isinstance(s, BaseException)]
    results.put(
        {
            "kind": "connected",
            "failures": len(failures),
            "seconds": time.monotonic() - connected_at,
            "first_error": repr(failures[0]) if failures else None,
        }
    )
    start = await asyncio.get_running_loop().run_in_executor(None, control.get)
    stop = start + cfg["seconds"]
    cpu0 = time.process_time()
    live = [(ws, d) for ws, d in zip(sockets, devices) if not isinstance(ws, BaseException)]
    await asyncio.gather(*(_run_device(ws, d, start, stop) for ws, d in live))
    # Close only once every shard has its predictions: the step measures streaming, and
    # thousands of closes at once would delay the other devices' last windows.
    results.put({"kind": "streamed"})
    await asyncio.get_running_loop().run_in_executor(None, control.get)
    await asyncio.gather(*(_close(ws, d) for ws, d in live))
    cpu = time.process_time() - cpu0
    return {
        "kind": "done",
        "devices": len(devices),
        "connect_failures": len(failures),
        "frames": sum(d.frames_sent for d in devices),
        "expected": sum(d.received + len(d.sent_at) for d in devices),
        "received": sum(d.received for d in devices),
        "unmatched": sum(d.unmatched for d in devices),
        "errors": sum(d.errors for d in devices),
        "bad_closes": sum(1 for _, d in live if d.close_code not in (1000, None)),
        "latencies": np.concatenate([d.latencies for d in devices] + [[]]).astype(np.float32),
        "server_ms": np.concatenate([d.server_ms for d in devices] + [[]]).astype(np.float32),
        "lags": np.concatenate([d.lags for d in devices] + [[]]).astype(np.float32),
        "cpu_s": cpu,
        "wall_s": time.monotonic() - start,
    }


def shard_main(cfg: dict[str, Any], control: Any, results: Any) -> None:
    try:
        results.put(asyncio.run(_shard(cfg, control, results)))
    except BaseException as err:  # the parent reports it instead of waiting forever
        results.put({"kind": "failed", "error": repr(err)})


# -- the parent: server, ramp, accounting ---------------------------------------------------


def count_rows(engine: Any) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM predictions WHERE source = 'ws'")).scalar_one())


def wait_flushed(engine: Any, before: int, expected: int) -> int:
    """Rows added since ``before`` once ``expected`` are there (or FLUSH_TIMEOUT_S passed)."""
    started = time.monotonic()
    rows = count_rows(engine) - before
    while rows < expected and time.monotonic() - started < FLUSH_TIMEOUT_S:
        time.sleep(0.25)
        rows = count_rows(engine) - before
    time.sleep(0.5)  # rows beyond those expected (duplicates) would show up too
    return count_rows(engine) - before


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def run_clients(n: int, args: argparse.Namespace, server: ServerProcess, recordings: Path) -> dict[str, Any]:
    """N devices in --shards processes against ``server``: connect all, stream, collect."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    shards = []
    for index, part in enumerate(np.array_split(np.arange(n), args.shards)):
        control = ctx.Queue()
        cfg = {
            "url": f"ws://127.0.0.1:{server.port}/v1/stream",
            "device_ids": part.tolist(),
            "seconds": args.step_seconds,
            "binary": args.binary,
            "deflate": args.deflate,
            "recordings": str(recordings),
            "seed": n * 100 + index,
        }
        process = ctx.Process(target=shard_main, args=(cfg, control, results), daemon=True)
        process.start()
        shards.append((process, control))
    connected = [results.get(timeout=CONNECT_TIMEOUT_S + 60) for _ in shards]
    failed = [c for c in connected if c["kind"] == "failed"]
    if failed:
        raise SystemExit(f"a client shard failed while connecting: {failed[0]['error']}")
    start = time.monotonic() + 0.5
    for _, control in shards:
        control.put(start)
    time.sleep(max(0.0, start - time.monotonic()))
    cpu0, load = group_cpu_seconds(server.process.pid), os.getloadavg()[0]
    time.sleep(args.step_seconds)
    server_cpu_s = group_cpu_seconds(server.process.pid) - cpu0
    streamed = [results.get(timeout=args.step_seconds + GRACE_S + 60) for _ in shards]
    failed = [d for d in streamed if d["kind"] != "streamed"]
    if failed:
        raise SystemExit(f"a client shard failed: {failed[0]}")
    for _, control in shards:
        control.put("close")
    done = [results.get(timeout=60) for _ in shards]
    for process, _ in shards:
        process.join(30)
    failed = [d for d in done if d["kind"] != "done"]
    if failed:
        raise SystemExit(f"a client shard failed: {failed[0]}")
    latencies = np.concatenate([d["latencies"] for d in done]) * 1000.0
    frames = sum(d["frames"] for d in done)
    return {
        "n": n,
        "connect_s": max(c["seconds"] for c in connected),
        "wall_s": time.monotonic() - start,
        "connect_failures": sum(d["connect_failures"] for d in done),
        "frames": frames,
        "expected": sum(d["expected"] for d in done),
        "received": sum(d["received"] for d in done),
        "errors": sum(d["errors"] + d["unmatched"] for d in done),
        "bad_closes": sum(d["bad_closes"] for d in done),
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "max": pct(latencies, 100),
        "server_p50": pct(np.concatenate([d["server_ms"] for d in done]), 50),
        "server_p99": pct(np.concatenate([d["server_ms"] for d in done]), 99),
        "lag_p99": pct(np.concatenate([d["lags"] for d in done]) * 1000.0, 99),
        "server_cores": server_cpu_s / args.step_seconds,
        "server_us_per_frame": server_cpu_s * 1e6 / max(1, frames),
        "client_cores": sum(d["cpu_s"] for d in done) / args.step_seconds,
        "load": load,
    }


def run_step(n: int, args: argparse.Namespace, server: ServerProcess, engine: Any, recordings: Path) -> dict[str, Any]:
    """One step against posture: the clients' figures plus rows written and the server's counters."""
    one_worker = args.workers == 1  # /metrics is per worker process
    rows_before = count_rows(engine)
    before = scrape(server) if one_worker else {}
    step = run_clients(n, args, server, recordings)
    after = scrape(server) if one_worker else {}  # every session is closed: nothing more is predicted

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    step["made"] = delta("model_predictions_total") if one_worker else None
    step["rows"] = wait_flushed(engine, rows_before, max(step["received"], int(step["made"] or 0)))
    after = scrape(server) if one_worker else {}
    step["dropped"] = after.get("prediction_log_rows_dropped_total") if one_worker else None
    batches = delta("batch_request_size_count")
    step["batch_windows"] = delta("batch_request_size_sum") / batches if batches else float("nan")
    step["featurize_ms"] = delta("request_preprocess_seconds_sum") * 1000.0 / batches if batches else float("nan")
    step["lost"] = (step["made"] if step["made"] is not None else step["received"]) - step["rows"]
    step["holds"] = (
        step["p99"] < args.p99_ms
        and step["received"] == step["expected"]
        and step["lost"] == 0
        and not step["dropped"]
        and step["connect_failures"] == 0
        and step["expected"] > 0
    )
    return step


def number(value: float, digits: int) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN: not measured (several workers)


def print_step(step: dict[str, Any]) -> None:
    made = "" if step.get("made") is None else f", server made {step['made']:.0f}"
    batching = (
        f", {step['batch_windows']:.1f} windows/batch at {step['featurize_ms']:.2f} ms featurizing"
        if step.get("batch_windows") == step.get("batch_windows") and "batch_windows" in step
        else ""
    )
    verdict = f" -> {'holds' if step['holds'] else 'does NOT hold'}" if "holds" in step else ""
    print(
        f"  N={step['n']:5d}: p99 {step['p99']:7.1f} ms (server {step['server_p99']:6.1f} ms), "
        f"{step['received']}/{step['expected']} predictions, {step.get('rows', '-')} rows{made}, "
        f"server {step['server_cores']:.2f} cores ({step['server_us_per_frame']:.0f} us/frame), "
        f"clients {step['client_cores']:.2f} cores, load {step['load']:.1f}{batching}{verdict}",
        flush=True,
    )


def report(
    steps: list[dict[str, Any]], peers: list[dict[str, Any]], args: argparse.Namespace, notes: list[str]
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=230)
    table = Table(
        title=f"/v1/stream ramp: devices at 50 Hz, {'binary' if args.binary else 'JSON'} frames of 10 samples, "
        f"{args.step_seconds:g} s per step, posture serve --workers {args.workers}"
    )
    columns = [
        "devices",
        "frames/s",
        "recv/ expected",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server p50 ms",
        "server p99 ms",
        "send lag p99 ms",
        "rows",
        "server made",
        "rows lost",
        "server cores",
        "server us/ frame",
        "client cores",
        "windows/ batch",
        "featur. ms/ batch",
        "load 1m",
        "holds",
    ]
    for column in columns:
        table.add_column(column, justify="right")
    for s in steps:
        table.add_row(
            str(s["n"]),
            f"{s['frames'] / args.step_seconds:.0f}",
            f"{s['received']}/{s['expected']}",
            f"{s['p50']:.1f}",
            f"{s['p99']:.1f}",
            f"{s['max']:.0f}",
            f"{s['server_p50']:.1f}",
            f"{s['server_p99']:.1f}",
            f"{s['lag_p99']:.1f}",
            str(s["rows"]),
            "n/a" if s["made"] is None else f"{s['made']:.0f}",
            str(int(s["lost"])),
            f"{s['server_cores']:.2f}",
            f"{s['server_us_per_frame']:.0f}",
            f"{s['client_cores']:.2f}",
            number(s["batch_windows"], 1),
            number(s["featurize_ms"], 2),
            f"{s['load']:.1f}",
            "[green]yes[/]" if s["holds"] else "[red]no[/]",
        )
    console.print(table)
    if peers:
        floor = Table(
            title="peer, same clients: bare uvicorn + Starlette WebSocket (json.loads each frame, a "
            "prediction-shaped reply per window; no features, model, store or metrics)"
        )
        for column in (
            "devices",
            "recv/ expected",
            "p50 ms",
            "p99 ms",
            "send lag p99 ms",
            "server cores",
            "server us/frame",
            "client cores",
            "load 1m",
            "posture us/frame / bare",
        ):
            floor.add_column(column, justify="right")
        for p in peers:
            mine = min(steps, key=lambda s: abs(s["n"] - p["n"]))
            floor.add_row(
                str(p["n"]),
                f"{p['received']}/{p['expected']}",
                f"{p['p50']:.1f}",
                f"{p['p99']:.1f}",
                f"{p['lag_p99']:.1f}",
                f"{p['server_cores']:.2f}",
                f"{p['server_us_per_frame']:.0f}",
                f"{p['client_cores']:.2f}",
                f"{p['load']:.1f}",
                f"{mine['server_us_per_frame'] / p['server_us_per_frame']:.1f}x (posture at N={mine['n']})",
            )
        console.print(floor)
    for note in notes:
        console.print(note, highlight=False)


def budget_note(steps: list[dict[str, Any]], peers: list[dict[str, Any]]) -> str:
    """What 2,000 devices would cost in server CPU at the per-frame costs measured."""
    frames_per_s = 2000 * RATE_HZ / FRAME_ROWS
    last = steps[-1]
    text = (
        f"CPU for 2,000 devices ({frames_per_s:,.0f} frames/s) at the costs measured: posture "
        f"{last['server_us_per_frame'] * frames_per_s / 1e6:.1f} cores (at its N={last['n']} cost per frame)"
    )
    if peers:
        floor = min(p["server_us_per_frame"] for p in peers)
        text += f", the bare framework {floor * frames_per_s / 1e6:.1f} cores"
    big = [p for p in peers if p["n"] == 2000]
    if big:
        text += f"; the clients themselves used {big[0]['client_cores']:.1f} cores at 2,000 devices"
    return text + f", all on this machine's {os.cpu_count()} cores."


def bare_app_factory() -> Any:
    """The peer: what uvicorn + Starlette's WebSocket cost for the same traffic, and nothing else."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    probabilities = {"lying": 0.1, "running": 0.1, "sitting": 0.1, "standing": 0.1, "walking": 0.6}

    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        samples = 0
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                data = json.loads(text)
                if data.get("type") == "hello":
                    await ws.send_text(json.dumps({"type": "ready"}))
                    continue
                samples += len(data["samples"])
            else:
                samples += len(message.get("bytes") or b"") // 24
            if samples >= WINDOW and (samples - WINDOW) % HOP == 0:
                start = (samples - WINDOW) / RATE_HZ
                await ws.send_text(
                    json.dumps(
                        {
                            "type": "prediction",
                            "window_start": start,
                            "window_end": start + WINDOW / RATE_HZ,
                            "label": "walking",
                            "probabilities": probabilities,
                            "smoothed_probabilities": probabilities,
                            "latency_ms": 0.0,
                        }
                    )
                )

    async def healthz(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[WebSocketRoute("/v1/stream", stream), Route("/healthz", healthz)])


def bare_server(home: Path, log_dir: Path) -> ServerProcess:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "ws_load:bare_app_factory",
        "--factory",
        "--app-dir",
        str(Path(__file__).resolve().parent),
        "--port",
        str(port),
        "--ws",
        "websockets-sansio",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return ServerProcess("bare uvicorn", command, bench_env(home), port, "/healthz", log_dir / "bare.log")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="100,250,500,1000,1500,2000,2500", help="Device counts of the ramp.")
    parser.add_argument("--step-seconds", type=float, default=20.0)
    parser.add_argument("--shards", type=int, default=2, help="Client processes the devices are spread over.")
    parser.add_argument("--workers", type=int, default=1, help="posture serve --workers.")
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--binary", action="store_true", help="Binary float32 frames instead of JSON.")
    parser.add_argument("--deflate", action="store_true", help="Negotiate permessage-deflate (browsers do).")
    parser.add_argument("--keep-going", action="store_true", help="Run every step even after one does not hold.")
    parser.add_argument(
        "--peer-devices",
        default="auto",
        help="Device counts for the bare uvicorn + Starlette peer, comma separated ('' to skip); "
        "auto: the last step's count and 2000.",
    )
    parser.add_argument("--database-url", help="Prediction store (default: SQLite in a throwaway data dir).")
    parser.add_argument("--home", type=Path, help="Reuse (or create and keep) this home instead of a temporary one.")
    return parser.parse_args()


def ramp(args: argparse.Namespace, server: ServerProcess, engine: Any, recordings: Path) -> list[dict[str, Any]]:
    steps = []
    for n in (int(x) for x in args.steps.split(",")):
        step = run_step(n, args, server, engine, recordings)
        print_step(step)
        steps.append(step)
        if not step["holds"] and not args.keep_going:
            break
    return steps


def main() -> None:
    args = parse_args()
    begun = time.perf_counter()
    servers: list[ServerProcess] = []
    with bench_home("bench-ws-load-", args.home) as setup:
        try:
            tmp, home, recordings = setup.tmp, setup.home, setup.recordings
            extra = {"POSTURE_DATABASE_URL": args.database_url} if args.database_url else {}
            server = posture_server(home, args.workers, tmp / "serve", extra)
            servers.append(server)
            server.wait_ready()
            spec = json.load(urllib.request.urlopen(f"http://127.0.0.1:{server.port}/v1/models"))["models"][0]["spec"]
            if (spec["window_samples"], spec["hop_samples"], spec["rate_hz"]) != (WINDOW, HOP, RATE_HZ):
                raise SystemExit(f"the bench assumes window {WINDOW}, hop {HOP} at {RATE_HZ} Hz; the model has {spec}")
            from serving.store.db import make_engine

            engine = make_engine(args.database_url or f"sqlite:///{tmp / 'serve' / 'predictions.db'}")
            print(
                f"posture serve --workers {args.workers} (pid {server.process.pid}) ready in {server.ready_after_s:.0f} s; "
                f"ramp {args.steps} devices, {args.step_seconds:g} s each, {args.shards} client processes",
                flush=True,
            )
            rows_at_start = count_rows(engine)
            steps = ramp(args, server, engine, recordings)
            status = server.stop()  # SIGTERM: sessions are closed, the store flushes
            final_rows = count_rows(engine) - rows_at_start
            engine.dispose()
            peers = []
            wanted = args.peer_devices.replace("auto", f"{steps[-1]['n']},2000")
            for n in sorted({int(x) for x in wanted.split(",") if x.strip()}):
                bare = bare_server(home, tmp)
                servers.append(bare)
                bare.wait_ready()
                peer = run_clients(n, args, bare, recordings)
                print("  peer (bare uvicorn + Starlette):", end="")
                print_step(peer)
                peers.append(peer)
                bare.stop()
            held = [s["n"] for s in steps if s["holds"]]
            held_server = [
                s["n"]
                for s in steps
                if s["server_p99"] < args.p99_ms and s["received"] == s["expected"] and s["lost"] == 0
            ]
            notes = [
                f"largest N held (client p99 < {args.p99_ms:g} ms, every prediction, no row lost): "
                f"{max(held) if held else 'none'}; by the server's own latency_ms: "
                f"{max(held_server) if held_server else 'none'}  (target: 2,000 devices on two cores, no row lost)",
                "p50/p99/max: from just before the client sends the frame that completes a window to the client task "
                "having that window's prediction; server p50/p99: the prediction's latency_ms (frame arrival to "
                "prediction ready). send lag: how late the clients sent frames against the 50 Hz schedule.",
                "rows: predictions-table rows (source ws) added during the step, counted after the store flushed; "
                "'server made' = /metrics model_predictions (one worker only); rows lost = made (or received) - rows.",
                f"after SIGTERM (exit {status}) the store holds {final_rows} ws rows; the steps counted "
                f"{sum(s['rows'] for s in steps)}, the clients received {sum(s['received'] for s in steps)}.",
                budget_note(steps, peers),
                f"clients ({args.shards} processes) and the server share this machine's {os.cpu_count()} cores, and other "
                f"engineers' jobs ran too: 'client cores'/'server cores' = CPU used / step time. Load average at end "
                f"{load_average()}; total bench time {time.perf_counter() - begun:.0f} s",
            ]
            report(steps, peers, args, notes)
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
