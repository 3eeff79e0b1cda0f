"""Test helpers for the deployment: a self-signed certificate, the shipped nginx config run by
a private nginx on free loopback ports, Redis key prefixes that are cleaned up, API keys
made with the real CLI, and metric names the server exports."""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis

from deploy.render_nginx import EdgeConfig, render, standalone
from serving.metrics import ServerMetrics
from tests.conftest import run_cli
from tests.serving.serving_support import free_port

REDIS_URL = "redis://127.0.0.1:6379/0"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made now with openssl."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def client_tls(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@contextlib.contextmanager
def nginx_folder() -> Iterator[Path]:
    """A world-readable folder: nginx's workers run as nobody and must read what is inside."""
    folder = Path(tempfile.mkdtemp(prefix="posture-nginx-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_config(folder: Path, upstreams: Sequence[str], http_port: int, https_port: int) -> Path:
    """The shipped template rendered for loopback ports, inside a standalone nginx.conf."""
    cert, key = self_signed_cert(folder)
    config = EdgeConfig(
        upstreams=upstreams,
        cert=cert,
        key=key,
        server_name="localhost",
        public_host=f"127.0.0.1:{https_port}",
        http_listen=f"127.0.0.1:{http_port}",
        https_listen=f"127.0.0.1:{https_port}",
        access_log=str(folder / "access.log"),
    )
    site = folder / "posture.conf"
    site.write_text(render(config.variables()))
    main = folder / "nginx.conf"
    main.write_text(standalone(site, folder))
    return main


def nginx_test(main: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NGINX, "-t", "-p", str(main.parent), "-c", str(main)], capture_output=True, text=True)


class NginxProcess:
    """The shipped config in front of ``upstreams``, on free loopback ports."""

    def __init__(self, folder: Path, upstreams: Sequence[str]) -> None:
        self.http_port, self.https_port = free_port(), free_port()
        self.folder = folder
        self.cert = folder / "cert.pem"
        self.config = write_config(folder, upstreams, self.http_port, self.https_port)
        self.https = f"https://127.0.0.1:{self.https_port}"
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.wss = f"wss://127.0.0.1:{self.https_port}/v1/stream"
        self.process = subprocess.Popen(
            [NGINX, "-p", str(folder), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._wait_listening()

    def _wait_listening(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited {self.process.returncode}: {self.error_log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.https_port), 0.2):
                return
            time.sleep(0.05)
        raise AssertionError(f"nginx did not listen in {timeout_s} s: {self.error_log()}")

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextlib.contextmanager
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own on the real Redis; its keys are deleted afterwards."""
    prefix = f"posture-test-{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def create_key(home: Path, database_url: str, name: str) -> str:
    """``posture keys create NAME``: the key is the one line on stdout."""
    return run_cli("keys", "create", name, "--database-url", database_url, home=home).stdout.strip()


class _ZeroStore:
    """A prediction store whose every counter reads 0 (whatever counters the collector asks for)."""

    def __getattr__(self, name: str) -> int:
        return 0


def exported_metric_names() -> set[str]:
    """Every sample name the server's /metrics can show (counters' _total, histograms' _bucket...)."""
    metrics = ServerMetrics()
    metrics.watch_store(_ZeroStore())
    return metric_names_in(metrics.render().decode())


def metric_names_in(exposition: str) -> set[str]:
    """Every sample name a /metrics text can show, from its ``# TYPE`` lines (counters' _total,
    histograms' _bucket...), whether or not a sample was recorded yet."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            base = name.removesuffix("_total") if kind == "counter" else name
            names.update(base + suffix for suffix in suffixes.get(kind, ("",)))
    return names


PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "clamp_min",
    "clamp_max",
    "abs",
    "by",
    "without",
    "bool",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "offset",
}


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression reads (label matchers, groupings, ranges stripped)."""
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)
    tokens = re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", expr)
    return {token for token in tokens if token not in PROMQL_WORDS}
