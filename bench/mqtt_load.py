"""MQTT load generator for `posture serve --mqtt`: how many IoT devices one posture process holds.

    python bench/mqtt_load.py [--rows 50 --steps 1000,2500,5000,7500] [--rows 10 --steps 500,1000,2000]
                              [--binary] [--instances 2] [--step-seconds 15] [--ws-steps 1000,2000] [--keep-going]
                              [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB]

A throwaway home gets the sample dataset and a 100-tree champion (window 2 s, hop 1 s at 50 Hz:
one prediction per second per device; bench/bench_home.py, shared with ws_load.py). A Mosquitto
of the bench's own runs on a free loopback port; `posture serve --mqtt` connects to it (rate
limits off, SQLite store, or the PostgreSQL of --database-url). For each N of the ramp, N simulated devices at 50 Hz publish a
retained hello, then real sample rows as QoS 1 frames of --rows samples (JSON to
posture/<id>/imu, or with --binary float32 rows to posture/<id>/imu-f32), paced in real time
(50 rows: once a second, as IoT boards batch them; 10 rows: five times a second, as ws_load.py
sends), each device at a random phase within the second. A receiver process subscribes to
posture/+/prediction (QoS 1) and acknowledges each prediction. With --instances K, K posture
processes each serve one of K partitions (posture/<crc32(id) mod K>/<id>/..., docs/protocol.md,
"Scale-out"): the scale-out, measured on this one machine; CPU is summed over them.

The devices are simulated as gateways do it: many devices over few MQTT connections (--shards
publisher processes, one connection each), each a hand-rolled MQTT 3.1.1 client
(bench/mqtt_wire.py) that sends every frame due at once in one write. With paho-mqtt, the
generator needed ~0.4-0.5 cores for 750-1,000 devices on this 2-core machine, as much as the
server it loaded; now it needs ~0.1 core at 1,000 devices. The broker still gets one PUBLISH per device
frame with the device's own topic, and posture's side is what it is in production.

Latency: from when the frame completing a window was due (the publisher's schedule, shared
CLOCK_MONOTONIC; its send lag included) to the prediction's arrival at the receiver. The
window's index comes from the prediction's window_start (a JSON session's timeline starts at
its first frame's t0, a binary one's at 0). Every device of a step opens its session in the
step's first second; "after the opens" is the p99 of the windows that arrived from 3 s into
the step, to tell that burst from the steady load (a step holds by its whole p99).

A step holds when p99 < --p99-ms (100), every window the frames completed was predicted and
received once, every frame was acknowledged by the broker, and the predictions table (source
mqtt) gained exactly as many rows. Then the figures: server CPU per frame (its process group,
/proc), the broker's and (with --database-url) PostgreSQL's CPU, and the cores 100,000 such
devices would need at that cost. SQLite's index inserts grow with the table (~10 us of the
writer's CPU a row when empty, ~50 past 100,000 rows, all on the server's GIL): fleets this
size log to PostgreSQL, whose backends take the rows outside the server's process. With --ws-steps,
bench/ws_load.py runs after, for its 10-sample frames (--binary too), so the WebSocket figure
is measured in the same run. Everything shares this machine's cores, and the load average is
printed with every step.
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_home import bench_home  # noqa: E402
from bench_serve_http import (  # noqa: E402
    ServerProcess,
    free_port,
    group_cpu_seconds,
    load_average,
    posture_server,
    scrape,
)

RATE_HZ, WINDOW, HOP = 50.0, 100, 50
GRACE_S = 5.0  # after the last frame: how long predictions may still arrive
# Every device of a step opens its session in the step's first second; "after the opens"
# reports the windows that arrived from this many seconds in (a diagnostic: a step holds
# only when its whole p99 does).
OPENS_S = 3.0
IDLE_CLOSE_S = 4.0  # the bench's device sessions end this long after their last frame
BROKER_CONFIG = (
    "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n"
)


def windows_of(samples: int) -> int:
    return 0 if samples < WINDOW else (samples - WINDOW) // HOP + 1


# -- publishers and the receiver (separate processes) ------------------------------------------


def publisher(cfg: dict[str, Any], control: Any, results: Any) -> None:
    try:
        results.put(_publish(cfg, control, results))
    except BaseException as err:
        results.put({"kind": "failed", "error": repr(err)})


def _frames(cfg: dict[str, Any]) -> list[list[bytes]]:
    """Each recording cut into frames of ``rows`` samples: JSON text of the rows, or float32 bytes."""
    rows, data = cfg["rows"], np.load(cfg["recordings"])
    recordings = [data[k] for k in data.files]
    if cfg["binary"]:
        return [[r[i : i + rows].astype("<f4").tobytes() for i in range(0, len(r) - rows, rows)] for r in recordings]
    rounded = [np.round(r.astype(np.float64), 4) for r in recordings]
    return [[json.dumps(r[i : i + rows].tolist()).encode() for i in range(0, len(r) - rows, rows)] for r in rounded]


def _publish(cfg: dict[str, Any], control: Any, results: Any) -> dict[str, Any]:
    from mqtt_wire import PUBACK, WireClient, publish, text

    rows, period, binary = cfg["rows"], cfg["rows"] / RATE_HZ, cfg["binary"]
    rendered = _frames(cfg)
    rng = random.Random(cfg["seed"])
    client = WireClient(cfg["port"], f"bench-pub-{cfg['seed']}")
    ids = cfg["device_ids"]
    frames = [rendered[rng.randrange(len(rendered))] for _ in ids]
    offsets = [rng.randrange(len(f)) for f in frames]
    bases = [device_base(d, cfg["instances"]) for d in ids]
    topics = [text(f"{base}/{'imu-f32' if binary else 'imu'}") for base in bases]
    hello = b'{"type":"hello","rate_hz":50}'
    client.sock.sendall(b"".join(publish(text(f"{base}/hello"), client.next_mid(), hello, True) for base in bases))
    acked = 0
    while acked < len(ids):
        acked += sum(1 for first, _ in client.packets(block=True) if first == PUBACK)
    results.put({"kind": "ready"})
    start = control.get()
    cpu0 = time.process_time()  # the streaming's CPU, not the set-up's
    stop = start + cfg["seconds"]
    first_due = [start + rng.uniform(0, 1.0) for _ in ids]  # random phase within the hop
    due = [(at, i) for i, at in enumerate(first_due)]
    heapq.heapify(due)
    sent, lags = [0] * len(ids), []
    while due:
        now, burst = time.monotonic(), bytearray()
        while due and due[0][0] <= now:  # every frame due by now leaves in one write
            at, i = heapq.heappop(due)
            if at >= stop:
                continue
            lags.append(now - at)
            samples = frames[i][(offsets[i] + sent[i]) % len(frames[i])]
            body = samples if binary else b'{"samples":%s,"t0":%.6f}' % (samples, at - period)
            burst += publish(topics[i], client.next_mid(), body)
            sent[i] += 1
            heapq.heappush(due, (at + period, i))
        if burst:
            client.sock.sendall(burst)
        acked += sum(1 for first, _ in client.packets() if first == PUBACK)
        if due:
            time.sleep(max(0.0, due[0][0] - time.monotonic()))
    deadline = time.monotonic() + 30  # every frame acknowledged before the disconnect
    while acked < len(ids) + sum(sent) and time.monotonic() < deadline:
        acked += sum(1 for first, _ in client.packets(block=True) if first == PUBACK)
    client.close()
    return {
        "kind": "done",
        "frames": sum(sent),
        "unacked": len(ids) + sum(sent) - acked,
        "expected": sum(windows_of(n * rows) for n in sent),
        "first_due": dict(zip(cfg["indices"], first_due)),
        "lag_p99_ms": float(np.percentile(lags, 99)) * 1000 if lags else 0.0,
        "cpu_s": time.process_time() - cpu0,
    }


def device_base(device_id: str, instances: int) -> str:
    """The device's topic base: partitioned by crc32 when several posture instances share the devices."""
    return (
        f"posture/{zlib.crc32(device_id.encode()) % instances}/{device_id}" if instances > 1 else f"posture/{device_id}"
    )


