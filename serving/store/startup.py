"""The server's start-up schema check, which an unreachable database does not stop.

A server that starts during a database outage serves and spools, as it would had the outage
begun a minute later: the check runs again in the background (``keep_checking``) and the
store writes and replays once it passes. What waiting cannot fix still fails the start at
once, with its message: a wrong password or role, a database that does not exist, a URL
posture cannot use, a schema it does not know or must not migrate (``POSTURE_AUTO_MIGRATE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from typing import Any

from sqlalchemy.engine import make_url

from serving.store.db import ensure_schema, error_reason, normalise_url, redact
from serving.store.failures import is_unreachable

log = logging.getLogger("posture.serve.store")

# The whole check (a connect is bounded by its own connect timeout, 5 s); a database that
# accepts and then says nothing past this counts as unreachable.
CHECK_TIMEOUT_S = 10.0
RETRY_S = 2.0  # how often the check runs again while the database is unreachable
REFUSED_RETRY_S = 30.0  # ... and after the database refused it (a person has to act)


def _log(level: int, event: str, **fields: Any) -> None:
    log.log(level, event, extra={"event": event, "fields": fields})


def check_schema(url: str, auto_migrate: bool) -> str | None:
    """Migrate or check the schema; None when done, else why the database is unreachable.
    Anything else (refused credentials, an unknown schema) raises. Bounded: the check runs in a
    daemon thread, so one that hangs past ``CHECK_TIMEOUT_S`` neither blocks the caller nor
    keeps the process alive at exit."""
    outcome: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            ensure_schema(url, auto_migrate)
            outcome.put(None)
        except BaseException as err:  # handed to the caller
            outcome.put(err)

    threading.Thread(target=run, name="posture-schema-check", daemon=True).start()
    try:
        error = outcome.get(timeout=CHECK_TIMEOUT_S)
    except queue.Empty:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    if error is None:
        return None
    if make_url(normalise_url(url)).get_backend_name() == "postgresql" and is_unreachable(error):
        return error_reason(error.__cause__ or error)
    raise error


async def _check_in_background(url: str, auto_migrate: bool) -> str | None:
    """``check_schema`` from the event loop, in a daemon thread rather than the default
    executor, whose threads the loop joins at exit: a check in flight at SIGTERM must not
    hold the shutdown for its 10 s."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str | None] = loop.create_future()

    def settle(result: str | None, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled (shutdown)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = check_schema(url, auto_migrate), None
        except BaseException as err:  # handed to the awaiting task
            result, error = None, err
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="posture-schema-check", daemon=True).start()
    return await future


async def check_at_start(url: str, auto_migrate: bool) -> bool:
    """The start-up check: True when the schema is current, False when the database is
    unreachable (logged; the caller spools and runs ``keep_checking``)."""
    problem = await _check_in_background(url, auto_migrate)
    if problem is None:
        return True
    _log(logging.WARNING, "store_unreachable_at_start", database=redact(url), error=problem, retry_in_s=RETRY_S)
    return False


async def keep_checking(url: str, auto_migrate: bool, store: Any) -> None:
    """Run the check until it passes, then let ``store`` write and replay."""
    while True:
        await asyncio.sleep(RETRY_S)
        try:
            if await _check_in_background(url, auto_migrate) is not None:
                continue
        except Exception as err:  # reachable now, but refused: say so, keep spooling
            store.schema_problem = str(err)
            _log(logging.ERROR, "store_schema_refused", database=redact(url), error=str(err))
            await asyncio.sleep(REFUSED_RETRY_S)
            continue
        store.schema_problem = None
        store.mark_schema_ready()
        _log(logging.INFO, "store_schema_checked", database=redact(url), backlog=store.backlog)
        return
