"""The deployment files, parsed (no Docker engine here) and checked for what matters: the
shipped nginx config passes `nginx -t`, compose runs two instances behind nginx with every
service health-checked, the image runs as non-root, alert rules and dashboard panels use
metric names the server really exports, and CI tests, publishes on tags and deploys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.render_nginx import VARIABLE, EdgeConfig, render
from tests.conftest import REPO
from tests.deploy.deploy_support import (
    exported_metric_names,
    nginx_folder,
    nginx_test,
    promql_metrics,
    write_config,
)

DEPLOY = REPO / "deploy"
APP_SERVICES = ("app1", "app2")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(DEPLOY / "compose.yaml")


@pytest.fixture(scope="module")
def metric_names() -> set[str]:
    return exported_metric_names() | {"up"}  # `up` is Prometheus's own, per scrape target


def test_promql_metrics_finds_the_metric_names() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(x_bucket{path="/v1"}[5m]))) / clamp_min(sum(y_total), 1e-9) > 0.2'
    )
    assert promql_metrics(expr) == {"x_bucket", "y_total"}


def test_shipped_nginx_config_passes_nginx_t() -> None:
    with nginx_folder() as folder:
        main = write_config(folder, ["127.0.0.1:18001", "127.0.0.1:18002"], 18080, 18443)
        checked = nginx_test(main)
        site = (folder / "posture.conf").read_text()
    assert checked.returncode == 0, checked.stderr
    assert "server 127.0.0.1:18001 max_fails=2 fail_timeout=10s;" in site and "${" not in site


def test_nginx_template_has_the_edge_features() -> None:
    template = (DEPLOY / "nginx" / "posture.conf.template").read_text()
    for directive in (
        "return 301 https://",
        "ssl_certificate ",
        "proxy_set_header Upgrade $http_upgrade",
        "proxy_read_timeout 75s",
        "proxy_next_upstream error timeout",
        "keepalive ",
        "gzip on",
        "client_max_body_size",
        "Strict-Transport-Security",
        "X-Content-Type-Options",
        "X-Frame-Options",
        "Referrer-Policy",
        "Content-Security-Policy",
        "connect-src 'self' wss://",
        "root ${POSTURE_STATIC_ROOT}",
    ):
        assert directive in template, directive
    # The stream's read timeout outlasts the heartbeat (20 s) with room for a lost ping.
    assert int(re.search(r"proxy_read_timeout (\d+)s;\s*proxy_send", template).group(1)) > 2 * 20


def test_render_refuses_a_missing_variable() -> None:
    variables = EdgeConfig(upstreams=["a:1"], cert=Path("c"), key=Path("k")).variables()
    del variables["POSTURE_TLS_KEY"]
    with pytest.raises(KeyError, match="POSTURE_TLS_KEY"):
        render(variables)


def test_compose_runs_two_instances_behind_nginx(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"nginx", *APP_SERVICES, "postgres", "redis", "mlflow", "prometheus", "grafana"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert (
            env["POSTURE_DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in env["POSTURE_DATABASE_URL"]
        )
        assert env["POSTURE_REDIS_URL"].startswith("redis://redis:") and env["POSTURE_API_KEYS_REQUIRED"] == "true"
        assert "/readyz" in " ".join(services[name]["healthcheck"]["test"])
    spools = [services[name]["volumes"][0].split(":")[0] for name in APP_SERVICES]
    assert len(set(spools)) == len(APP_SERVICES)  # each instance spools to its own volume
    nginx = services["nginx"]
    assert set(nginx["depends_on"]) == set(APP_SERVICES)
    assert all(dep["condition"] == "service_healthy" for dep in nginx["depends_on"].values())
    assert {"80:80", "443:443"} <= set(nginx["ports"])
    assert "mlflow" in services["mlflow"]["entrypoint"]
    assert any(arg.startswith("--backend-store-uri=postgresql") for arg in services["mlflow"]["command"])


def test_compose_nginx_renders_the_template_with_every_variable(compose: dict[str, Any]) -> None:
    nginx = compose["services"]["nginx"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in nginx["volumes"]}
    assert mounts["/etc/nginx/templates/default.conf.template"] == "./nginx/posture.conf.template"
    template = (DEPLOY / "nginx" / "posture.conf.template").read_text()
    env = nginx["environment"]
    assert set(VARIABLE.findall(template)) <= set(env)
    site = render({key: str(value) for key, value in env.items()})
    for app in APP_SERVICES:
        assert f"server {app}:8000 max_fails=" in site
    assert mounts[env["POSTURE_STATIC_ROOT"]] == "../serving/static"


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and "${" not in source:
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


def test_dockerfile_is_multi_stage_small_and_non_root() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) >= 2 and all(" AS " in lines[i] for i in stages)
    final = lines[stages[-1] :]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK") for line in final)
    assert any(line.startswith("COPY --from=deps") for line in final)  # built elsewhere, copied in
    assert not any(re.match(r"COPY \.\s", line) for line in final)  # no sources in the runtime image
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data", "mlflow", "tests"} <= set(ignored)


def test_prometheus_scrapes_the_instances_and_alerts_on_real_metrics(
    compose: dict[str, Any], metric_names: set[str]
) -> None:
    config = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = config["scrape_configs"]
    assert sorted(job["static_configs"][0]["targets"]) == [f"{app}:8000" for app in APP_SERVICES]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["prometheus"]["volumes"]}
    config_dir = Path(next(path for path in mounts if path.endswith("/prometheus.yml"))).parent
    assert all(mounts.get(str(config_dir / path)) for path in config["rule_files"])  # relative to the config
    rules = {
        rule["alert"]: rule["expr"]
        for group in load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
        for rule in group["rules"]
    }
    for expr in rules.values():
        assert promql_metrics(expr) <= metric_names, expr
    assert "up" in promql_metrics(rules["PostureInstanceDown"])
    assert "5.." in rules["PostureHighErrorRate"]
    assert "rest_server_request_duration_seconds_bucket" in promql_metrics(rules["PostureHighLatency"])
    assert "prediction_log_backlog" in promql_metrics(rules["PosturePredictionLogBacklog"])


def test_grafana_dashboard_panels_use_real_metrics(metric_names: set[str]) -> None:
    sources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "posture.yaml")["datasources"]
    uids = {source["uid"]: source["type"] for source in sources}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "posture.json").read_text())
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "posture.yaml")["providers"][0]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    seen: set[str] = set()
    rows: dict[str, set[str]] = {}  # a row's title -> the metrics of the panels under it
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            rows[panel["title"]] = set()
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] in uids
        for target in panel["targets"]:
            if uids[panel["datasource"]["uid"]] == "prometheus":
                names = promql_metrics(target["expr"])
                assert names and names <= metric_names, target["expr"]
                seen |= names
                if rows:
                    rows[list(rows)[-1]] |= names
            else:
                assert "FROM predictions" in target["rawSql"]
    for wanted in (
        "rest_server_requests_total",
        "request_predict_seconds_bucket",
        "websocket_sessions_open",
        "prediction_log_backlog",
        "model_predictions_total",
        "batch_request_size_bucket",
    ):
        assert wanted in seen
    # The MQTT row (issue 17): messages in and out, decode errors, connection, reconnects, partitions.
    assert {
        "mqtt_messages_total",
        "mqtt_decode_errors_total",
        "mqtt_connected",
        "mqtt_reconnects_total",
        "mqtt_partition_messages_total",
    } <= rows["IoT over MQTT"]


def test_ci_workflow_tests_publishes_on_tags_and_deploys() -> None:
    workflow = load_yaml(REPO / ".github" / "workflows" / "ci.yml")
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "v*" in triggers["push"]["tags"] and "pull_request" in triggers
    jobs = workflow["jobs"]
    assert any("bash .ci/run" in step.get("run", "") for step in jobs["test"]["steps"])
    image = jobs["image"]
    assert image["needs"] == "test" and "refs/tags/v" in image["if"]
    assert image["permissions"]["packages"] == "write"
    assert any(step.get("with", {}).get("registry") == "ghcr.io" for step in image["steps"])
    # build, test, push: in that order, and the test is the image's smoke script
    steps = [step.get("name", step.get("uses", "")) for step in image["steps"]]
    build = next(i for i, step in enumerate(image["steps"]) if step.get("with", {}).get("load") is True)
    test = next(i for i, step in enumerate(image["steps"]) if "deploy/smoke_image.sh" in step.get("run", ""))
    push = next(i for i, step in enumerate(image["steps"]) if step.get("with", {}).get("push") is True)
    assert build < test < push, steps
    assert (REPO / "deploy" / "smoke_image.sh").exists()
    assert "--privileged" in jobs["test"]["container"]["options"]  # the Docker tests start dockerd
    deploy = jobs["deploy"]
    assert deploy["needs"] == "image" and "self-hosted" in deploy["runs-on"]
    assert deploy["env"]["POSTURE_IMAGE"].endswith("@${{ needs.image.outputs.digest }}")  # deployed by digest
    assert image["outputs"]["digest"] == "${{ steps.push.outputs.digest }}"
    assert any("compose" in step.get("run", "") and "up -d" in step.get("run", "") for step in deploy["steps"])