def receiver(port: int, instances: int, control: Any, results: Any) -> None:
    """Every prediction: (device index, window_start, when received, the server's latency_ms)."""
    import queue

    import orjson
    from mqtt_wire import PUBLISH, WireClient, puback, published

    client = WireClient(port, f"bench-recv-{os.getpid()}")
    client.sock.settimeout(0.2)
    client.subscribe("posture/+/+/prediction" if instances > 1 else "posture/+/prediction")
    got: list[tuple[int, float, float, float]] = []
    results.put({"kind": "ready"})
    cpu0 = time.process_time()
    while True:
        acks = []
        for first, body in client.packets(block=True):
            if first & 0xF0 != PUBLISH:
                continue
            now = time.monotonic()
            topic, mid, message = published(body)
            prediction = orjson.loads(message)
            device = int(topic.split(b"/")[-2].rpartition(b"d")[2])
            got.append((device, prediction["window_start"], now, prediction["latency_ms"]))
            acks.append(puback(mid))
        if acks:
            client.sock.sendall(b"".join(acks))
        try:
            control.get_nowait()
            break
        except queue.Empty:
            pass
    client.close()
    results.put(
        {"kind": "received", "got": np.asarray(got, np.float64).reshape(-1, 4), "cpu_s": time.process_time() - cpu0}
    )


