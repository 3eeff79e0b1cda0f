"""Random ids (32 hex digits, as ``uuid4().hex``) from one ``os.urandom`` call per 256 ids.

``uuid4`` makes a ``getrandom()`` system call for every id, and CPython lets go of the GIL
around it; when the store's writer thread or the log thread is waiting for the GIL, the
event loop then waits to get it back. While 5,000 MQTT devices opened their sessions in one
second (two ids each), ``uuid4`` was the event loop's largest self time under py-spy (12% of
its samples, bench/mqtt_load.py). Next to a thread busy half the time, an id costs ~0.8 us
here against ~5 us from ``uuid4``. The bytes come from the same source as ``uuid4``'s; a
forked child starts a pool of its own.
"""

from __future__ import annotations

import os
import threading

IDS_PER_DRAW = 256
HEX_DIGITS = 32  # 128 bits


class _Pool:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # one pool for the process: any thread may draw
        self.digits, self.next = "", 0

    def draw(self) -> str:
        with self.lock:
            if self.next == len(self.digits):
                self.digits, self.next = os.urandom(HEX_DIGITS // 2 * IDS_PER_DRAW).hex(), 0
            start = self.next
            self.next += HEX_DIGITS
        return self.digits[start : start + HEX_DIGITS]

    def forget(self) -> None:
        """In a forked child: the parent's ids must not be drawn again."""
        self.digits, self.next = "", 0


_pool = _Pool()
os.register_at_fork(after_in_child=_pool.forget)


def random_id() -> str:
    """A new random id: 128 bits as 32 hex digits."""
    return _pool.draw()
