"""The spool: replay that is interrupted (after commit, or by SIGKILL) writes every row once,
server workers sharing a spool folder keep their own lanes, torn and corrupt segments."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from features.errors import PostureError
from serving.store.db import make_engine, upgrade
from serving.store.prediction_store import PredictionStore
from serving.store.spool import Spool, claim_lane
from serving.store.writes import applied_batches, replay_batch
from tests.conftest import REPO
from tests.serving.store.store_helpers import (
    KEY,
    TcpProxy,
    empty_database,
    pg_url,
    record,
    sequence_in_table,
    table_row,
    throwaway_database,
    wait_for,
)


@pytest.fixture
def pg_database() -> Iterator[str]:
    with throwaway_database() as name:
        upgrade(pg_url(name))
        yield name


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with empty_database(request.param, tmp_path) as url:
        upgrade(url)
        yield url


def test_replay_interrupted_after_commit_writes_nothing_twice(store_url: str, tmp_path: Path) -> None:
    spool = claim_lane(tmp_path / "spool")
    for start in (0, 10):
        spool.append([("predictions", table_row(seq)) for seq in range(start, start + 10)])
    spool.close()
    segment = spool.segments()[0]
    engine = make_engine(store_url)
    # A replay committed both batches, then the process died before removing the segment.
    key = f"{spool.directory.name}/{segment.name}"
    for batch in spool.read(segment):
        replay_batch(engine, key, batch.batch_id, batch.items)
    assert len(applied_batches(engine, key)) == 2
    engine.dispose()

    async def restart() -> PredictionStore:
        store = PredictionStore(store_url, tmp_path / "spool", KEY)
        await store.start()
        await wait_for(lambda: store.backlog == 0)
        await store.close()
        return store

    store = asyncio.run(restart())
    assert store.rows_written == 0  # already applied: skipped, not written again
    assert sequence_in_table(store_url) == list(range(20))
    assert list((tmp_path / "spool").rglob("*.jsonl")) == []


def test_workers_sharing_a_spool_folder_use_their_own_lanes(pg_database: str, tmp_path: Path) -> None:
    url, spool_dir = pg_url(pg_database), tmp_path / "spool"
    proxy = TcpProxy()
    proxy.cut()

    async def two_workers_during_outage() -> list[PredictionStore]:
        workers = [PredictionStore(pg_url(pg_database, proxy.port), spool_dir, KEY, batch_size=50) for _ in range(2)]
        for worker in workers:
            await worker.start()
        for seq in range(0, 400, 20):  # interleaved: worker 0 gets even blocks, worker 1 odd ones
            workers[seq // 20 % 2].add_predictions([record(i) for i in range(seq, seq + 20)])
            await asyncio.sleep(0.005)
        for worker in workers:
            await worker.close()
        return workers

    try:
        workers = asyncio.run(two_workers_during_outage())
    finally:
        proxy.close()
    assert [worker.rows_spooled for worker in workers] == [200, 200]
    assert sorted(path.name for path in spool_dir.iterdir()) == ["lane-0", "lane-1"]

    async def one_worker_after() -> PredictionStore:
        store = PredictionStore(url, spool_dir, KEY)
        assert store.backlog == 400  # its own lane and the orphaned one
        await store.start()
        await wait_for(lambda: store.backlog == 0)
        await store.close()
        return store

    assert asyncio.run(one_worker_after()).rows_written == 400
    rows = sequence_in_table(url)
    assert sorted(rows) == list(range(400))
    for lane in (0, 1):  # each worker's rows in the order it added them
        mine = [seq for seq in rows if seq // 20 % 2 == lane]
        assert mine == sorted(mine)
    assert list(spool_dir.rglob("*.jsonl")) == []


REPLAYER = """
import asyncio, sys
from pathlib import Path
from serving.store.prediction_store import PredictionStore

async def main():
    store = PredictionStore(sys.argv[1], Path(sys.argv[2]), "k")
    await store.start()
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_replay_killed_midway_resumes_exactly_once(pg_database: str, tmp_path: Path) -> None:
    url, spool_dir = pg_url(pg_database), tmp_path / "spool"
    spool = claim_lane(spool_dir)
    for segment in range(12):
        for start in range(0, 2000, 500):
            first = segment * 2000 + start
            spool.append([("predictions", table_row(seq)) for seq in range(first, first + 500)])
        spool.seal()
    spool.close()
    replayer = subprocess.Popen([sys.executable, "-c", REPLAYER, url, str(spool_dir)], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while len(list(spool_dir.rglob("*.jsonl"))) > 9:  # a few segments in: kill it mid-replay
            assert time.monotonic() < deadline and replayer.poll() is None
            time.sleep(0.002)
    finally:
        replayer.kill()  # SIGKILL: no close(), no cleanup
        replayer.wait()
    assert 0 < len(list(spool_dir.rglob("*.jsonl"))) < 12

    async def resume() -> None:
        store = PredictionStore(url, spool_dir, KEY)
        await store.start()
        await wait_for(lambda: store.backlog == 0)
        await store.close()

    asyncio.run(resume())
    assert sequence_in_table(url) == list(range(24_000))


def test_spool_skips_a_torn_last_line_and_refuses_corruption(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    row = {"time": datetime(2026, 11, 1, tzinfo=UTC), "label": "sitting"}
    spool.append([("predictions", row)] * 3)
    spool.close()
    segment = spool.segments()[0]
    with segment.open("ab") as handle:
        handle.write(b'{"batch": "torn", "ite')  # a crash in the middle of an append
    reopened = Spool(tmp_path)
    assert reopened.backlog == 3
    assert reopened.read(segment)[0].items[0] == ("predictions", row)  # datetimes survive
    with pytest.raises(BlockingIOError):  # one holder per lane
        Spool(tmp_path)
    reopened.close()
    segment.write_bytes(b"not json\n" + segment.read_bytes())
    with pytest.raises(PostureError, match="corrupt at line 1"):
        Spool(tmp_path)
