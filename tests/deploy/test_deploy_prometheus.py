"""Prometheus for real: promtool checks the repository's config and alert rules and runs their
unit tests (deploy/prometheus/alerts_test.yml); Debian's Prometheus runs that config against
two live `posture serve` instances on loopback ports and holds posture's series from both; the
Grafana dashboard queries only metric names that a live server's /metrics declares."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO
from tests.deploy.deploy_support import metric_names_in, promql_metrics
from tests.deploy.docker_support import stop_process
from tests.serving.serving_support import CHANNELS, ServerProcess, free_port, recording

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# The alerts the rule unit tests must exercise (each with at least one expected firing).
TESTED_ALERTS = {
    "PosturePredictionRowsDropped",
    "PosturePredictionLogBacklog",
    "PostureNotReady",
    "PostureHighLatency",
    "PostureDriftAlarm",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_config_and_the_rules() -> None:
    config = promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert config.returncode == 0 and "SUCCESS" in config.stdout + config.stderr, config.stdout + config.stderr
    rules = promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert rules.returncode == 0 and "SUCCESS" in rules.stdout + rules.stderr, rules.stdout + rules.stderr


def test_promtool_rule_unit_tests_pass_and_cover_the_alerts() -> None:
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    firing = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert TESTED_ALERTS <= firing
    result = promtool("test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert result.returncode == 0 and "SUCCESS" in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.fixture(scope="module")
def two_instances(model_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    folder = tmp_path_factory.mktemp("instances")
    servers = [ServerProcess(model_home, folder / f"app{i}") for i in (1, 2)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


class Prometheus:
    """Debian's prometheus with the repository's config: the same file, its targets pointed at
    the loopback instances and its intervals at 1 s (15 s in production) so a test waits seconds."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        (job,) = config["scrape_configs"]
        job["static_configs"] = [{"targets": targets}]
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        for rule_file in config["rule_files"]:
            shutil.copy(PROMETHEUS_DIR / rule_file, folder / rule_file)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = folder / "prometheus.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.wait(lambda: httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200, "ready")

    def wait(self, condition: Any, what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"prometheus exited:\n{self.log_path.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if condition():
                    return
            time.sleep(0.5)
        raise AssertionError(f"prometheus: not {what} in {timeout_s} s:\n{self.log_path.read_text()[-3000:]}")

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5.0).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


def test_prometheus_scrapes_both_instances_and_evaluates_the_rules(
    two_instances: list[ServerProcess], model_home: Path, tmp_path: Path
) -> None:
    samples = recording(model_home, "s01-mixed-1", seconds=10)[CHANNELS].to_numpy().tolist()
    for server in two_instances:  # some traffic, so the request and prediction series exist
        answer = httpx.post(f"{server.url}/v1/predict", json={"samples": samples, "rate_hz": 50})
        assert answer.status_code == 200, answer.text
    targets = [server.url.removeprefix("http://") for server in two_instances]
    prometheus = Prometheus(tmp_path, targets)
    try:
        prometheus.wait(lambda: len(prometheus.query('up{job="posture"} == 1')) == 2, "scraping both instances")
        for series in (
            'model_info{job="posture", alias="champion"}',
            'prediction_log_rows_dropped_total{job="posture"}',
            'rest_server_requests_total{job="posture", path="/v1/predict", status_code="200"}',
            'model_predictions_total{job="posture", source="http"}',
        ):
            found = {result["metric"]["instance"] for result in prometheus.query(series)}
            assert found == set(targets), (series, found)
        dropped = prometheus.query("sum(prediction_log_rows_dropped_total)")
        assert float(dropped[0]["value"][1]) == 0
        groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
        alerts = {rule["alert"] for group in groups for rule in group["rules"]}
        assert {rule["name"] for rule in rules_of(prometheus)} == alerts
        # Every rule evaluated without an error (a bad expression or a vector match would show).
        prometheus.wait(lambda: all(rule["health"] == "ok" for rule in rules_of(prometheus)), "evaluating the rules")
        # Both instances are healthy and serve a model: no alert is even pending.
        assert httpx.get(f"{prometheus.url}/api/v1/alerts").json()["data"]["alerts"] == []
    finally:
        prometheus.stop()


def rules_of(prometheus: Prometheus) -> list[dict[str, Any]]:
    groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=5.0).json()["data"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_dashboard_queries_only_metrics_a_live_server_exports(two_instances: list[ServerProcess]) -> None:
    exported = metric_names_in(httpx.get(f"{two_instances[0].url}/metrics").text) | {"up"}
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "posture.json").read_text())
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):  # a row has none
            if "expr" in target:
                queried |= promql_metrics(target["expr"])
    assert queried and queried <= exported, sorted(queried - exported)
