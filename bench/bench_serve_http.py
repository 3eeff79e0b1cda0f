"""Benchmark: one-window HTTP predictions, `posture serve` against `mlflow models serve`.

    python bench/bench_serve_http.py [--seconds 6] [--workers 1,2] [--home DIR]

Both servers serve the SAME registered model (models:/posture@champion of a throwaway
home: the sample dataset and a 100-tree forest, set up with `posture ingest --sample` and
`posture train`), both are started and measured in this run, on loopback:

* posture: POST /v1/predict with one ready window ({"windows": [100 x 6]}) or one window's
  samples ({"samples": 100 rows, "rate_hz": 50}). The server validates, featurizes,
  predicts (ONNX Runtime, micro-batched) and logs the prediction to its SQLite store.
* MLflow: POST /invocations with that window's feature row ({"inputs": [[296 floats]]}),
  computed here as the server computes it (``window_features``: the default feature set, the
  window a stream of its own). MLflow does LESS work per request:
  no featurization, no logging, labels only (no probabilities).

Latency: one client, requests back to back (median, p99). Throughput: 8 client processes
(a minimal keep-alive client, ``KeepAliveClient``; separate processes so no client GIL caps
the server), each
sending back to back for --seconds; latency under that load too. Because clients and
servers share this machine's cores (and other jobs may run), the table also gives each
server's CPU time per request (all its processes, from /proc) and what that makes per
core-second, and for posture (one worker) the micro-batches' size and featurizing time
from its /metrics. Rate limiting is off (POSTURE_RATE_LIMIT_PER_S=0). Each server runs
with 1 and 2 worker processes (--workers); the load average is printed with the figures.
Target (issue 4): posture median latency <= 1/10 of MLflow's, throughput >= 20x.
Takes 2.5-4 minutes on 2 cores (up to 2 of them setting up the home; --home reuses one).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]
START_TIMEOUT_S = 180.0
JSON_HEADERS = {"Content-Type": "application/json"}


# -- shared with bench/ws_load.py: the throwaway home and server processes --------------


def bench_env(home: Path) -> dict[str, str]:
    """The environment for every posture/mlflow process of a bench: the home, offline, no limits."""
    env = {
        **os.environ,
        "POSTURE_HOME": str(home),
        "PYTHONPATH": str(REPO),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow execs `uvicorn`
        "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow/mlflow.db",
        "POSTURE_RATE_LIMIT_PER_S": "0",  # serving/edge/ratelimit.py: <= 0 turns limiting off
        "POSTURE_API_KEYS_REQUIRED": "false",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
    }
    for key in ("POSTURE_DATABASE_URL", "POSTURE_REDIS_URL", "POSTURE_DATA_DIR"):
        env.pop(key, None)
    return env


def prepare_home(home: Path) -> None:
    """The sample dataset and a registered 100-tree champion (kept when ``home`` has one)."""
    if (home / "mlflow" / "mlflow.db").exists() and (home / "data" / "datasets" / "sample").exists():
        print(f"reusing the model in {home}", flush=True)
        return
    home.mkdir(parents=True, exist_ok=True)
    env = bench_env(home)
    posture = [sys.executable, "-m", "posture_cli"]
    print("setting up: sample dataset and a 100-tree champion (~2 min on 2 busy cores) ...", flush=True)
    started = time.perf_counter()
    subprocess.run([*posture, "ingest", "--sample"], env=env, check=True, capture_output=True)
    # 2 CV folds instead of 5: the registered forest is the same (fit on all data), setup is shorter.
    subprocess.run([*posture, "train", "--cv", "group-kfold:2"], env=env, check=True, capture_output=True)
    print(f"  set up in {time.perf_counter() - started:.0f} s", flush=True)


def sample_windows(home: Path, count: int, seed: int = 0) -> np.ndarray:
    """``count`` real 100 x 6 windows (float32) from the ingested sample recordings."""
    import pandas as pd

    frame = pd.read_parquet(home / "data" / "datasets" / "sample" / "recordings.parquet")
    rng = np.random.default_rng(seed)
    out = []
    names = frame["recording"].unique()
    for name in rng.choice(names, size=count):
        values = frame.loc[frame["recording"] == name, CHANNELS].to_numpy(np.float32)
        start = int(rng.integers(0, len(values) - 100))
        out.append(values[start : start + 100])
    return np.stack(out)


def recording_samples(home: Path) -> list[np.ndarray]:
    """Every sample recording's (n, 6) float32 samples, in time order."""
    import pandas as pd

    frame = pd.read_parquet(home / "data" / "datasets" / "sample" / "recordings.parquet")
    return [part.sort_values("timestamp")[CHANNELS].to_numpy(np.float32) for _, part in frame.groupby("recording")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min; {os.cpu_count()} cores)"


