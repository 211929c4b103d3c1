"""Outbox rows handed from the transaction that recorded them to this process's sender loop.

Without it, a message recorded for sending (by the API, a feature, the
receiving pipeline) waits for the sender loop to wake, claim it in a
transaction of its own (``Ledger.claim_outbox``), publish it and mark it
``SENT``. With a sender loop running in the process (``Worker.start``
attaches a ``Handoff`` to the ledger), ``Ledger.record`` records such rows
already claimed, as the claim would leave them, and once their transaction
is durable hands them here; the sender loop takes them and publishes them
with no claim of its own: a write transaction less per turn, and no body read
back (issue 14, docs/performance.md).

Nothing here is the rows' only copy: they are in the ledger, claimed until
``Claimed.held_until``. If the loop never takes them (the process stops),
the claim lapses and whoever claims the outbox next publishes them, as after
a publisher that died mid-publish; ``Worker.close`` gives back at once what
is still here, and what a transaction commits after that gives itself back.
At most ``capacity`` messages wait here (their bodies are in memory): beyond
that, rows are recorded unclaimed and the loop claims them as before. The
loop publishes only those still queued when it takes them: one recalled or
erased since, or stopped by the transaction that recorded it (a consent
withdrawal later in the same upload), is not published.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.ledger.records import OutboxItem

__all__ = ["Claimed", "Handoff"]


@dataclass(frozen=True)
class Claimed:
    """Outbox rows one transaction recorded claimed until ``held_until``."""

    items: tuple[OutboxItem, ...]
    held_until: datetime


class Handoff:
    """What the sender loop of this process publishes without claiming; thread-safe."""

    def __init__(
        self,
        lease: timedelta,
        notify: Callable[[], None],
        capacity: int,
        release: Callable[[list[Claimed]], None],
    ) -> None:
        self.lease = lease
        """How long a row recorded for the hand-off stays claimed."""
        self._notify = notify
        self._capacity = capacity
        self._release = release  # gives rows back to the outbox, its claims cleared
        self._closed = False
        self._lock = threading.Lock()
        self._waiting: list[Claimed] = []
        self._count = 0  # messages in ``_waiting``
        self._reserved = 0  # messages recorded claimed, not yet durable or rolled back
        self._puts = 0

    def reserve(self, n: int) -> bool:
        """Room for ``n`` more messages (taken until ``put`` or ``cancel``), or False."""
        with self._lock:
            if self._closed or self._count + self._reserved + n > self._capacity:
                return False
            self._reserved += n
            return True

    def cancel(self, n: int) -> None:
        """The transaction that reserved ``n`` was rolled back: nothing to hand over."""
        with self._lock:
            self._reserved -= n

    def put(self, claimed: Claimed) -> None:
        """Hand over rows whose transaction is durable, and wake the sender loop; once
        closed, give them back to the outbox instead (their claims cleared)."""
        with self._lock:
            self._reserved -= len(claimed.items)
            closed = self._closed
            if not closed:
                self._waiting.append(claimed)
                self._count += len(claimed.items)
                self._puts += 1
        if closed:
            self._release([claimed])
            return
        self._notify()

    def requeue(self, taken: list[Claimed]) -> None:
        """Put back, first in line, what a turn took and could not publish (its claim of
        the outbox failed before anything was sent)."""
        if not taken:
            return
        with self._lock:
            if not self._closed:
                self._waiting[:0] = taken
                self._count += sum(len(c.items) for c in taken)
                self._puts += 1
                taken = []
        if taken:
            self._release(taken)
            return
        self._notify()

    def close(self) -> list[Claimed]:
        """No more hand-overs: what waits comes back (to be given back to the outbox),
        and a transaction that commits later gives its rows back itself (``put``)."""
        with self._lock:
            self._closed = True
            left, self._waiting, self._count = self._waiting, [], 0
            return left

    def take(self, limit: int) -> list[Claimed]:
        """What was handed over first, whole hand-overs up to ``limit`` messages (at
        least one); the rest stays for the loop's next turn, which the put woke."""
        with self._lock:
            n = count = 0
            for claimed in self._waiting:
                if n and count + len(claimed.items) > limit:
                    break
                n += 1
                count += len(claimed.items)
            taken, self._waiting = self._waiting[:n], self._waiting[n:]
            self._count -= count
            return taken

    @property
    def puts(self) -> int:
        """How many hand-overs woke the sender loop so far."""
        with self._lock:
            return self._puts
