"""Test helpers for the image: the local Debian base (deploy/local_base.sh), the image built
from the repository's Dockerfile on it, containers on the host's network (loopback only), a
local registry (Debian's docker-registry) and a model trained where the container can read it.

The engine, the registry and debootstrap come from `make services` (scripts/ensure_docker.sh),
which CI runs first: a missing one fails these tests, it never skips them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO, make_home, run_cli
from tests.serving.serving_support import free_port

IMAGE = "posture:test"
BUILD_TIMEOUT_S = 1800
REGISTRY = "/usr/bin/docker-registry"


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def local_base() -> str:
    """The tag of the local base image (built once per machine, then found by its hash)."""
    result = subprocess.run(
        ["bash", str(REPO / "deploy" / "local_base.sh")], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    assert result.returncode == 0, f"deploy/local_base.sh exited {result.returncode}:\n{result.stderr[-4000:]}"
    return result.stdout.strip().splitlines()[-1]


def build_image(base: str, tag: str = IMAGE) -> None:
    """``docker build`` of the repository on ``base``; layers are cached, so an unchanged tree takes seconds."""
    started = time.monotonic()
    result = subprocess.run(
        ["docker", "build", "--network", "host", "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(REPO)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"docker build exited {result.returncode}:\n{(result.stdout + result.stderr)[-6000:]}"
    )
    print(f"docker build of {tag} on {base}: {time.monotonic() - started:.1f} s")


def inspect(ref: str) -> dict[str, Any]:
    return json.loads(docker("inspect", ref).stdout)[0]


@contextlib.contextmanager
def shared_folder(prefix: str) -> Iterator[Path]:
    """A folder the container's user (uid 10001) can read, at the same path inside and out."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def trained_model_home(folder: Path) -> Path:
    """``posture ingest --sample`` and ``posture train`` on the host, into ``folder``/home."""
    home = make_home(folder / "home")
    run_cli("ingest", "--sample", home=home)
    run_cli("train", "--trees", "40", home=home)
    for path in [home, *home.rglob("*")]:  # readable by the container's user
        path.chmod(path.stat().st_mode | 0o044 | (0o011 if path.is_dir() else 0))
    return home


class Container:
    """``docker run -d --network host IMAGE serve`` against ``home`` (mounted read-only at its own path)."""

    def __init__(
        self, image: str, home: Path, env: dict[str, str], port: int | None = None, volumes: tuple[str, ...] = ()
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/stream"
        self.name = f"posture-test-{uuid.uuid4().hex[:10]}"
        settings = {
            "POSTURE_HOME": str(home),
            "POSTURE_DATA_DIR": "/srv/posture/data",
            "POSTURE_HOST": "127.0.0.1",
            "POSTURE_PORT": str(self.port),
            **env,
        }
        args = [f"--env={key}={value}" for key, value in settings.items()]
        mounts = [f"--volume={volume}" for volume in (f"{home}:{home}:ro", *volumes)]
        docker("run", "-d", "--name", self.name, "--network", "host", *mounts, *args, image)

    def state(self) -> dict[str, Any]:
        return inspect(self.name)["State"]

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.state()["Running"]:
                raise AssertionError(f"the container exited {self.state()['ExitCode']}:\n{self.logs()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"not ready in {timeout_s} s:\n{self.logs()}")

    def wait_health(self, wanted: str = "healthy", timeout_s: float = 90.0) -> str:
        """The image's own HEALTHCHECK, as the engine reports it."""
        deadline = time.monotonic() + timeout_s
        status = ""
        while time.monotonic() < deadline:
            status = self.state().get("Health", {}).get("Status", "")
            if status == wanted:
                break
            time.sleep(0.5)
        return status

    def wait_exit(self, timeout_s: float = 60.0) -> int:
        result = docker("wait", self.name, timeout=timeout_s)
        return int(result.stdout.strip())

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


class Registry:
    """Debian's docker-registry on a free loopback port, storing into ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = folder / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {folder / 'storage'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n"
        )
        self.log_path = folder / "registry.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"docker-registry exited:\n{self.log_path.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://{self.address}/v2/", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"docker-registry did not answer:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited in ``timeout_s``."""
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def image_size_mb(ref: str) -> float:
    return inspect(ref)["Size"] / 1e6


def environment_without(*names: str) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in names}