class ServerProcess:
    """A server in its own process group (mlflow execs uvicorn, uvicorn forks workers)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int, health: str, log: Path) -> None:
        self.name, self.port, self.health, self.log_path = name, port, health, log
        self._log = log.open("w")
        self.process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started = time.perf_counter()
        self.ready_after_s: float | None = None

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1.0)
                conn.request("GET", self.health)
                if conn.getresponse().status == 200:
                    self.ready_after_s = time.perf_counter() - self.started
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not come up in {timeout:.0f} s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM to the group (posture flushes its log), SIGKILL if it lingers."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # stray workers of this group, if any
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self._log.close()
        return self.process.returncode


def posture_server(home: Path, workers: int, data_dir: Path, extra_env: dict[str, str] | None = None) -> ServerProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**bench_env(home), "POSTURE_DATA_DIR": str(data_dir), **(extra_env or {})}
    # The sample dataset lives in the home's data dir; this server's store and spool in its own.
    command = [sys.executable, "-m", "posture_cli", "serve", "--port", str(port), "--workers", str(workers)]
    return ServerProcess(f"posture serve --workers {workers}", command, env, port, "/healthz", data_dir / "server.log")


def mlflow_server(home: Path, workers: int, log_dir: Path) -> ServerProcess:
    port = free_port()
    mlflow = str(Path(sys.executable).parent / "mlflow")
    command = [
        mlflow,
        "models",
        "serve",
        "-m",
        "models:/posture@champion",
        "--env-manager",
        "local",
        "-p",
        str(port),
        "--host",
        "127.0.0.1",
        "-w",
        str(workers),
    ]
    return ServerProcess(
        f"mlflow models serve -w {workers}", command, bench_env(home), port, "/ping", log_dir / f"mlflow-w{workers}.log"
    )


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the live processes of process group ``pgid``."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields from `state`: pgrp is 3rd, utime/stime 12th/13th
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def scrape(server: ServerProcess) -> dict[str, float]:
    """posture's /metrics summed by sample name (one worker's view with --workers > 1);
    model_predictions_total counts only source="ws"."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        key, _, value = line.rpartition(" ")
        name = key.split("{", 1)[0]
        if name == "model_predictions_total" and 'source="ws"' not in key:
            continue
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def batch_stats(before: dict[str, float], after: dict[str, float]) -> tuple[float, float]:
    """(windows per micro-batch, featurize ms per micro-batch) between two scrapes."""
    batches = after.get("batch_request_size_count", 0.0) - before.get("batch_request_size_count", 0.0)
    if not batches:
        return float("nan"), float("nan")
    windows = after.get("batch_request_size_sum", 0.0) - before.get("batch_request_size_sum", 0.0)
    seconds = after.get("request_preprocess_seconds_sum", 0.0) - before.get("request_preprocess_seconds_sum", 0.0)
    return windows / batches, seconds * 1000.0 / batches


