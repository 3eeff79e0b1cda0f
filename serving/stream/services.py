"""What a stream session needs from the server, handed to it rather than looked up.

``SessionServices`` is built once per server (``Runtime.session_services``) and shared by
every session, whatever its transport; each session gets its own ``Admission`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from serving.batcher import WindowBatch
from serving.edge.ratelimit import RateLimiter
from serving.metrics import ServerMetrics
from serving.model_holder import ServedModel
from serving.prediction_log import PredictionLog
from serving.recording.recorder import Recorder
from serving.store.records import ConnectionRecord
from serving.stream.ids import random_id
from serving.stream.registry import SessionRegistry
from serving.edge.session_states import SessionStore
from serving.stream.work_limits import WorkLimits


@dataclass(frozen=True)
class Peer:
    """Who is on the other end: the transport (the store's ``source``, the metrics' label),
    the client's address, the API key's name and scopes (None when keys are not required)."""

    source: str
    address: str | None
    api_key: str | None = None
    scopes: frozenset[str] | None = None


class Models(Protocol):
    @property
    def current(self) -> ServedModel: ...


class Predictor(Protocol):
    async def submit(self, windows: np.ndarray, contexts: np.ndarray, served: ServedModel) -> np.ndarray: ...

    def predict_now(self, parts: Sequence[WindowBatch]) -> list[np.ndarray | Exception]: ...


class ConnectionLog(Protocol):
    def add_connection(self, record: ConnectionRecord) -> None: ...


class Admission:
    """Rate limits of one connection: its own bucket, its address's and its API key's."""

    def __init__(self, limiter: RateLimiter, key_limiter: RateLimiter, peer: Peer, metrics: ServerMetrics) -> None:
        self.connection = random_id()  # also the owner of the session's saved state
        self._limiter, self._key_limiter = limiter, key_limiter
        self._keys = (f"session:{self.connection}", f"address:{peer.address}")
        self._api_key = None if peer.api_key is None else f"key:{peer.api_key}"
        self._refused = metrics.rate_limited.labels(peer.source)

    async def allow(self, cost: float = 1.0) -> bool:
        limiter = self._limiter
        if (
            await limiter.allow(self._keys[0], cost)
            and await limiter.allow(self._keys[1], cost)
            and (self._api_key is None or await self._key_limiter.allow(self._api_key, cost))
        ):
            return True
        self._refused.inc()
        return False

    async def forget(self) -> None:
        await self._limiter.forget(self._keys[0])


@dataclass(frozen=True)
class SessionServices:
    models: Models  # the model in force (hot-reloaded)
    predictor: Predictor  # the micro-batcher
    predictions: PredictionLog  # store rows, counts, running stats
    connections: ConnectionLog  # the connections table
    states: SessionStore  # saved state, so a client can resume (Redis when configured)
    registry: SessionRegistry  # open sessions, closed at shutdown
    metrics: ServerMetrics
    limiter: RateLimiter  # per connection and per address
    key_limiter: RateLimiter  # per API key
    limits: WorkLimits
    max_frame_bytes: int
    max_gap_s: float
    ready_limits: dict[str, float]  # told to the client in the ready event
    recorder: Recorder | None = None  # labelled recordings into the incoming folder; None: recording is off

    def admission(self, peer: Peer) -> Admission:
        return Admission(self.limiter, self.key_limiter, peer, self.metrics)
