"""Everything one server process runs, started and stopped in order by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING

from pipelines.registry import resolve_model_uri
from serving.settings import ServerSettings
from serving.batcher import MicroBatcher
from serving.drift.monitor import DriftMonitor
from serving.drift.retrain_trigger import RetrainTrigger
from serving.edge.shared import Edge, build_edge
from serving.live_accuracy_watch import watch_live_accuracy
from serving.logs import log_event
from serving.metrics import ServerMetrics
from serving.model_holder import ModelHolder, ServedModel
from serving.prediction_log import PredictionLog
from serving.recording.recorder import Recorder
from serving.store.db import StoreTimeouts, redact
from serving.store.model_stats import ServedStats
from serving.store.prediction_store import PredictionStore
from serving.store.startup import check_at_start, keep_checking
from serving.stream import json_samples
from serving.stream.protocol import CLOSE_GOING_AWAY
from serving.stream.registry import SessionRegistry
from serving.stream.services import SessionServices
from serving.stream.work_limits import WorkLimits

if TYPE_CHECKING:
    from serving.mqtt.bridge import MqttBridge

# gc thresholds: CPython's defaults are (700, 10, 10); see start_runtime.
GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, GC_FULL_THRESHOLD = 700, 10, 1000
STATS_INTERVAL_S = 60.0  # how often running counts go to the store's model_metrics
# The store's writer thread runs Python between its driver calls; with the default 5 ms
# GIL switch interval the event loop waits that long for it whenever numpy drops the GIL.
GIL_SWITCH_INTERVAL_S = 0.001
READY_LIMITS = ("max_frame_bytes", "max_samples_per_frame", "rate_limit_per_s")  # told to stream clients


@dataclass
class Runtime:
    settings: ServerSettings
    metrics: ServerMetrics
    holder: ModelHolder
    batcher: MicroBatcher
    store: PredictionStore
    stats: ServedStats
    edge: Edge  # Redis-shared (or in-process) limits and session state, API-key checks
    sessions: SessionRegistry = field(default_factory=SessionRegistry)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    draining: bool = False  # set at the shutdown signal: /readyz says so, new streams are refused
    bridge: MqttBridge | None = None  # IoT devices over MQTT, when POSTURE_MQTT_URL is set

    @cached_property
    def predictions(self) -> PredictionLog:
        return PredictionLog(self.store, self.stats, self.metrics)

    @cached_property
    def recorder(self) -> Recorder:
        """Labelled recordings of the sessions that ask (POSTURE_RECORDING_ENABLED)."""
        settings = self.settings
        assert settings.recording_dir is not None
        return Recorder(
            settings.recording_enabled,
            settings.recording_dir,
            settings.recording_max_samples,
            settings.anon_key,
            settings.max_gap_s,
        )

    @cached_property
    def session_services(self) -> SessionServices:
        """What every stream session gets, whatever its transport."""
        settings = self.settings
        return SessionServices(
            models=self.holder,
            predictor=self.batcher,
            predictions=self.predictions,
            connections=self.store,
            states=self.edge.session_store,
            registry=self.sessions,
            metrics=self.metrics,
            limiter=self.edge.limiter,
            key_limiter=self.edge.key_limiter,
            limits=WorkLimits.of(settings),
            max_frame_bytes=settings.max_frame_bytes,
            max_gap_s=settings.max_gap_s,
            ready_limits={key: getattr(settings, key) for key in READY_LIMITS},
            recorder=self.recorder,
        )

    async def drain(self) -> None:
        """Stop taking streams and close the open ones with 1001 (going away)."""
        self.draining = True
        if self.bridge is not None:  # first: the frames it has received still reach their sessions
            await self.bridge.stop()
        await self.sessions.close_all(CLOSE_GOING_AWAY, "server shutting down")

    async def stop(self) -> None:
        """Close sessions (1001), finish queued windows, write running counts, flush the store."""
        await self.drain()
        await self.recorder.close_all()  # what sessions still open (or still ending) hold
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.batcher.close()
        self.stats.flush_to(self.store)
        await self.store.close()
        await self.edge.close()
        log_event(
            "server_stopped",
            rows_written=self.store.rows_written,
            backlog=self.store.backlog,
            rows_dropped=self.store.rows_dropped,
        )


async def start_runtime(settings: ServerSettings, model_uri: str | None = None) -> Runtime:
    """Load the model and bring the schema up to date (concurrently), then start the rest."""
    assert settings.database_url is not None and settings.spool_dir is not None
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    metrics = ServerMetrics()
    edge = await build_edge(settings, metrics)
    holder = ModelHolder(settings, resolve_model_uri(model_uri, settings), metrics, alias_cache=edge.alias_cache)
    # A database that is unreachable now does not stop the start: rows spool until it answers.
    _, schema_ready = await asyncio.gather(holder.load(), check_at_start(settings.database_url, settings.auto_migrate))
    store = PredictionStore(
        settings.database_url,
        settings.spool_dir,
        settings.anon_key,
        batch_size=settings.log_batch_size,
        flush_interval_s=settings.log_flush_interval_s,
        timeouts=StoreTimeouts.of(settings),
        schema_ready=schema_ready,
    )
    await store.start()
    metrics.watch_store(store)
    drift = _drift_monitor(settings, metrics, store)
    if drift is not None:
        drift.track(holder.current)  # says now, not at the first batch, when the version has no profile
    batcher = MicroBatcher(metrics, settings.batch_tick_ms / 1000.0, settings.max_batch_windows, drift)
    batcher.start()
    runtime = Runtime(
        settings=settings,
        metrics=metrics,
        holder=holder,
        batcher=batcher,
        store=store,
        stats=ServedStats(),
        edge=edge,
    )
    # The store is the one writer of model_metrics: a version's CV figures go in when it is served.
    holder.on_swap = partial(_record_offline_metrics, store)
    _record_offline_metrics(store, holder.current)
    if not schema_ready:
        checker = keep_checking(settings.database_url, settings.auto_migrate, store)
        runtime.tasks.append(asyncio.create_task(checker, name="store-schema-check"))
    if holder.follows_alias and settings.reload_interval_s > 0:
        runtime.tasks.append(asyncio.create_task(holder.poll_forever(), name="model-reload-poller"))
    runtime.tasks.append(asyncio.create_task(_write_stats_forever(runtime), name="served-stats"))
    runtime.tasks.append(asyncio.create_task(watch_live_accuracy(settings, metrics), name="live-accuracy"))
    if drift is not None:
        runtime.tasks.append(asyncio.create_task(drift.run_forever(), name="drift-scorer"))
    json_samples.warm_up()
    _start_mqtt(runtime)
    served = holder.current
    # Start-up leaves ~300k long-lived objects (MLflow, sklearn, pydantic); moving them out
    # of the collector's reach turns 300 ms full-collection pauses into ~50 ms ones.
    gc.collect()
    gc.freeze()
    # A full collection walks every live object: ~140 per open WebSocket (the ASGI
    # coroutine chain, the protocol's buffers), so ~300k at 2,000 devices and a 150-225 ms
    # pause of the event loop. Short-lived objects that outlive two young collections (rows
    # waiting for the store, batches in flight) count towards the next full one; this makes
    # full collections 100x rarer (they still run: cycles are still freed).
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, GC_FULL_THRESHOLD)
    log_event(
        "server_ready",
        model=served.name,
        version=served.version,
        engine=served.engine.kind,
        database=redact(settings.database_url),
    )
    return runtime


def _drift_monitor(settings: ServerSettings, metrics: ServerMetrics, store: PredictionStore) -> DriftMonitor | None:
    if not settings.drift_enabled:
        log_event("drift_tracking_off", reason="POSTURE_DRIFT_ENABLED is false")
        return None
    trigger = RetrainTrigger(settings.drift_retrain_deployment, settings.drift_retrain_interval_s, metrics)
    return DriftMonitor(settings, metrics, store.add_drift_scores, trigger)


def _start_mqtt(runtime: Runtime) -> None:
    """The MQTT bridge, when ``POSTURE_MQTT_URL`` names a broker (paho is imported only then)."""
    from serving.mqtt.settings import MqttSettings

    mqtt = MqttSettings()  # type: ignore[call-arg]  # pydantic-settings fills the fields
    if not mqtt.url:
        return
    from serving.mqtt.bridge import MqttBridge

    settings = runtime.settings
    runtime.bridge = MqttBridge(
        runtime.session_services, mqtt, runtime.metrics, settings.max_frame_bytes, settings.max_samples_per_frame
    )
    runtime.bridge.start()


def _record_offline_metrics(store: PredictionStore, served: ServedModel) -> None:
    """The CV figures the version was registered with, one model_metrics row each."""
    loaded = served.loaded
    if loaded.offline_metrics:
        store.add_model_metrics(served.name, served.version, loaded.offline_metrics, loaded.offline_dataset)


async def _write_stats_forever(runtime: Runtime) -> None:
    while True:
        await asyncio.sleep(STATS_INTERVAL_S)
        runtime.stats.flush_to(runtime.store)
