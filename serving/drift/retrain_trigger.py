"""Start a run of the ``retrain`` deployment when drift is sustained, at most once per interval.

Prefect is imported only here, inside the call, and only when an alarm asks for a run: the
server never loads it otherwise. Without a Prefect API (``PREFECT_API_URL``) there is no
deployment to run, and the alarm only logs and sets its gauge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from serving.logs import log_event
from serving.metrics import ServerMetrics


def start_retrain_run(deployment: str, reason: dict[str, Any]) -> str | None:
    """Blocking: create a run of ``deployment`` ("flow/deployment") now; its id, or None without an API."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None
    from prefect.deployments import run_deployment

    # timeout=0: create the run and return; a worker (or `posture schedule`) executes it.
    run: Any = run_deployment(name=deployment, timeout=0, tags=["drift"])  # sync here: no running loop
    log_event("drift_retrain_requested", deployment=deployment, flow_run=str(run.id), **reason)
    return str(run.id)


class RetrainTrigger:
    def __init__(
        self,
        deployment: str,
        interval_s: float,
        metrics: ServerMetrics,
        start: Callable[[str, dict[str, Any]], str | None] = start_retrain_run,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.deployment, self.interval_s, self.metrics = deployment, interval_s, metrics
        self._start, self._clock = start, clock
        self._last: float | None = None  # when a run was last started (or found impossible)

    async def request(self, reason: dict[str, Any]) -> str | None:
        """Start a run unless one was started less than ``interval_s`` ago; the run's id when started."""
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            self.metrics.drift_retrains.labels("rate_limited").inc()
            return None
        try:
            run_id = await asyncio.to_thread(self._start, self.deployment, reason)
        except Exception as err:  # the API is down or refuses: try again at the next scoring
            self.metrics.drift_retrains.labels("failed").inc()
            log_event("drift_retrain_failed", logging.WARNING, deployment=self.deployment, error=str(err))
            return None
        self._last = now
        if run_id is None:
            self.metrics.drift_retrains.labels("no_api").inc()
            log_event("drift_retrain_skipped", deployment=self.deployment, reason="no Prefect API (PREFECT_API_URL)")
            return None
        self.metrics.drift_retrains.labels("started").inc()
        return run_id
