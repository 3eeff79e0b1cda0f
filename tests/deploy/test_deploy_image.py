"""The image for real: built from the Dockerfile on the local Debian base, run with host
networking (all traffic on loopback) against the real PostgreSQL and a model made by
`posture train`. It serves HTTP and WebSocket predictions, flushes every row on `docker stop`,
runs as its non-root user, turns healthy, and refuses a bad database URL in one line."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
from sqlalchemy import text

from serving.store.db import make_engine
from tests.conftest import REPO
from tests.deploy.docker_support import Container, docker, image_size_mb, inspect
from tests.serving.serving_support import CHANNELS, expected_windows, json_frames, recording, stream
from tests.serving.store.store_helpers import pg_url, throwaway_database

ANON_KEY = {"POSTURE_ANON_KEY": "deploy-test-key"}


def test_dockerfile_takes_its_base_as_an_argument_defaulting_to_the_public_image() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim", dockerfile, re.M)
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert "${BASE_IMAGE}" in froms and not any(ref.startswith("python:") for ref in froms)


def test_image_from_the_local_base_has_the_layout(image: str, base_image: str) -> None:
    config = inspect(image)["Config"]
    assert config["User"] == "posture" and config["Entrypoint"] == ["posture"] and config["Cmd"] == ["serve"]
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])
    probe = docker(
        "run",
        "--rm",
        "--network",
        "host",
        "--entrypoint",
        "sh",
        image,
        "-c",
        'id -u; python -c "import sys; print(sys.version_info[:2])"; . /etc/os-release; echo $VERSION_CODENAME; '
        'ls "$NUMBA_CACHE_DIR"/*/*.nbi | wc -l; command -v pg_dump; posture --help | grep -c serve',
    ).stdout.split()
    uid, major, minor, codename, numba_index_files, pg_dump, serve_in_help = probe
    assert uid == "10001" and (major, minor) == ("(3,", "11)") and codename == "bookworm"
    assert int(numba_index_files) >= 1  # the featurizer compiled at build time, not at each start
    assert pg_dump.endswith("/pg_dump") and int(serve_in_help) >= 1
    print(f"image {image}: {image_size_mb(image):.0f} MB; base {base_image}: {image_size_mb(base_image):.0f} MB")


def test_container_serves_streams_turns_healthy_and_flushes_on_docker_stop(image: str, model_home: Path) -> None:
    frame = recording(model_home, "s01-mixed-1", seconds=10)  # 500 samples: 9 windows
    with throwaway_database() as database:
        # A named volume on data/, as compose mounts one for each instance's spool.
        volume = f"posture-test-data-{database}"
        env = {"POSTURE_DATABASE_URL": pg_url(database), **ANON_KEY}
        container = Container(image, model_home, env, volumes=(f"{volume}:/srv/posture/data",))
        try:
            container.wait_ready()
            ready = httpx.get(f"{container.url}/readyz").json()
            assert ready["status"] == "ready" and ready["database"] == "ok", ready
            answer = httpx.post(
                f"{container.url}/v1/predict",
                json={"samples": frame[CHANNELS].to_numpy().tolist(), "rate_hz": 50, "device_id": "phone-1"},
            )
            assert answer.status_code == 200, answer.text
            http_rows = len(answer.json()["predictions"])
            hello = {"device_id": "phone-2", "rate_hz": 50, "channels": CHANNELS}
            _, streamed, errors = asyncio.run(
                stream(container.ws_url, list(json_frames(frame, 50)), hello, expect=expected_windows(len(frame)))
            )
            assert http_rows == len(streamed) == expected_windows(len(frame)) and not errors
            assert docker("exec", container.name, "id", "-un").stdout.strip() == "posture"
            assert container.wait_health("healthy") == "healthy", container.state().get("Health")
            docker("stop", "--time", "40", container.name, timeout=60)  # SIGTERM, then the grace period
            state = container.state()
            logs = container.logs()
        finally:
            container.remove()
            docker("volume", "rm", "-f", volume, check=False)
        rows = count_rows(pg_url(database))
    assert state["ExitCode"] == 0, logs
    assert rows == http_rows + len(streamed), logs  # every response is a row, none lost at the stop
    assert '"event": "server_stopped"' in logs and '"rows_dropped": 0' in logs


def test_container_with_a_bad_database_url_exits_with_one_clear_line(image: str, model_home: Path) -> None:
    # A database that does not exist: waiting cannot fix it, so the start fails. (An unreachable
    # server is an outage instead: the instance starts degraded and spools, serving/store/startup.py.)
    bad = "postgresql://postgres@127.0.0.1:5432/posture_no_such_database"
    container = Container(image, model_home, {"POSTURE_DATABASE_URL": bad, **ANON_KEY})
    try:
        code = container.wait_exit(timeout_s=120)
        lines = [line for line in container.logs().splitlines() if line.strip()]
    finally:
        container.remove()
    assert code != 0
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("error: ") and bad in line and "POSTURE_DATABASE_URL" in line


def count_rows(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM predictions")).scalar_one()
    finally:
        engine.dispose()
