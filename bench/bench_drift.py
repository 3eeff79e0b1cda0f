"""Drift monitoring: posture's detector against River's ADWIN, and what tracking costs the hot path.

    python bench/bench_drift.py [--home DIR] [--ws-devices 300] [--ws-seconds 20] [--ws-rounds 2]

1. Detection, on the streams of tests/serving/drift/test_detection.py: fleets of 8 synthetic
   wearers streaming at once (pipelines.synthetic_shifts), windowed and predicted by the
   home's champion as a live stream is (serving.drift.replay). Three fleets of new wearers
   from the training population (no drift: every alarm is false), and three shifted fleets
   (sensor rotated 90 degrees, another placement, a shuffling gait), each after a fleet of
   new wearers. posture: a DriftMonitor with the server's default settings (window 2,000,
   step 500, PSI 1.2, JS 0.4, confidence drop 0.1, sustained 300 s of stream time). The peer:
   River's ADWIN (delta 0.002), one detector per tracked feature and one on the top
   probability, fed every window; a detection by any is an alarm. Reported: the windows from
   the shift's start to the first alarm, and the alarms on the unshifted streams.
2. The hot path: MicroBatcher._predict_group (featurize + predict one micro-batch) without
   and with a DriftMonitor, and DriftMonitor.record alone, on batches of 1-256 windows.
3. ws_load.py's per-frame cost: one step of --ws-devices devices for --ws-seconds, with
   POSTURE_DRIFT_ENABLED=true and =false, alternated --ws-rounds times each; the server's CPU
   per frame of each (ws_load's figure), and the record cost of part 2 per frame against it
   (a window is 5 of ws_load's frames).

The machine is shared: the load average is printed before each part. About 6-10 minutes on
2 busy cores (plus ~2 min to train the champion unless --home has one).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_serve_http import bench_env, load_average, prepare_home  # noqa: E402

DEVICES = 8
FRAMES_PER_WINDOW = 5  # ws_load: frames of 10 samples, a window every 50 samples (hop 1 s at 50 Hz)


def load_champion(home: Path) -> Any:
    from pipelines.registry import load_model, resolve_model_uri
    from serving.model_holder import ServedModel, read_drift_profile
    from serving.settings import ServerSettings

    settings = ServerSettings()
    loaded = load_model(resolve_model_uri(None, settings), settings)
    profile = read_drift_profile(loaded)
    if profile is None:
        raise SystemExit(f"the champion in {home} has no drift profile: train it again with this posture")
    return ServedModel(loaded, loaded.engine, profile)


def fleet(served: Any, shift: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from pipelines.synthetic_shifts import shifted_dataset
    from serving.drift.replay import fleet_streams

    return fleet_streams(served, shifted_dataset(shift, DEVICES, seed=seed))


def posture_alarms(served: Any, streams: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
    """Window indices (in the concatenated streams) at which posture's alarm was raised."""
    from serving.drift.monitor import DriftMonitor
    from serving.drift.replay import StreamClock, feed
    from serving.metrics import ServerMetrics
    from serving.settings import ServerSettings

    clock = StreamClock()
    monitor = DriftMonitor(ServerSettings(), ServerMetrics(), lambda rows: None, None, clock)

    async def run() -> list[int]:
        raised = []
        for features, probabilities in streams:
            scorings = await feed(monitor, served, features, probabilities, clock, devices=DEVICES)
            raised += [s.appended for s in scorings if s.transition == "raised"]
        return raised

    return asyncio.run(run())


def adwin_alarms(served: Any, streams: list[tuple[np.ndarray, np.ndarray]]) -> list[int]:
    """Window indices at which any ADWIN (tracked features, top probability) detected a change."""
    from river.drift import ADWIN

    columns = served.drift_profile.columns
    detectors = [ADWIN() for _ in range(len(columns) + 1)]
    found, index = [], 0
    for features, probabilities in streams:
        values = np.column_stack([features[:, columns], probabilities.max(axis=1)])
        for row in values:
            index += 1
            hit = False
            for detector, value in zip(detectors, row):
                if np.isfinite(value):
                    detector.update(float(value))
                    hit = hit or detector.drift_detected
            if hit:
                found.append(index)
    return found


def detection(served: Any) -> None:
    print(f"\n1. detection (load average {load_average()})", flush=True)
    started = time.perf_counter()
    same = [fleet(served, "none", seed) for seed in (11, 12, 13)]
    shifted = {shift: fleet(served, shift, 21) for shift in ("rotated", "placement", "gait")}
    print(f"   streams built in {time.perf_counter() - started:.0f} s", flush=True)
    unshifted = sum(len(f) for f, _ in same)
    rows = [("no drift: alarms", unshifted, posture_alarms(served, same), adwin_alarms(served, same))]
    print(f"   {'stream':<28} {'windows':>8} {'posture':>10} {'ADWIN (River)':>28}")
    for name, windows, ours, theirs in rows:
        print(f"   {name:<28} {windows:>8} {len(ours):>10} {len(theirs):>28}")
    for shift, stream in shifted.items():
        start = len(same[0][0])
        ours = [i - start for i in posture_alarms(served, [same[0], stream]) if i > start]
        theirs_all = adwin_alarms(served, [same[0], stream])
        theirs = [i - start for i in theirs_all if i > start]
        false_before = sum(1 for i in theirs_all if i <= start)
        print(
            f"   {shift + ': windows to alarm':<28} {len(stream[0]):>8} "
            f"{_first(ours):>10} {_first(theirs) + f' ({false_before} false before)':>28}"
        )
    print(
        "   (windows to alarm: after the shift starts, 8 devices interleaved; posture scores every 500 windows "
        "and needs 300 s of stream time above a threshold)"
    )