def latencies(got: np.ndarray, first_due: dict[int, float], rows: int, binary: bool) -> np.ndarray:
    """Seconds from when the frame completing each window was due to its prediction's arrival.

    Window k of a device ends at sample WINDOW + k * HOP, which frame j = ceil(that / rows) - 1
    brings; that frame was due at the device's first due time + j frame periods. A JSON
    session's timeline starts at the first frame's t0 (its due time - a period), a binary one's at 0."""
    period = rows / RATE_HZ
    first = np.asarray([first_due[int(d)] for d in got[:, 0]])
    origin = np.zeros_like(first) if binary else first - period
    k = np.rint((got[:, 1] - origin) / (HOP / RATE_HZ))
    j = np.ceil((WINDOW + HOP * k) / rows) - 1
    return got[:, 2] - (first + j * period)


# -- the parent ---------------------------------------------------------------------------------


def count_rows(engines: list[Any]) -> int:
    from sqlalchemy import text

    total = 0
    for engine in engines:
        with engine.connect() as conn:
            total += int(conn.execute(text("SELECT count(*) FROM predictions WHERE source = 'mqtt'")).scalar_one())
    return total


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of one process so far; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time of this machine's PostgreSQL processes (its backends write the rows)."""
    total = 0.0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/comm") as comm:
                    is_postgres = comm.read().strip() == "postgres"
            except OSError:
                continue
            if is_postgres:
                total += process_cpu_seconds(int(entry.name))
    return total


def servers_cpu(servers: list[ServerProcess]) -> float:
    return sum(group_cpu_seconds(server.process.pid) for server in servers)


def decode_errors(servers: list[ServerProcess]) -> float:
    return sum(scrape(server).get("mqtt_decode_errors_total", 0) for server in servers)


