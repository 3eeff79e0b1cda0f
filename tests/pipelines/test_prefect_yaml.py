"""prefect.yaml: Prefect's own loader accepts it, its entrypoints import, its parameters
validate against the flows, and `prefect deploy --all` registers it on the real Prefect API."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO


def load_prefect_yaml() -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """What `prefect deploy` reads, through its own loader; and what the loader printed."""
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from rich.console import Console

    printed = io.StringIO()
    configs, actions = _load_deploy_configs_and_actions(REPO / "prefect.yaml", console=Console(file=printed))
    return configs, actions, printed.getvalue()


def by_name(configs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {config["name"]: config for config in configs}


def test_loader_accepts_every_deployment() -> None:
    configs, actions, printed = load_prefect_yaml()
    assert printed == ""  # the loader reports invalid fields and skips the file
    assert set(by_name(configs)) == {"train", "retrain"}
    assert actions["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $POSTURE_HOME }}"}}
    ]
    assert all(config["work_pool"]["name"] == "posture" for config in configs)


@pytest.mark.parametrize("name, flow_name", [("train", "train"), ("retrain", "retrain")])
def test_entrypoints_import_and_parameters_validate(name: str, flow_name: str) -> None:
    from prefect.flows import load_flow_from_entrypoint

    config = by_name(load_prefect_yaml()[0])[name]
    flow = load_flow_from_entrypoint(config["entrypoint"], use_placeholder_flow=False)
    assert flow.name == flow_name
    validated = flow.validate_parameters(config["parameters"])
    assert set(validated) == {"request"}


def test_retrain_schedule_and_concurrency() -> None:
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    retrain = by_name(load_prefect_yaml()[0])["retrain"]
    (schedule,) = [_schedule_config_to_deployment_schedule(s)["schedule"] for s in retrain["schedules"]]
    assert (schedule.cron, schedule.timezone) == ("0 3 * * *", "UTC")
    limit = ConcurrencyLimitConfig(**retrain["concurrency_limit"])
    assert (limit.limit, limit.collision_strategy) == (1, ConcurrencyLimitStrategy.CANCEL_NEW)
    assert retrain["parameters"]["request"]["margin"] == 0.005


async def create_process_pool(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        try:
            await client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


async def read_deployments() -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return {d.name: d for d in await client.read_deployments()}


def test_prefect_deploy_all_registers_both(prefect_api: str, tmp_path: Path) -> None:
    asyncio.run(create_process_pool("posture"))
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "POSTURE_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    deployed = asyncio.run(read_deployments())
    retrain = deployed["retrain"]
    assert [s.schedule.cron for s in retrain.schedules] == ["0 3 * * *"]
    assert retrain.global_concurrency_limit is not None and retrain.global_concurrency_limit.limit == 1
    assert retrain.concurrency_options is not None
    assert retrain.concurrency_options.collision_strategy.value == "CANCEL_NEW"
    assert retrain.entrypoint == "pipelines.retrain.retrain_flow"
    assert deployed["train"].parameters == {"request": {"dataset_dir": "data/datasets/sample"}}
