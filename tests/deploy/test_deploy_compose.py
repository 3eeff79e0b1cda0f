"""Compose validates deploy/compose.yaml: `docker compose config` where the v2 plugin is
installed, else Debian's `docker-compose` (1.29), with the variables the docs tell people to
export; without a required secret it refuses, naming the variable. (Grafana's, nginx's and
PostgreSQL's images cannot be pulled here, so the stack itself is not started: the image tests
run the posture image, the Prometheus tests Debian's Prometheus.)"""

from __future__ import annotations

import os
import shutil
import subprocess

import yaml

from tests.conftest import REPO

COMPOSE_FILE = REPO / "deploy" / "compose.yaml"
SECRETS = {"POSTGRES_PASSWORD": "pg-secret", "POSTURE_ANON_KEY": "anon-secret", "GRAFANA_ADMIN_PASSWORD": "gf-secret"}


def compose_command() -> list[str]:
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    if plugin.returncode == 0:
        return ["docker", "compose"]
    standalone = shutil.which("docker-compose")
    assert standalone, "neither `docker compose` nor `docker-compose`: run `make services`"
    return [standalone]


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key not in SECRETS and not key.startswith("POSTURE_")}
    return subprocess.run(
        [*compose_command(), "-p", "posture", "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


def test_compose_config_validates_the_file() -> None:
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    services = resolved["services"]
    assert {"app1", "app2", "nginx", "postgres", "redis", "mlflow", "prometheus", "grafana"} <= set(services)
    app = services["app1"]
    assert app["environment"]["POSTURE_DATABASE_URL"] == "postgresql://posture:pg-secret@postgres:5432/posture"
    assert app["build"]["args"]["BASE_IMAGE"].startswith("python:3.11-slim")
    for name in ("prometheus", "grafana"):  # the monitoring UIs are published on loopback only
        assert all(host_ip(port) == "127.0.0.1" for port in services[name]["ports"]), services[name]


def host_ip(port: str | dict[str, str]) -> str:
    """A published port's address: "127.0.0.1:9090:9090" (Compose 1) or {host_ip: ...} (Compose 2)."""
    return port.get("host_ip", "") if isinstance(port, dict) else port.rpartition(":")[0].rpartition(":")[0]


def test_compose_refuses_a_missing_secret_by_name() -> None:
    result = compose_config({key: value for key, value in SECRETS.items() if key != "POSTGRES_PASSWORD"})
    assert result.returncode != 0 and "set POSTGRES_PASSWORD" in result.stderr, result.stderr