def run_step(
    n: int,
    args: argparse.Namespace,
    port: int,
    servers: list[ServerProcess],
    engines: list[Any],
    recordings: Path,
    broker_pid: int,
) -> dict:
    ctx = mp.get_context("spawn")
    results, receiver_results, receiver_control = ctx.Queue(), ctx.Queue(), ctx.Queue()
    listening = ctx.Process(
        target=receiver, args=(port, args.instances, receiver_control, receiver_results), daemon=True
    )
    listening.start()
    assert receiver_results.get(timeout=60)["kind"] == "ready"
    shards = []
    for index, part in enumerate(np.array_split(np.arange(n), args.shards)):
        control = ctx.Queue()
        cfg = {
            "port": port,
            "device_ids": [f"r{args.rows}n{n}d{i}" for i in part.tolist()],
            "indices": part.tolist(),
            "rows": args.rows,
            "binary": args.binary,
            "instances": args.instances,
            "seconds": args.step_seconds,
            "recordings": str(recordings),
            "seed": n * 100 + index,
        }
        process = ctx.Process(target=publisher, args=(cfg, control, results), daemon=True)
        process.start()
        shards.append((process, control))
    for _ in shards:
        ready = results.get(timeout=120)
        if ready["kind"] != "ready":
            raise SystemExit(f"a publisher failed: {ready}")
    rows_before, errors_before = count_rows(engines), decode_errors(servers)
    start = time.monotonic() + 1.5  # the retained hellos reach posture first
    for _, control in shards:
        control.put(start)
    time.sleep(max(0.0, start - time.monotonic()))
    cpu0, load = servers_cpu(servers), os.getloadavg()[0]
    broker0, database0 = process_cpu_seconds(broker_pid), postgres_cpu_seconds()
    time.sleep(args.step_seconds)
    server_cpu = servers_cpu(servers) - cpu0
    broker_cpu, database_cpu = process_cpu_seconds(broker_pid) - broker0, postgres_cpu_seconds() - database0
    done = [results.get(timeout=args.step_seconds + 120) for _ in shards]
    if any(d["kind"] != "done" for d in done):
        raise SystemExit(f"a publisher failed: {done}")
    time.sleep(GRACE_S)
    receiver_control.put("stop")
    got = receiver_results.get(timeout=60)
    expected, frames = sum(d["expected"] for d in done), sum(d["frames"] for d in done)
    deadline = time.monotonic() + 30
    while (rows := count_rows(engines) - rows_before) < expected and time.monotonic() < deadline:
        time.sleep(0.25)
    first_due = {i: at for d in done for i, at in d["first_due"].items()}
    windows = got["got"]
    received = len(np.unique(windows[:, :2], axis=0))
    latency_ms = latencies(windows, first_due, args.rows, args.binary) * 1000.0
    server_ms = windows[:, 3]
    step = {
        "n": n,
        "frames": frames,
        "expected": expected,
        "received": received,
        "duplicates": len(windows) - received,
        "unacked": sum(d["unacked"] for d in done),
        "rows": rows,
        "p50": float(np.percentile(latency_ms, 50)) if len(latency_ms) else float("nan"),
        "p99": _p99(latency_ms),
        "p99_after_opens": _p99(latency_ms[windows[:, 2] >= start + OPENS_S]),
        "server_p99": _p99(server_ms),
        "lag_p99": max(d["lag_p99_ms"] for d in done),
        "server_cores": server_cpu / args.step_seconds,
        "us_per_frame": server_cpu * 1e6 / max(1, frames),
        "client_cores": (sum(d["cpu_s"] for d in done) + got["cpu_s"]) / args.step_seconds,
        "broker_cores": broker_cpu / args.step_seconds,
        "database_cores": database_cpu / args.step_seconds if args.database_url else None,
        "decode_errors": decode_errors(servers) - errors_before,
        "load": load,
    }
    step["holds"] = (
        step["p99"] < args.p99_ms
        and step["received"] == expected > 0
        and rows == expected
        and not step["duplicates"]
        and not step["unacked"]
    )
    for process, _ in shards:
        process.join(10)
    listening.join(10)
    time.sleep(IDLE_CLOSE_S + 2)  # this step's device sessions end before the next step starts
    return step


def _p99(latency_ms: np.ndarray) -> float:
    return float(np.percentile(latency_ms, 99)) if len(latency_ms) else float("nan")


