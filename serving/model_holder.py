"""The model being served, and hot reload when the registry alias it follows moves.

``holder.current`` is replaced in one assignment, so every batch is predicted by exactly
one version and carries that version; a swap never interrupts a stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from features.drift_profile import PROFILE_FILE, DriftProfile, DriftProfileError
from features.feature_sets import featurize, window_contexts
from features.smoothing import ForwardFilter
from features.spec import WindowSpec
from pipelines.model_cache import ResolutionCache
from pipelines.registry import LoadedModel, connect, describe_uri, load_model
from serving.settings import ServerSettings
from serving.edge.redis_state import AliasCache
from serving.logs import log_event
from serving.metrics import ServerMetrics


@dataclass(frozen=True, eq=False)
class ServedModel:
    """A loaded model version with its inference engine."""

    loaded: LoadedModel
    engine: Any  # pipelines.inference.InferenceEngine: ONNX Runtime, else sklearn
    drift_profile: DriftProfile | None = None  # the reference of drift tracking; None: not tracked

    @property
    def name(self) -> str:
        return self.loaded.name or self.loaded.uri

    @property
    def version(self) -> str:
        return self.loaded.version or "local"

    @property
    def spec(self) -> WindowSpec:
        return self.loaded.spec

    @property
    def classes(self) -> tuple[str, ...]:
        return self.engine.classes

    @cached_property
    def smoother(self) -> ForwardFilter:
        """The causal filter behind a stream's ``smoothed_*`` fields (``predict --smooth``'s)."""
        return ForwardFilter.for_spec(self.spec)

    def describe(self) -> dict[str, Any]:
        """What /v1/models and the stream's ready message say about this version."""
        spec = self.spec.to_dict() | {"window_samples": self.spec.window_samples, "hop_samples": self.spec.hop_samples}
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.loaded.alias,
            "uri": self.loaded.uri,
            "engine": self.engine.kind,
            "classes": list(self.classes),
            "spec": spec,
            "loaded_at": self.loaded.loaded_at.isoformat(),
        }


def load_served(uri: str, settings: ServerSettings) -> ServedModel:
    """Blocking: fetch the version ``uri`` points at and build its engine now, not mid-batch."""
    loaded = load_model(uri, settings)
    served = ServedModel(loaded, loaded.engine, read_drift_profile(loaded))
    _warm_up(served)
    return served


def read_drift_profile(loaded: LoadedModel) -> DriftProfile | None:
    """The version's reference profile (beside spec.json); None when it has none or it is unreadable."""
    path = loaded.local_dir / "extra_files" / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        return DriftProfile.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, DriftProfileError) as err:
        log_event("drift_profile_unreadable", logging.WARNING, uri=loaded.uri, version=loaded.version, error=str(err))
        return None


def _warm_up(served: ServedModel) -> None:
    """Predict one still window of a stream and smooth it, so that no request or frame pays
    the first call's set-up.

    The first ``featurize``, ``window_contexts`` and smoothing step in a process load their
    compiled kernels (numba: ~0.3 s from its cache, seconds on a machine's very first run);
    the engine builds its own state on its first call too.
    """
    spec = served.spec
    still = np.zeros((1, spec.window_samples, len(spec.channels)), dtype=np.float32)
    probabilities = served.engine.predict_proba(featurize(still, spec, window_contexts(still, spec)))
    belief = served.smoother.step(None, probabilities[0])  # a stream's first window, then the next
    served.smoother.step(belief, probabilities[0])


class ModelHolder:
    """Holds the served model; polls the registry and swaps when the alias moves."""

    def __init__(
        self,
        settings: ServerSettings,
        uri: str,
        metrics: ServerMetrics,
        loader: Callable[[str, ServerSettings], ServedModel] = load_served,
        alias_cache: AliasCache | None = None,
    ) -> None:
        self.settings, self.uri, self.metrics = settings, uri, metrics
        self._loader = loader
        self._alias_cache = alias_cache  # shared through Redis: one registry look-up per TTL for all instances
        self._current: ServedModel | None = None
        self._client: Any = None
        self.on_swap: Callable[[ServedModel], None] | None = None  # told of each version swapped in

    @property
    def current(self) -> ServedModel:
        if self._current is None:
            raise RuntimeError("no model loaded yet")
        return self._current

    @property
    def loaded(self) -> bool:
        return self._current is not None

    @property
    def follows_alias(self) -> bool:
        return "@" in self.uri and self.uri.startswith("models:/")

    async def load(self) -> ServedModel:
        """Load the version the URI points at now (in a thread: MLflow and file I/O block)."""
        served = await asyncio.to_thread(self._loader, self.uri, self.settings)
        self._swap(served, "model_loaded")
        return served

    async def poll_forever(self) -> None:
        """Every ``reload_interval_s``: reload when the alias points at another version."""
        while True:
            await asyncio.sleep(self.settings.reload_interval_s)
            try:
                await self.check_once()
            except Exception as err:  # a registry hiccup must not stop the polling
                self.metrics.reloads.labels("failed").inc()
                log_event("model_reload_failed", logging.WARNING, uri=self.uri, error=str(err))

    async def check_once(self) -> bool:
        """Swap in the alias's version when it differs from the served one; True when swapped."""
        if self._alias_cache is None:
            version = await asyncio.to_thread(self._alias_version)
        else:
            version = await self._alias_cache.version(self.uri, lambda: asyncio.to_thread(self._alias_version))
        if version is None or version == self.current.version:
            return False
        served = await asyncio.to_thread(self._loader, self.uri, self.settings)
        if served.version == self.current.version:  # moved back meanwhile
            return False
        previous = self.current.version
        self._swap(served, "model_reloaded", previous_version=previous)
        self.metrics.reloads.labels("ok").inc()
        return True

    def _alias_version(self) -> str | None:
        """The version the alias names now. While a SQLite store has not changed since the
        last look-up, the model cache's answer stands (``pipelines.model_cache``): MLflow's
        import and store cost ~1 s of CPU, which a poll's thread would otherwise take from
        the event loop's GIL 10 s after every start."""
        assert self.settings.mlflow_tracking_uri is not None
        known = ResolutionCache(self.settings.mlflow_tracking_uri).lookup(self.uri)
        if known is not None:
            return known.version
        if self._client is None:
            self._client = connect(self.settings)
        return describe_uri(self._client, self.uri)[1]

    def _swap(self, served: ServedModel, event: str, **fields: Any) -> None:
        old = self._current
        self._current = served  # the atomic swap: readers take this reference once per batch
        if old is not None:
            self.metrics.model_info.remove(old.name, old.version, old.loaded.alias or "", old.engine.kind)
        self.metrics.model_info.labels(served.name, served.version, served.loaded.alias or "", served.engine.kind).set(
            1
        )
        log_event(
            event,
            model=served.name,
            version=served.version,
            alias=served.loaded.alias,
            engine=served.engine.kind,
            **fields,
        )
        if self.on_swap is not None:
            self.on_swap(served)
