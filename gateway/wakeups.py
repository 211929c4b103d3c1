"""Wake the worker's loops when there is work, instead of polling on a fixed period.

A loop notes the generation of its topic before it looks for work; when it
finds none it waits until the topic moves on (or a fallback period passes,
for work another process put in a shared ledger). Nothing is lost between
the look and the wait: a notification after the look changes the
generation, and the wait returns at once.

Topics: ``outbox`` (something may be waiting to be published: any committed
transaction that inserted into ``messages``, watched on the ledger's engine,
and moves back into the outbox) and ``receipts`` (received messages were
recorded and may be owed a receipt).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event

__all__ = ["Wakeups"]

_FLAG = "cafgw_inserted_messages"


class Wakeups:
    """Generation counters per topic, and a condition to wait on them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generations: Counter[str] = Counter()

    def generation(self, topic: str) -> int:
        with self._cond:
            return self._generations[topic]

    def notify(self, *topics: str) -> None:
        with self._cond:
            for topic in topics:
                self._generations[topic] += 1
            self._cond.notify_all()

    def wait(self, topic: str, seen: int, timeout_s: float) -> bool:
        """Wait until ``topic`` moved past generation ``seen``; False after ``timeout_s``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._generations[topic] != seen, timeout_s)

    def watch_outbox(self, engine: Engine) -> Callable[[], None]:
        """Notify ``outbox`` after each transaction on ``engine`` that inserted messages.

        Whoever records an outbound message (the API, a feature, a test feeding
        the outbox) wakes the sender loop without knowing it exists. Notified
        when the connection returns to the pool, i.e. after the commit, so the
        sender loop's query sees the rows. Returns the function that stops watching.
        """

        def after_cursor_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.startswith("INSERT INTO messages"):
                conn.info[_FLAG] = True

        def checkin(_dbapi: Any, record: Any) -> None:
            if record is not None and record.info.pop(_FLAG, False):
                self.notify("outbox")

        event.listen(engine, "after_cursor_execute", after_cursor_execute)
        event.listen(engine, "checkin", checkin)

        def unwatch() -> None:
            event.remove(engine, "after_cursor_execute", after_cursor_execute)
            event.remove(engine, "checkin", checkin)

        return unwatch