def percentile_ms(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000.0 if len(values) else float("nan")


# -- HTTP load -----------------------------------------------------------------------------


class KeepAliveClient:
    """A minimal HTTP/1.1 keep-alive client, the same for both servers.

    The request's bytes are built once and the answer is read by its Content-Length, as a
    load generator such as wrk does. Measured here: 50-70 us of client CPU a one-window
    request (system calls included), against 160-170 us with http.client, whose header
    building and email-parser responses cost the rest. On this shared 2-core machine every
    microsecond the 8 clients spend is taken from the server they measure.
    """

    def __init__(self, port: int, path: str, body: bytes) -> None:
        self.port = port
        head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        self.request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        return sock

    def post(self) -> int:
        """Send the request, read the whole answer; its status (0 when the connection failed)."""
        try:
            if self.sock is None:
                self.sock = self._connect()
            self.sock.sendall(self.request)
            while True:
                head, found, rest = self.buffer.partition(b"\r\n\r\n")
                if found:
                    length = _content_length(head)
                    if len(rest) >= length:
                        self.buffer = rest[length:]
                        return int(head[9:12])
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                self.buffer += chunk
        except OSError:
            if self.sock is not None:
                self.sock.close()
            self.sock = None
            return 0


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise SystemExit(f"an answer without Content-Length (the client reads no chunked bodies): {head[:300]!r}")


def _client(port: int, path: str, body: bytes, start_at: float, seconds: float, max_requests: int) -> dict[str, Any]:
    """One client process: keep-alive requests back to back from ``start_at`` for ``seconds``."""
    client = KeepAliveClient(port, path, body)
    latencies: list[float] = []
    errors = 0
    while time.monotonic() < start_at:
        time.sleep(0.001)
    began = time.monotonic()
    deadline = began + seconds
    while len(latencies) + errors < max_requests and time.monotonic() < deadline:
        sent = time.perf_counter()
        if client.post() == 200:
            latencies.append(time.perf_counter() - sent)
        else:
            errors += 1
    return {"latencies": latencies, "errors": errors, "began": began, "ended": time.monotonic()}


@dataclass
class Load:
    clients: int
    requests: int
    errors: int
    seconds: float
    latencies: list[float] = field(repr=False)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def median_ms(self) -> float:
        return percentile_ms(self.latencies, 50)

    @property
    def p99_ms(self) -> float:
        return percentile_ms(self.latencies, 99)


def run_load(pool: Any, clients: int, port: int, path: str, body: bytes, seconds: float, max_requests: int) -> Load:
    start_at = time.monotonic() + 0.3
    results = pool.starmap(_client, [(port, path, body, start_at, seconds, max_requests)] * clients)
    latencies = [x for r in results for x in r["latencies"]]
    span = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return Load(clients, len(latencies), sum(r["errors"] for r in results), span, latencies)


def one_request(port: int, path: str, body: bytes) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, body, JSON_HEADERS)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"POST {path} on port {port}: {response.status} {data[:300]!r}")
    return json.loads(data)


@dataclass
class Target:
    server: str
    workers: int
    payload: str
    port: int
    process: ServerProcess
    path: str
    body: bytes
    single: Load | None = None
    loaded: Load | None = None
    load_avg: str = ""
    cpu_ms: float = float("nan")  # server CPU (all its processes) per request under load
    batch_windows: float = float("nan")  # posture: windows per micro-batch under load (one worker's view)
    featurize_ms: float = float("nan")  # posture: feature extraction per micro-batch

    @property
    def cpu_ceiling(self) -> float:
        """Requests a second one fully available core would answer at that CPU cost."""
        return 1000.0 / self.cpu_ms


def measure(pool: Any, target: Target, args: argparse.Namespace) -> None:
    for _ in range(args.warmup):
        one_request(target.port, target.path, target.body)
    target.load_avg = load_average()
    target.single = run_load(pool, 1, target.port, target.path, target.body, args.single_seconds, args.single_requests)
    # /metrics answers from whichever worker takes the connection: batch figures with one worker only.
    batching = target.server == "posture" and target.workers == 1
    metrics = scrape(target.process) if batching else {}
    cpu = group_cpu_seconds(target.process.process.pid)
    target.loaded = run_load(pool, args.clients, target.port, target.path, target.body, args.seconds, 10**9)
    target.cpu_ms = (group_cpu_seconds(target.process.process.pid) - cpu) * 1000.0 / max(1, target.loaded.requests)
    if batching:
        target.batch_windows, target.featurize_ms = batch_stats(metrics, scrape(target.process))
    print(
        f"  {target.server} -w {target.workers} {target.payload:8s}: median {target.single.median_ms:6.2f} ms, "
        f"{target.loaded.throughput:7.1f} req/s at {args.clients} clients, server CPU {target.cpu_ms:.2f} ms/req  "
        f"(load {target.load_avg})",
        flush=True,
    )