def print_step(step: dict[str, Any], rows: int) -> None:
    print(
        f"  {rows}-row frames, N={step['n']:6d}: p50 {step['p50']:6.1f} ms, p99 {step['p99']:7.1f} ms "
        f"(after the opens {step['p99_after_opens']:.1f} ms; "
        f"server {step['server_p99']:6.1f} ms, publisher lag p99 {step['lag_p99']:.1f} ms), "
        f"{step['received']}/{step['expected']} windows received ({step['duplicates']} twice), {step['rows']} rows, "
        f"server {step['server_cores']:.2f} cores = {step['us_per_frame']:.0f} us/frame, "
        f"load generator {step['client_cores']:.2f} cores, broker {step['broker_cores']:.2f} cores, "
        + (f"PostgreSQL {step['database_cores']:.2f} cores, " if step["database_cores"] is not None else "")
        + f"load {step['load']:.1f} "
        f"-> {'holds' if step['holds'] else 'does NOT hold'}",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50, help="Samples per frame (50: 1 frame/s; 10: 5 frames/s).")
    parser.add_argument("--steps", default="1000,2500,5000,7500,10000", help="Device counts of the ramp.")
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--shards", type=int, default=1, help="Publisher processes (one connection each: a gateway).")
    parser.add_argument("--binary", action="store_true", help="float32 rows to .../imu-f32 instead of JSON frames.")
    parser.add_argument(
        "--instances", type=int, default=1, help="posture processes, each serving one partition of the devices."
    )
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--keep-going", action="store_true")
    parser.add_argument("--ws-steps", default="", help="Also run bench/ws_load.py with these steps (10-row frames).")
    parser.add_argument("--home", type=Path, help="Reuse (or create and keep) this home.")
    parser.add_argument(
        "--database-url",
        help="Log to this database (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test), shared by the "
        "instances, instead of each instance's SQLite file; its server processes' CPU is printed per step.",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    broker = None
    servers: list[ServerProcess] = []
    with bench_home("bench-mqtt-load-", args.home) as setup:
        try:
            port = free_port()
            (setup.tmp / "mosquitto.conf").write_text(BROKER_CONFIG.format(port=port))
            mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            broker = subprocess.Popen([mosquitto, "-c", str(setup.tmp / "mosquitto.conf")])
            for index in range(args.instances):  # each serves its partition (docs/protocol.md, Scale-out)
                env = {"POSTURE_MQTT_URL": f"mqtt://127.0.0.1:{port}", "POSTURE_MQTT_IDLE_CLOSE_S": str(IDLE_CLOSE_S)}
                if args.database_url:
                    env["POSTURE_DATABASE_URL"] = args.database_url
                if args.instances > 1:
                    env |= {"POSTURE_MQTT_PARTITIONS": str(args.instances), "POSTURE_MQTT_PARTITION_SET": str(index)}
                servers.append(posture_server(setup.home, 1, setup.tmp / f"serve-{index}", env))
            for server in servers:
                server.wait_ready()
            time.sleep(2.0)  # the bridges connect and subscribe
            from serving.store.db import make_engine

            urls = (
                [args.database_url]
                if args.database_url
                else [f"sqlite:///{setup.tmp / f'serve-{i}' / 'predictions.db'}" for i in range(len(servers))]
            )
            engines = [make_engine(url) for url in urls]
            print(
                f"{'float32' if args.binary else 'JSON'} frames of {args.rows} rows, {args.shards} publisher "
                f"connection(s), {args.instances} posture instance(s), ramp {args.steps} devices, "
                f"{args.step_seconds:g} s each",
                flush=True,
            )
            steps = []
            for n in (int(x) for x in args.steps.split(",")):
                step = run_step(n, args, port, servers, engines, setup.recordings, broker.pid)
                print_step(step, args.rows)
                steps.append(step)
                if not step["holds"] and not args.keep_going:
                    break
            summarize(steps, args)
            statuses = [server.stop() for server in servers]
            print(f"posture exited {statuses} after SIGTERM; load average at end {load_average()}", flush=True)
            servers = []
            for engine in engines:
                engine.dispose()
            if args.ws_steps:
                run_ws_load(args, setup.home)
        finally:
            for server in servers:
                server.stop()
            if broker is not None:
                broker.terminate()
                broker.wait(10)


def summarize(steps: list[dict[str, Any]], args: argparse.Namespace) -> None:
    held = [s for s in steps if s["holds"]]
    best = max(held, key=lambda s: s["n"]) if held else None
    frames_per_device_s = RATE_HZ / args.rows
    for step in [best] if best else steps:
        cores = step["us_per_frame"] * frames_per_device_s * 100_000 / 1e6
        print(
            f"{'largest N held' if best else 'no step held; at'} with {args.rows}-row frames: {step['n']} devices "
            f"(p99 {step['p99']:.1f} ms, {step['received']} windows, {step['rows']} rows, load {step['load']:.1f}); "
            f"server CPU {step['us_per_frame']:.0f} us/frame -> 100,000 devices at {frames_per_device_s:g} frames/s "
            f"need ~{cores:.0f} cores of posture, partitioned over instances (the broker's own CPU not included)",
            flush=True,
        )


def run_ws_load(args: argparse.Namespace, home: Path) -> None:
    """bench/ws_load.py in the same run, for its 10-sample frames (JSON, or float32 with --binary)."""
    print(f"bench/ws_load.py --steps {args.ws_steps} (10-row frames), same machine, same run:", flush=True)
    command = [sys.executable, str(Path(__file__).parent / "ws_load.py"), "--steps", args.ws_steps]
    command += ["--step-seconds", str(args.step_seconds), "--peer-devices", "", "--home", str(home)]
    if args.keep_going:
        command.append("--keep-going")
    if args.binary:
        command.append("--binary")
    subprocess.run(command, check=False)


if __name__ == "__main__":
    main()
