"""``PredictionStore``: the asynchronous, batched, lossless writer of the prediction log.

The request path only appends to an in-memory queue. One writer task on the event loop
takes batches (``batch_size`` rows, or what is there after ``flush_interval_s``) and hands
them, one at a time and in order, to a single writer thread. That thread writes to the
database, or, when the database fails, fsyncs the batch to the spool. While the spool holds
rows every newer batch is spooled behind them, and a retry with backoff replays the spool
oldest first; so rows reach the database in the order they were added, exactly once.

Every database call is bounded (``StoreTimeouts``: connect, statement and lock timeouts, and a
wall clock, serving/store/bounded.py): a hung or locked database is an outage like a refused
one. A batch the database refuses as data (a NUL in a text field) is not an outage: it goes
to the quarantine (serving/store/quarantine.py) and the rows behind it go on, live or in a
replay. Until the schema has been checked (a start while the database was unreachable,
serving/store/startup.py) every batch is spooled.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text

from serving.store.bounded import bounded_transaction
from serving.store.db import StoreTimeouts, error_reason, make_engine, normalise_url, redact
from serving.store.failures import is_data_error
from serving.store.quarantine import Quarantine, unstorable
from serving.store.records import (
    ConnectionRecord,
    DriftRecord,
    FeedbackRecord,
    PredictionRecord,
    WindowPredictions,
    connection_row,
    drift_row,
    feedback_row,
    metric_rows,
    prediction_row,
    window_prediction_rows,
)
from serving.store.spool import Item, Spool, SpooledBatch, adopt_orphans, claim_lane
from serving.store.writes import applied_batches, forget_segment, replay_batch, write_batch

# A child of the server's logger, so its JSON-lines handlers (serving/logs.py) carry these events.
log = logging.getLogger("posture.serve.store")

RETRY_MIN_S = 0.2
RETRY_MAX_S = 3.0
# One replay call works this long at most, then the writer drains the queue (to the spool)
# before it goes on: a long replay never keeps new rows in memory.
REPLAY_SLICE_S = 0.5
T = TypeVar("T")


def _log(level: int, event: str, **fields: Any) -> None:
    log.log(level, event, extra={"event": event, "fields": fields})


class PredictionStore:
    """Batched, asynchronous writes of predictions, connections and model metrics."""

    def __init__(
        self,
        url: str,
        spool_dir: Path,
        anon_key: str,
        batch_size: int = 500,
        flush_interval_s: float = 0.25,
        timeouts: StoreTimeouts | None = None,
        schema_ready: bool = True,
    ) -> None:
        self.url = normalise_url(url)
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.timeouts = timeouts or StoreTimeouts()
        self.schema_ready = schema_ready  # False: spool everything until mark_schema_ready()
        self.schema_problem: str | None = None  # why the schema check keeps failing (startup.py)
        self._anon_key = anon_key
        self._engine = make_engine(self.url, timeouts=self.timeouts)
        self._quarantine = Quarantine(Path(spool_dir) / "quarantine")
        self._quarantined_ids: set[tuple[str, str]] = set()  # (batch, how): never twice in one run
        self._spool = claim_lane(Path(spool_dir))  # this process's lane, for new rows
        # Lanes of dead processes: replayed, then released (swapped whole, never mutated in place).
        self._orphans: tuple[Spool, ...] = tuple(adopt_orphans(Path(spool_dir), self._spool))
        self._pending: deque[Item] = deque()
        self._lock = threading.Lock()  # add_* may be called from other threads
        self._inflight = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="posture-store")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._retry_at = 0.0  # monotonic time of the next spool replay attempt
        self._backoff = RETRY_MIN_S
        self._database_refused_at_close = False  # see _write_or_drop
        self.spool_failing = False  # the last spool append failed (a full disk): rows wait in memory
        # The writer's own view, which a ping cannot give: a database that answers SELECT 1 but
        # not writes (a locked table) is down for the log. Cleared by the next write or replay.
        self.database_failing = False
        self.last_error: str | None = None
        # Plain counters, exported as Prometheus metrics by the server (rows of all tables).
        self.rows_written = 0
        self.rows_spooled = 0
        self.rows_dropped = 0
        self.rows_quarantined = 0
        self.predictions_written = 0
        self.batches_written = 0

    @property
    def backlog(self) -> int:
        """Rows in the spool not yet replayed into the database."""
        return self._spool.backlog + sum(orphan.backlog for orphan in self._orphans)

    @property
    def quarantined(self) -> int:
        """Rows in the quarantine folder: found at start, and set aside since."""
        return self._quarantine.rows

    @property
    def queue_depth(self) -> int:
        """Rows in memory: queued, or being written right now."""
        return len(self._pending) + self._inflight

    # -- the request path: never blocks, never touches the database ---------------------

    def add_predictions(self, records: list[PredictionRecord]) -> None:
        self._enqueue([("predictions", prediction_row(record, self._anon_key)) for record in records])

    def add_window_predictions(self, windows: WindowPredictions) -> None:
        self._enqueue([("predictions", row) for row in window_prediction_rows(windows, self._anon_key)])

    def add_connection(self, record: ConnectionRecord) -> None:
        """Insert or update the session ``record.session_id`` (written at open and at close)."""
        self._enqueue([("connections", connection_row(record, self._anon_key))])

    def add_model_metrics(
        self, model_name: str, model_version: str, metrics: dict[str, float], dataset: str | None
    ) -> None:
        self._enqueue([("model_metrics", row) for row in metric_rows(model_name, model_version, metrics, dataset)])

    def add_feedback(self, record: FeedbackRecord) -> None:
        self._enqueue([("feedback", feedback_row(record, self._anon_key))])

    def add_drift_scores(self, records: list[DriftRecord]) -> None:
        self._enqueue([("drift_scores", drift_row(record)) for record in records])

    def _enqueue(self, items: list[Item]) -> None:
        if self._closed:
            raise RuntimeError("the prediction store is closed")
        with self._lock:
            before = len(self._pending)
            self._pending.extend(items)
            crossed = before < self.batch_size <= len(self._pending)
        if crossed and self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer on the running loop; a spool left by an earlier run replays first."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._retry_at = 0.0
        self._task = asyncio.create_task(self._run(), name="posture-prediction-store")
        if self.backlog:
            _log(logging.INFO, "store_spool_found", rows=self.backlog, spool=str(self._spool.directory))

    def mark_schema_ready(self) -> None:
        """The schema is checked (serving/store/startup.py): write and replay from now on."""
        self.schema_ready = True
        self._retry_at = 0.0
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def ping(self) -> bool:
        """Whether the database answers now (its own thread: a long write does not delay it)."""
        bound = self.timeouts.connect_s + self.timeouts.call_s + 1.0  # the call bounds itself first
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._ping_sync), bound)
        except Exception:  # unreachable, refused, timed out: all mean "not now"
            return False

    def _ping_sync(self) -> bool:
        with bounded_transaction(self._engine, self.timeouts.call_s) as conn:
            conn.execute(text("SELECT 1"))
        return True

    async def close(self) -> None:
        """Write out everything still in memory (database, else spool), then stop."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None and self._wake is not None:
            self._wake.set()
            try:
                await self._task
            except Exception as err:  # a bug, not the database: still write out what is queued
                _log(logging.ERROR, "store_writer_failed", error=repr(err))
        await self._drain(final=True)  # whatever the writer left; nothing when it ended normally
        self._executor.shutdown(wait=True)
        for spool in (*self._orphans, self._spool):
            spool.close()
        self._quarantine.close()
        self._engine.dispose()
        _log(logging.INFO, "store_closed", rows_written=self.rows_written, backlog=self.backlog)

    # -- the writer task ----------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
                timed_out = False
            except TimeoutError:
                timed_out = True
            self._wake.clear()
            if self._closed:
                return  # close() writes out what is left
            if self.backlog and self.schema_ready and time.monotonic() >= self._retry_at:
                await self._in_thread(self._replay)
            await self._drain(final=False, partial=timed_out)

    async def _drain(self, final: bool, partial: bool = True) -> None:
        """Write full batches; with ``partial`` (the interval elapsed) one partial batch too.

        Rows that arrive while a partial batch is written wait for the next interval (or a
        full batch): otherwise, under steady load, the writer would write one tiny batch
        after another, and its thread would keep taking the GIL from the event loop
        (measured: 1-4 rows a write, 0.3 of a core, +0.3 ms on a one-window request).
        """
        while batch := self._take(partial or final):
            if not await self._in_thread(self._write, batch, final):
                return  # neither database nor spool took it: it is back in the queue
            partial = False

    def _take(self, partial: bool) -> list[Item]:
        with self._lock:
            if len(self._pending) < (1 if partial else self.batch_size):
                return []
            batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
            self._inflight = len(batch)
            return batch

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # -- the writer thread --------------------------------------------------------------

    def _write(self, items: list[Item], final: bool) -> bool:
        """Database (or quarantine), else spool; False when nothing took the rows and they went
        back in the queue."""
        try:
            good = items
            try:
                good = self._set_aside(items, str(uuid.uuid4()))
                if not good or self._write_now(good):
                    return True
            except OSError as err:  # the quarantine's disk refused: the spool keeps them meanwhile
                _log(logging.ERROR, "store_quarantine_failed", rows=len(good), error=str(err))
            return self._spool_batch(good, final)
        finally:
            self._inflight = 0

    def _write_now(self, items: list[Item]) -> bool:
        """Write to the database; False when it is down (or spooled rows must go first)."""
        if self.backlog or not self.schema_ready:  # spooled rows go first: never overtake them
            return False
        try:
            write_batch(self._engine, items, self.timeouts.call_s)
        except Exception as err:
            if not is_data_error(err):
                self._database_failed(err)
                return False
            self._set_apart(str(uuid.uuid4()), "batch", items, error_reason(err))
            return True
        self._count_written(items)
        self._backoff = RETRY_MIN_S
        self.database_failing = False
        return True

    def _set_aside(self, items: list[Item], batch_id: str) -> list[Item]:
        """The rows a store can hold; the others go to the quarantine, each with its reason."""
        problems = [unstorable(*item) for item in items]
        bad = [(item, problem) for item, problem in zip(items, problems) if problem is not None]
        if not bad:
            return items
        reason = bad[0][1] if len(bad) == 1 else f"{bad[0][1]} (and {len(bad) - 1} more rows)"
        self._set_apart(batch_id, "rows", [item for item, _ in bad], reason)
        return [item for item, problem in zip(items, problems) if problem is None]

    def _set_apart(self, batch_id: str, how: str, items: list[Item], reason: str) -> None:
        if (batch_id, how) in self._quarantined_ids:  # a replay repeated after an outage
            return
        self._quarantine.add(batch_id, items, reason)
        self._quarantined_ids.add((batch_id, how))
        self.rows_quarantined += len(items)
        _log(logging.ERROR, "store_rows_quarantined", rows=len(items), batch=batch_id, reason=reason)

    def _count_written(self, items: list[Item]) -> None:
        self.rows_written += len(items)
        self.predictions_written += sum(1 for table, _ in items if table == "predictions")
        self.batches_written += 1

    def _spool_batch(self, items: list[Item], final: bool) -> bool:
        try:
            self._spool.append(items)
            self.rows_spooled += len(items)
            self.spool_failing = False
            return True
        except OSError as err:
            self.spool_failing = True
            if final:  # the disk is full and we are stopping: the database, out of order, else lost
                self._write_or_drop(items, err)
                return True
            _log(logging.ERROR, "store_spool_failed", rows=len(items), error=str(err))
            with self._lock:  # keep them, first in line, for the next attempt
                self._pending.extendleft(reversed(items))
            return False

    def _write_or_drop(self, items: list[Item], spool_error: OSError) -> None:
        """At close, rows the full spool refused. Behind a spool they would wait for it, but the
        spool cannot take them: written now they land before the older spooled rows (replayed at
        the next start), which beats losing them. Only when the database refuses too are they lost
        (a database down and a disk full at shutdown: found by tests/serving/test_faults.py, which saw 200
        rows dropped while the database was back). One failed try is enough: with a database that
        does not answer, each try of each batch would hold the shutdown for the connect timeout."""
        try:
            if self._database_refused_at_close:
                raise ConnectionError("the database refused an earlier batch of this shutdown")
            write_batch(self._engine, items, self.timeouts.call_s)
        except Exception as err:
            self._database_refused_at_close = True
            self.rows_dropped += len(items)
            _log(
                logging.ERROR,
                "store_rows_dropped",
                rows=len(items),
                error=str(spool_error),
                database_error=error_reason(err),
            )
            return
        self._count_written(items)
        _log(
            logging.WARNING,
            "store_rows_written_out_of_order",
            rows=len(items),
            backlog=self.backlog,
            error=str(spool_error),
        )

    def _database_failed(self, err: BaseException) -> None:
        self.database_failing, self.last_error = True, error_reason(err)
        self._retry_at = time.monotonic() + self._backoff
        _log(
            logging.WARNING,
            "store_database_unavailable",
            database=redact(self.url),
            error=error_reason(err),
            retry_in_s=self._backoff,
        )
        self._backoff = min(self._backoff * 2, RETRY_MAX_S)

    def _replay(self) -> None:
        """Replay the spool oldest segment first, for up to ``REPLAY_SLICE_S``; stop at the first
        outage and retry later. A batch refused as data goes to the quarantine, not in the way."""
        replayed, until = 0, time.monotonic() + REPLAY_SLICE_S
        try:
            self._ping_sync()  # cheap: during an outage, do not parse segments just to fail
            self._spool.seal()
            for spool in (*self._orphans, self._spool):
                replayed += self._replay_lane(spool, until)
                if spool is not self._spool and not spool.backlog:
                    spool.close()
                    self._orphans = tuple(orphan for orphan in self._orphans if orphan is not spool)
        except Exception as err:  # OSError too: a quarantine the disk refused waits with its segment
            self._database_failed(err)
            return
        self._backoff = RETRY_MIN_S
        self.database_failing = False
        if replayed:
            _log(logging.INFO, "store_spool_replayed", rows=replayed, backlog=self.backlog)

    def _replay_lane(self, spool: Spool, until: float) -> int:
        replayed = 0
        for segment in spool.segments():
            key = f"{spool.directory.name}/{segment.name}"  # unique across lanes
            batches = spool.read(segment)
            done = applied_batches(self._engine, key, self.timeouts.call_s)
            for batch in batches:
                if self._closed or time.monotonic() > until:  # the rest stays spooled, markers kept
                    return replayed
                if batch.batch_id not in done:
                    replayed += self._replay_batch(key, batch)
            spool.remove(segment, sum(len(batch.items) for batch in batches))
            forget_segment(self._engine, key, self.timeouts.call_s)
        return replayed

    def _replay_batch(self, key: str, batch: SpooledBatch) -> int:
        good = self._set_aside(batch.items, batch.batch_id)
        try:
            replay_batch(self._engine, key, batch.batch_id, good, self.timeouts.call_s)
        except Exception as err:
            if not is_data_error(err):
                raise
            self._set_apart(batch.batch_id, "batch", good, error_reason(err))
            replay_batch(self._engine, key, batch.batch_id, [], self.timeouts.call_s)  # done with it
            return 0
        if good:
            self._count_written(good)
        return len(good)
