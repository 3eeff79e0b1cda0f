"""The server's start-up schema check, which an unreachable database does not stop.

A server that starts during a database outage serves and spools, as it would had the outage
begun a minute later: the check runs again in the background (``keep_checking``) and the
store writes and replays once it passes. What waiting cannot fix still fails the start at
once, with its message: a wrong password or role, a database that does not exist, a URL
posture cannot use, a schema it does not know or must not migrate (``POSTURE_AUTO_MIGRATE``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

from serving.store.db import ensure_schema, error_reason, redact
from serving.store.failures import is_unreachable

log = logging.getLogger("posture.serve.store")
T = TypeVar("T")

# The whole check (a connect is bounded by its own connect timeout, 5 s); a database that
# accepts and then says nothing past this counts as unreachable.
CHECK_TIMEOUT_S = 10.0
RETRY_S = 2.0  # how often the check runs again while the database is unreachable
REFUSED_RETRY_S = 30.0  # ... and after the database refused it (a person has to act)


def _log(level: int, event: str, **fields: Any) -> None:
    log.log(level, event, extra={"event": event, "fields": fields})


async def _in_daemon_thread(function: Callable[..., T], *args: Any, timeout_s: float) -> T:
    """``function(*args)`` in a thread of its own that a hung call cannot keep alive at exit
    (the default executor's threads are joined when the loop closes)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        try:
            result, error = function(*args), None
        except BaseException as err:  # handed to the awaiting task
            result, error = None, err
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop closed while this thread hung: nobody is waiting
            pass

    threading.Thread(target=run, name="posture-schema-check", daemon=True).start()
    return await asyncio.wait_for(future, timeout_s)


def _is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


async def check_schema(url: str, auto_migrate: bool) -> str | None:
    """Migrate or check the schema; None when done, else why the database was unreachable.
    Anything else (refused credentials, an unknown schema) raises."""
    try:
        await _in_daemon_thread(ensure_schema, url, auto_migrate, timeout_s=CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as err:
        if _is_postgres(url) and is_unreachable(err):
            return error_reason(err.__cause__ or err)
        raise
    return None


async def check_at_start(url: str, auto_migrate: bool) -> bool:
    """The start-up check: True when the schema is current, False when the database is
    unreachable (logged; the caller spools and runs ``keep_checking``)."""
    problem = await check_schema(url, auto_migrate)
    if problem is None:
        return True
    _log(logging.WARNING, "store_unreachable_at_start", database=redact(url), error=problem, retry_in_s=RETRY_S)
    return False


async def keep_checking(url: str, auto_migrate: bool, store: Any) -> None:
    """Run the check until it passes, then let ``store`` write and replay."""
    while True:
        await asyncio.sleep(RETRY_S)
        try:
            if await check_schema(url, auto_migrate) is not None:
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