def _first(indices: list[int]) -> str:
    return str(indices[0]) if indices else "none"


def hot_path(served: Any, repeats: int = 200) -> float:
    """The highest median DriftMonitor.record cost per window (us) over batch sizes; prints the table."""
    from features.feature_sets import window_contexts
    from features.windows import sliding_windows
    from pipelines.synthetic import generate_sample_dataset
    from serving.batcher import MicroBatcher
    from serving.drift.monitor import DriftMonitor
    from serving.metrics import ServerMetrics
    from serving.settings import ServerSettings

    print(f"\n2. hot path (load average {load_average()})", flush=True)
    spec = served.spec
    frame = generate_sample_dataset(1, seed=5)
    samples = frame[list(spec.channels)].to_numpy(np.float32)
    windows = np.ascontiguousarray(sliding_windows(samples, spec.window_samples, spec.hop_samples)[:256])
    contexts = window_contexts(windows, spec)
    monitor = DriftMonitor(ServerSettings(), ServerMetrics(), lambda rows: None, None)
    off, on = MicroBatcher(ServerMetrics()), MicroBatcher(ServerMetrics(), drift=monitor)
    per_window = []
    print(
        f"   {'batch':>6} {'path off (us)':>14} {'path on (us)':>13} {'record (us)':>12} {'record/window':>14} {'share':>7}"
    )
    for size in (1, 16, 64, 256):
        w, c = windows[:size], contexts[:size]
        probabilities = off._predict_group(w, c, served)
        times_off, times_on, times_record = [], [], []
        for _ in range(repeats):
            for batcher, times in ((off, times_off), (on, times_on)):
                t = time.perf_counter()
                batcher._predict_group(w, c, served)
                times.append(time.perf_counter() - t)
            t = time.perf_counter()
            monitor.record(served, features_of(served, w, c), probabilities)
            times_record.append(time.perf_counter() - t)
        path_off, path_on = statistics.median(times_off) * 1e6, statistics.median(times_on) * 1e6
        record = statistics.median(times_record) * 1e6
        per_window.append(record / size)
        print(
            f"   {size:>6} {path_off:>14.0f} {path_on:>13.0f} {record:>12.1f} {record / size:>14.2f} "
            f"{record / path_off:>7.1%}"
        )
    return max(per_window)  # the worst batch size: one window (ws_load's batches hold ~2-4)


_FEATURES: dict[int, np.ndarray] = {}


def features_of(served: Any, windows: np.ndarray, contexts: np.ndarray) -> np.ndarray:
    from features.feature_sets import featurize

    if len(windows) not in _FEATURES:
        _FEATURES[len(windows)] = featurize(windows, served.spec, contexts)
    return _FEATURES[len(windows)]


def ws_load(home: Path, devices: int, seconds: float, rounds: int, record_us_per_window: float) -> None:
    print(f"\n3. ws_load.py, {devices} devices for {seconds:g} s (load average {load_average()})", flush=True)
    results: dict[str, list[float]] = {"true": [], "false": []}
    order = ["true", "false", "false", "true"] * rounds
    for enabled in order[: 2 * rounds]:
        env = {**bench_env(home), "POSTURE_DRIFT_ENABLED": enabled}
        command = [sys.executable, str(REPO / "bench" / "ws_load.py"), "--steps", str(devices)]
        command += ["--step-seconds", str(seconds), "--peer-devices", "", "--home", str(home)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
        match = re.search(r"server [\d.]+ cores \((\d+) us/frame\)", out.stdout)
        if out.returncode != 0 or not match:
            raise SystemExit(f"ws_load.py failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        results[enabled].append(float(match.group(1)))
        step = next(line for line in out.stdout.splitlines() if "us/frame" in line)
        print(f"   drift {'on ' if enabled == 'true' else 'off'}: {step.strip()}", flush=True)
    on, off = statistics.median(results["true"]), statistics.median(results["false"])
    per_frame = record_us_per_window / FRAMES_PER_WINDOW
    print(
        f"   server CPU per frame: drift on {on:.0f} us, off {off:.0f} us (median of {rounds}): on/off {on / off:.3f}"
    )
    print(
        f"   DriftMonitor.record per frame (part 2, batches of one window, the worst): {per_frame:.2f} us = "
        f"{per_frame / off:.2%} of ws_load's {off:.0f} us per frame (limit 5%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="Reuse (or create and keep) this home.")
    parser.add_argument("--ws-devices", type=int, default=300)
    parser.add_argument("--ws-seconds", type=float, default=20.0)
    parser.add_argument("--ws-rounds", type=int, default=2, help="ws_load runs per setting (0 skips part 3).")
    args = parser.parse_args()
    print(f"load average at start: {load_average()}", flush=True)
    logging.getLogger("posture.serve").setLevel(logging.ERROR)  # the alarms' own log lines
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        home = (args.home or Path(tmp) / "home").resolve()
        prepare_home(home)
        os.environ.update(bench_env(home))
        served = load_champion(home)
        print(f"champion: version {served.version}, tracked features {[f.name for f in served.drift_profile.features]}")
        detection(served)
        record_us = hot_path(served)
        if args.ws_rounds:
            ws_load(home, args.ws_devices, args.ws_seconds, args.ws_rounds, record_us)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
