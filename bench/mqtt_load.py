"""MQTT load generator for `posture serve --mqtt`: how many IoT devices one posture process holds.

    python bench/mqtt_load.py [--rows 50 --steps 1000,2500,5000,7500] [--rows 10 --steps 500,1000,2000]
                              [--step-seconds 15] [--ws-steps 1000,2000]

A throwaway home gets the sample dataset and a 100-tree champion (window 2 s, hop 1 s at 50 Hz:
one prediction per second per device). A Mosquitto of the bench's own runs on a free loopback
port; `posture serve --mqtt` connects to it (rate limits off, SQLite store). For each N of the
ramp, N simulated devices at 50 Hz, spread over --shards publisher processes (paho-mqtt, one
connection each: the broker's connection handling is not what this measures), each publish a
retained hello, then real sample rows as QoS 1 JSON frames of --rows samples, paced in real
time (50 rows: once a second, as IoT boards batch them; 10 rows: five times a second, as
ws_load.py sends), each device at a random phase. A receiver process subscribes to
posture/+/prediction. Each frame's t0 is the time (CLOCK_MONOTONIC, shared by the processes)
its first sample was measured, so a window's `window_end` is when the frame completing it was
due, and latency = prediction received - window_end (any send lag of the publishers included).

A step holds when p99 < --p99-ms (100), every window the frames completed was predicted and
received once, and the predictions table (source mqtt) gained exactly as many rows. Then the
figures: server CPU per frame (its process group, /proc), and the cores 100,000 such devices
would need at that cost. With --ws-steps, bench/ws_load.py runs after, for its 10-sample frames,
so the WebSocket figure is measured in the same run. Everything shares this machine's cores.
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
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_serve_http import (  # noqa: E402
    ServerProcess,
    free_port,
    group_cpu_seconds,
    load_average,
    posture_server,
    prepare_home,
    recording_samples,
    scrape,
)

RATE_HZ, WINDOW, HOP = 50.0, 100, 50
GRACE_S = 5.0  # after the last frame: how long predictions may still arrive
IDLE_CLOSE_S = 4.0  # the bench's device sessions end this long after their last frame
BROKER_CONFIG = (
    "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n"
)


def windows_of(samples: int) -> int:
    return 0 if samples < WINDOW else (samples - WINDOW) // HOP + 1


# -- publishers and the receiver (separate processes) ------------------------------------------


def _client(name: str, port: int) -> Any:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port, 60)
    client.loop_start()
    if not connected.wait(30):
        raise RuntimeError("no CONNACK from the bench's broker")
    return client


def publisher(cfg: dict[str, Any], control: Any, results: Any) -> None:
    try:
        results.put(_publish(cfg, control, results))
    except BaseException as err:
        results.put({"kind": "failed", "error": repr(err)})


def _publish(cfg: dict[str, Any], control: Any, results: Any) -> dict[str, Any]:
    rows, period = cfg["rows"], cfg["rows"] / RATE_HZ
    data = np.load(cfg["recordings"])
    recordings = [np.round(data[k].astype(np.float64), 4) for k in data.files]
    rendered = [[json.dumps(r[i : i + rows].tolist()) for i in range(0, len(r) - rows, rows)] for r in recordings]
    rng = random.Random(cfg["seed"])
    client = _client(f"bench-pub-{cfg['seed']}", cfg["port"])
    ids = cfg["device_ids"]
    frames = [rendered[rng.randrange(len(rendered))] for _ in ids]
    offsets = [rng.randrange(len(f)) for f in frames]
    hellos = [client.publish(f"posture/{d}/hello", b'{"type":"hello","rate_hz":50}', qos=1, retain=True) for d in ids]
    for info in hellos:
        info.wait_for_publish(60)
    results.put({"kind": "ready"})
    start = control.get()
    stop = start + cfg["seconds"]
    due = [(start + rng.uniform(0, 1.0), i) for i in range(len(ids))]  # random phase within the hop
    heapq.heapify(due)
    sent = [0] * len(ids)
    last: list[Any] = [None] * len(ids)  # each device's latest publish
    lags = []
    while due:
        at, i = heapq.heappop(due)
        if at >= stop:
            continue
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        lags.append(time.monotonic() - at)
        samples = frames[i][(offsets[i] + sent[i]) % len(frames[i])]
        payload = f'{{"samples":{samples},"t0":{at - period:.6f}}}'
        last[i] = client.publish(f"posture/{ids[i]}/imu", payload, qos=1)
        sent[i] += 1
        heapq.heappush(due, (at + period, i))
    deadline = time.monotonic() + 30  # every device's last frame acknowledged before the disconnect
    while not all(info is None or info.is_published() for info in last) and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    return {
        "kind": "done",
        "frames": sum(sent),
        "expected": sum(windows_of(s * rows) for s in sent),
        "lag_p99_ms": float(np.percentile(lags, 99)) * 1000 if lags else 0.0,
        "cpu_s": time.process_time(),
    }


def receiver(port: int, control: Any, results: Any) -> None:
    import orjson

    got: dict[tuple[str, float], int] = {}
    latencies: list[float] = []
    server_ms: list[float] = []

    def on_message(_c: Any, _u: Any, message: Any) -> None:
        now = time.monotonic()
        body = orjson.loads(message.payload)
        key = (message.topic, body["window_start"])
        got[key] = got.get(key, 0) + 1
        latencies.append(now - body["window_end"])
        server_ms.append(body["latency_ms"])

    client = _client(f"bench-recv-{os.getpid()}", port)
    client.on_message = on_message
    client.subscribe("posture/+/prediction", qos=1)
    results.put({"kind": "ready"})
    control.get()
    client.disconnect()
    client.loop_stop()
    results.put(
        {
            "kind": "received",
            "windows": len(got),
            "duplicates": sum(c - 1 for c in got.values()),
            "latencies": np.asarray(latencies, np.float32),
            "server_ms": np.asarray(server_ms, np.float32),
            "cpu_s": time.process_time(),
        }
    )


# -- the parent ---------------------------------------------------------------------------------


def count_rows(engine: Any) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM predictions WHERE source = 'mqtt'")).scalar_one())


def run_step(n: int, args: argparse.Namespace, port: int, server: ServerProcess, engine: Any, recordings: Path) -> dict:
    ctx = mp.get_context("spawn")
    results, receiver_results, receiver_control = ctx.Queue(), ctx.Queue(), ctx.Queue()
    listening = ctx.Process(target=receiver, args=(port, receiver_control, receiver_results), daemon=True)
    listening.start()
    assert receiver_results.get(timeout=60)["kind"] == "ready"
    shards = []
    for index, part in enumerate(np.array_split(np.arange(n), args.shards)):
        control = ctx.Queue()
        cfg = {
            "port": port,
            "device_ids": [f"r{args.rows}n{n}d{i}" for i in part.tolist()],
            "rows": args.rows,
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
    rows_before, before = count_rows(engine), scrape(server)
    start = time.monotonic() + 1.5  # the retained hellos reach posture first
    for _, control in shards:
        control.put(start)
    time.sleep(max(0.0, start - time.monotonic()))
    cpu0, load = group_cpu_seconds(server.process.pid), os.getloadavg()[0]
    time.sleep(args.step_seconds)
    server_cpu = group_cpu_seconds(server.process.pid) - cpu0
    done = [results.get(timeout=args.step_seconds + 120) for _ in shards]
    if any(d["kind"] != "done" for d in done):
        raise SystemExit(f"a publisher failed: {done}")
    time.sleep(GRACE_S)
    receiver_control.put("stop")
    got = receiver_results.get(timeout=60)
    after = scrape(server)
    expected, frames = sum(d["expected"] for d in done), sum(d["frames"] for d in done)
    deadline = time.monotonic() + 30
    while (rows := count_rows(engine) - rows_before) < expected and time.monotonic() < deadline:
        time.sleep(0.25)
    latencies = got["latencies"] * 1000.0
    step = {
        "n": n,
        "frames": frames,
        "expected": expected,
        "received": got["windows"],
        "duplicates": got["duplicates"],
        "rows": rows,
        "p50": float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
        "p99": float(np.percentile(latencies, 99)) if len(latencies) else float("nan"),
        "server_p99": float(np.percentile(got["server_ms"], 99)) if len(got["server_ms"]) else float("nan"),
        "lag_p99": max(d["lag_p99_ms"] for d in done),
        "server_cores": server_cpu / args.step_seconds,
        "us_per_frame": server_cpu * 1e6 / max(1, frames),
        "client_cores": (sum(d["cpu_s"] for d in done) + got["cpu_s"]) / args.step_seconds,
        "decode_errors": after.get("mqtt_decode_errors_total", 0) - before.get("mqtt_decode_errors_total", 0),
        "load": load,
    }
    step["holds"] = (
        step["p99"] < args.p99_ms and step["received"] == expected > 0 and rows == expected and not step["duplicates"]
    )
    for process, _ in shards:
        process.join(10)
    listening.join(10)
    time.sleep(IDLE_CLOSE_S + 2)  # this step's device sessions end before the next step starts
    return step


def print_step(step: dict[str, Any], rows: int) -> None:
    print(
        f"  {rows}-row frames, N={step['n']:6d}: p50 {step['p50']:6.1f} ms, p99 {step['p99']:7.1f} ms "
        f"(server {step['server_p99']:6.1f} ms, publisher lag p99 {step['lag_p99']:.1f} ms), "
        f"{step['received']}/{step['expected']} windows received ({step['duplicates']} twice), {step['rows']} rows, "
        f"server {step['server_cores']:.2f} cores = {step['us_per_frame']:.0f} us/frame, "
        f"load generator {step['client_cores']:.2f} cores, load {step['load']:.1f} "
        f"-> {'holds' if step['holds'] else 'does NOT hold'}",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50, help="Samples per frame (50: 1 frame/s; 10: 5 frames/s).")
    parser.add_argument("--steps", default="1000,2500,5000,7500,10000", help="Device counts of the ramp.")
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--shards", type=int, default=1, help="Publisher processes.")
    parser.add_argument("--p99-ms", type=float, default=100.0)
    parser.add_argument("--keep-going", action="store_true")
    parser.add_argument("--ws-steps", default="", help="Also run bench/ws_load.py with these steps (10-row frames).")
    parser.add_argument("--home", type=Path, help="Reuse (or create and keep) this home.")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(f"load average at start: {load_average()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mqtt-load-"))
    home = args.home.resolve() if args.home else tmp / "home"
    port = free_port()
    (tmp / "mosquitto.conf").write_text(BROKER_CONFIG.format(port=port))
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(tmp / "mosquitto.conf")])
    server = None
    try:
        prepare_home(home)
        recordings = tmp / "recordings.npz"
        np.savez(recordings, *recording_samples(home))
        env = {"POSTURE_MQTT_URL": f"mqtt://127.0.0.1:{port}", "POSTURE_MQTT_IDLE_CLOSE_S": str(IDLE_CLOSE_S)}
        server = posture_server(home, 1, tmp / "serve", env)
        server.wait_ready()
        time.sleep(2.0)  # the bridge connects and subscribes
        from serving.store.db import make_engine

        engine = make_engine(f"sqlite:///{tmp / 'serve' / 'predictions.db'}")
        steps = []
        for n in (int(x) for x in args.steps.split(",")):
            step = run_step(n, args, port, server, engine, recordings)
            print_step(step, args.rows)
            steps.append(step)
            if not step["holds"] and not args.keep_going:
                break
        held = [s for s in steps if s["holds"]]
        best = max(held, key=lambda s: s["n"]) if held else None
        frames_per_device_s = RATE_HZ / args.rows
        if best:
            cores = best["us_per_frame"] * frames_per_device_s * 100_000 / 1e6
            print(
                f"largest N held with {args.rows}-row frames: {best['n']} devices (p99 {best['p99']:.1f} ms, "
                f"{best['received']} windows, {best['rows']} rows); server CPU {best['us_per_frame']:.0f} us/frame "
                f"-> 100,000 devices at {frames_per_device_s:g} frames/s need ~{cores:.1f} cores of posture, "
                f"partitioned over instances (the broker's own CPU not included)",
                flush=True,
            )
        else:
            print(f"no step held with {args.rows}-row frames", flush=True)
        status = server.stop()
        print(f"posture exited {status} after SIGTERM; load average at end {load_average()}", flush=True)
        server = None
        engine.dispose()
        if args.ws_steps:
            print(f"bench/ws_load.py --steps {args.ws_steps} (10-row frames), same machine, same run:", flush=True)
            subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).parent / "ws_load.py"),
                    "--steps",
                    args.ws_steps,
                    "--step-seconds",
                    str(args.step_seconds),
                    "--peer-devices",
                    "",
                    "--home",
                    str(home),
                ],
                check=False,
            )
    finally:
        if server is not None:
            server.stop()
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
