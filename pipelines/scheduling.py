"""Scheduled retraining without a Prefect server: serve the ``retrain`` deployment from here.

Prefect's temporary API (what other commands start) runs no scheduler service, so scheduled
runs would never be created; ``flow.serve`` refuses schedules on it for that reason. With no
``PREFECT_API_URL`` we therefore start a full local Prefect server (API + services, no UI)
with its own database under ``PREFECT_HOME``, register the deployment with its schedule and
a concurrency limit of one (``CANCEL_NEW``: a run due while one is running is cancelled,
so late runs do not pile up), and let Prefect's runner execute the runs until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from features.errors import PostureError
from pipelines.orchestration import launch_prefect_api, wait_for_api
from pipelines.settings import quiet_offline_environment

DEPLOYMENT = "retrain"
DEFAULT_CRON = "0 3 * * *"
SCHEDULE_DB = "posture-schedule.db"


def make_schedule(cron: str | None, interval_s: float | None, tz: str) -> Any:
    """A Prefect schedule: every ``interval_s`` seconds from now, else ``cron`` in ``tz``."""
    from prefect.schedules import Cron, Interval

    if interval_s is not None:
        if interval_s <= 0:
            raise PostureError(
                f"The retrain interval must be positive, got {interval_s}.",
                "give it in seconds, e.g. 86400.",
                options=("interval_s",),
            )
        return Interval(
            timedelta(seconds=interval_s), anchor_date=datetime.now(timezone.utc).replace(microsecond=0), timezone=tz
        )
    try:
        return Cron(cron or DEFAULT_CRON, timezone=tz)
    except ValueError as err:
        raise PostureError(
            f"Invalid cron schedule {cron!r}: {err}".splitlines()[0],
            'write five fields, e.g. "0 3 * * *".',
            options=("cron",),
        ) from err


def next_runs(schedule: Any, count: int = 3) -> list[datetime]:
    """The next start times, computed by the Prefect server's own schedule code."""
    from prefect.server.schemas import schedules

    if schedule.interval is not None:
        server = schedules.IntervalSchedule(
            interval=schedule.interval, anchor_date=schedule.anchor_date, timezone=schedule.timezone
        )
    else:
        server = schedules.CronSchedule(cron=schedule.cron, timezone=schedule.timezone, day_or=schedule.day_or)
    return list(asyncio.run(server.get_dates(n=count)))


_server: subprocess.Popen[bytes] | None = None


def start_scheduler_api() -> str:
    """The Prefect API to serve against: ``PREFECT_API_URL``, else a local server we start
    (without waiting: ``wait_for_scheduler_api``) and stop at exit.

    Call it before anything imports Prefect: Prefect reads ``PREFECT_API_URL`` once, at import.
    """
    global _server
    quiet_offline_environment()
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    # start_new_session: Ctrl-C reaches only us; the server must outlive the runner's shutdown.
    _server = launch_prefect_api(
        {"PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / SCHEDULE_DB}"}, new_session=True
    )
    return os.environ["PREFECT_API_URL"]


def wait_for_scheduler_api(timeout_s: float = 120.0) -> None:
    """Block until the server ``start_scheduler_api`` started answers (no-op for an external one)."""
    wait_for_api(_server, timeout_s)


def retrain_deployment(schedule: Any, parameters: dict[str, Any]) -> Any:
    """The ``retrain`` deployment: the schedule, one run at a time, new runs cancelled while one runs."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.types.entrypoint import EntrypointType

    from pipelines.retrain import retrain_flow

    return retrain_flow.to_deployment(
        name=DEPLOYMENT,
        schedule=schedule,
        parameters=parameters,
        concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        description="Retrain on new data in the incoming folder; promote the challenger only when it wins.",
        entrypoint_type=EntrypointType.MODULE_PATH,  # runs import the installed package, wherever we stand
    )


def serve_forever(deployment: Any) -> None:
    """What Prefect's ``serve`` does (a Runner that registers the deployment and runs its
    scheduled runs), with Ctrl-C taking the runner's graceful SIGTERM path: in-flight runs are
    cancelled, the schedule is paused, and we return. A second Ctrl-C stops at once."""
    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=True)
    runner.add_deployment(deployment)

    def on_interrupt(*_: Any) -> None:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        runner.handle_sigterm()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        asyncio.run(runner.start())
    finally:
        signal.signal(signal.SIGINT, previous)