def window_features(window: np.ndarray) -> np.ndarray:
    """The feature row (1, n_features) of one window as the served model's spec computes it:
    the default feature set, the window's stream context from the window alone (a request is
    a stream of its own)."""
    from features.feature_sets import DEFAULT_FEATURE_SET, featurize, window_contexts
    from features.spec import WindowSpec

    spec = WindowSpec(rate_hz=50.0, channels=tuple(CHANNELS), feature_set_version=DEFAULT_FEATURE_SET)
    return featurize(window[None], spec, window_contexts(window[None], spec))


def featurize_cost_ms(window: np.ndarray, repeats: int = 200) -> float:
    window_features(window)
    started = time.perf_counter()
    for _ in range(repeats):
        window_features(window)
    return (time.perf_counter() - started) / repeats * 1000.0


def stored_rows(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "predictions.db", timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM predictions").fetchone()[0]


def report(targets: list[Target], args: argparse.Namespace, notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=180)
    table = Table(
        title=f"one window per request; 1 client back to back, then {args.clients} client processes "
        f"for {args.seconds:g} s"
    )
    for column in (
        "server",
        "workers",
        "request body",
        "median ms",
        "p99 ms",
        "n",
        f"median ms @{args.clients}",
        f"p99 ms @{args.clients}",
        f"req/s @{args.clients}",
        "server CPU ms/req",
        "req/s per CPU-s",
        f"windows/ batch @{args.clients}",
        "featurize ms/ batch",
        "errors",
        "load 1m",
    ):
        table.add_column(column, justify="left" if column in ("server", "request body") else "right")
    for t in targets:
        assert t.single and t.loaded
        table.add_row(
            t.server,
            str(t.workers),
            t.payload,
            f"{t.single.median_ms:.2f}",
            f"{t.single.p99_ms:.2f}",
            str(t.single.requests),
            f"{t.loaded.median_ms:.2f}",
            f"{t.loaded.p99_ms:.2f}",
            f"{t.loaded.throughput:.0f}",
            f"{t.cpu_ms:.2f}",
            f"{t.cpu_ceiling:.0f}",
            "" if t.batch_windows != t.batch_windows else f"{t.batch_windows:.1f}",  # NaN: not measured
            "" if t.featurize_ms != t.featurize_ms else f"{t.featurize_ms:.2f}",
            str(t.single.errors + t.loaded.errors),
            t.load_avg.split()[0],
        )
    console.print(table)
    ratios = Table(title="posture vs MLflow, same worker count (target: latency <= 1/10, throughput >= 20x)")
    for column in (
        "workers",
        "posture body",
        "MLflow/posture median",
        "MLflow/posture p99",
        f"posture/MLflow req/s @{args.clients}",
        "MLflow/posture CPU per req",
        "latency target",
        "throughput target",
    ):
        ratios.add_column(column, justify="right")
    for t in targets:
        if t.server != "posture":
            continue
        peer = next((p for p in targets if p.server == "mlflow" and p.workers == t.workers), None)
        if peer is None:
            continue
        assert peer.single and peer.loaded and t.single and t.loaded
        lat = peer.single.median_ms / t.single.median_ms
        thr = t.loaded.throughput / peer.loaded.throughput
        ratios.add_row(
            str(t.workers),
            t.payload,
            f"{lat:.1f}x",
            f"{peer.single.p99_ms / t.single.p99_ms:.1f}x",
            f"{thr:.1f}x",
            f"{peer.cpu_ms / t.cpu_ms:.1f}x",
            "[green]met[/]" if lat >= 10 else "[red]missed[/]",
            "[green]met[/]" if thr >= 20 else "[red]missed[/]",
        )
    console.print(ratios)
    for note in notes:
        console.print(note, highlight=False)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="Duration of each concurrent-load run.")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--single-seconds", type=float, default=3.0, help="Max duration of each one-client run.")
    parser.add_argument("--single-requests", type=int, default=1500, help="Max requests of each one-client run.")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workers", default="1,2", help="Worker counts to measure, comma separated.")
    parser.add_argument("--home", type=Path, help="Reuse (or create and keep) this home instead of a temporary one.")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    begun = time.perf_counter()
    print(f"load average at start: {load_average()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-http-"))
    home = args.home.resolve() if args.home else tmp / "home"
    try:
        prepare_home(home)
        window = sample_windows(home, 1, seed=4)[0]
        features = window_features(window)
        bodies = {
            "window": json.dumps({"windows": [window.tolist()]}).encode(),
            "samples": json.dumps({"samples": window.tolist(), "rate_hz": 50}).encode(),
            "features": json.dumps({"inputs": features.tolist()}).encode(),
        }
        targets: list[Target] = []
        ok_requests: dict[int, int] = {}
        with ExitStack() as stack, mp.get_context("fork").Pool(args.clients) as pool:
            print(
                f"starting posture serve and mlflow models serve with {args.workers} worker(s) (all at once) ...",
                flush=True,
            )
            servers: dict[tuple[str, int], ServerProcess] = {}
            for w in workers:
                servers["posture", w] = posture_server(home, w, tmp / f"posture-w{w}")
                servers["mlflow", w] = mlflow_server(home, w, tmp)
            for server in servers.values():
                stack.callback(server.stop)
            for server in servers.values():
                server.wait_ready()
            starts = ", ".join(f"{s.name} {s.ready_after_s:.0f} s" for s in servers.values())
            first_posture, first_mlflow = servers["posture", workers[0]], servers["mlflow", workers[0]]
            posture_label = one_request(first_posture.port, "/v1/predict", bodies["window"])["predictions"][0]["label"]
            mlflow_label = one_request(first_mlflow.port, "/invocations", bodies["features"])["predictions"][0]
            for w in workers:
                p, m = servers["posture", w], servers["mlflow", w]
                plan = [
                    Target("posture", w, "window", p.port, p, "/v1/predict", bodies["window"]),
                    Target("posture", w, "samples", p.port, p, "/v1/predict", bodies["samples"]),
                    Target("mlflow", w, "features", m.port, m, "/invocations", bodies["features"]),
                ]
                for target in plan:
                    measure(pool, target, args)
                    targets.append(target)
                ok_requests[w] = sum(
                    t.single.requests + t.loaded.requests + args.warmup  # type: ignore[union-attr]
                    for t in plan
                    if t.server == "posture"
                ) + (1 if w == workers[0] else 0)
            for w in workers:
                servers["posture", w].stop()  # SIGTERM: the store flushes what it holds
        rows = {w: stored_rows(tmp / f"posture-w{w}") for w in workers}
        notes = [
            f"same model, same window: posture says {posture_label!r}, MLflow says {mlflow_label!r}",
            "posture does more per request than MLflow: it parses 600 raw values, featurizes them "
            f"({featurize_cost_ms(window):.2f} ms for one window in-process here), returns probabilities and logs "
            f"the prediction to its store; MLflow gets the {features.shape[1]} features precomputed by the client and "
            "returns a label.",
            "posture predictions logged (SQLite rows after SIGTERM vs 200 responses): "
            + ", ".join(
                f"--workers {w}: {rows[w]} / {ok_requests[w]}" + (" ok" if rows[w] == ok_requests[w] else " MISMATCH")
                for w in workers
            ),
            f"server start to ready: {starts}",
            f"clients and servers share this machine ({os.cpu_count()} cores); other jobs ran too. "
            f"load average at end: {load_average()}; total bench time {time.perf_counter() - begun:.0f} s",
        ]
        report(targets, args, notes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the servers' stores (and the home, unless --home)


if __name__ == "__main__":
    main()
