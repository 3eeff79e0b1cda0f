"""The release flow of the seed on one machine, by deploy/release_local.sh (what the GitHub
workflow does on a tag): build the image, test it (it trains a model with `posture train`,
serves it as its non-root user and predicts), push it to a local registry (Debian's
docker-registry on a loopback port), pull it back by digest and deploy that digest, which
turns healthy and serves."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.deploy.docker_support import Registry, docker, inspect, shared_folder
from tests.serving.serving_support import free_port
from tests.serving.store.store_helpers import pg_url, throwaway_database


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    running = Registry(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_release_pushes_pulls_by_digest_and_deploys(image: str, registry: Registry) -> None:
    name, port, version = f"posture-release-{uuid.uuid4().hex[:8]}", free_port(), f"release-test-{os.getpid()}"
    reference = ""
    with shared_folder("posture-release-") as folder, throwaway_database() as database:
        env = {
            **os.environ,
            "POSTURE_RELEASE_REGISTRY": registry.address,
            "POSTURE_RELEASE_NAME": name,
            "POSTURE_RELEASE_VERSION": version,
            "POSTURE_RELEASE_PORT": str(port),
            "POSTURE_MODEL_HOME": str(folder / "model"),  # empty: the image trains one
            "POSTURE_DATABASE_URL": pg_url(database),
        }
        try:
            result = subprocess.run(
                ["bash", str(REPO / "deploy" / "release_local.sh")],
                capture_output=True,
                text=True,
                env=env,
                timeout=1500,
            )
            assert result.returncode == 0, result.stdout + result.stderr[-6000:]
            reference = result.stdout.strip().splitlines()[-1]
            repository, _, digest = reference.partition("@")
            assert repository == f"{registry.address}/posture" and digest.startswith("sha256:"), reference
            # The registry holds that manifest under that digest.
            manifest = httpx.head(
                f"http://{registry.address}/v2/posture/manifests/{digest}",
                headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
            )
            assert manifest.status_code == 200 and manifest.headers["Docker-Content-Digest"] == digest
            # The deployed container runs that digest, as the non-root user, healthy and ready.
            deployed = inspect(name)
            assert deployed["Config"]["Image"] == reference and deployed["Config"]["User"] == "posture"
            assert deployed["State"]["Health"]["Status"] == "healthy"
            assert deployed["HostConfig"]["NetworkMode"] == "host"
            assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
            assert deployed["Image"] == inspect(f"posture:{version}")["Id"]  # what the flow built, byte for byte
            # The model was made by `posture train` inside the image, as its user (uid 10001).
            assert (folder / "model" / "mlflow" / "mlflow.db").stat().st_uid == 10001
        finally:
            docker("rm", "-f", name, check=False)
            docker("volume", "rm", "-f", f"{name}-data", check=False)
            # The tag and the pulled reference only: the layers are the test image's.
            docker("rmi", f"posture:{version}", *([reference] if reference else []), check=False)
