"""Group commit for a SQLite ledger: commits made durable by one shared ``fsync``.

With ``synchronous=FULL`` SQLite syncs its write-ahead log inside every
``COMMIT``, while the committing connection still holds the process's one
writer's turn (``sqlite_writer``): every other writer of the process waits
for that disk flush too, and at 200 msgs/s the turn is held most of the time
(docs/performance.md, "what a commit waits for").

Here the ledger's connections commit with ``synchronous=NORMAL`` (SQLite
writes the log but does not flush it) and give the turn back at once; then,
before ``Ledger.transaction()`` returns, the caller waits until an ``fsync``
of the log file has covered its commit. One flush covers every commit written
before it began, so writers that commit while a flush is under way share the
next one: the classic group commit of database servers. What a caller may do
after ``transaction()`` returns (acknowledge to the broker, publish, answer
202, send a receipt) it still does only once its commit is on disk, exactly
as with ``FULL``.

What changes: between a commit and its flush, another thread of the process
could read the committed rows. Every ``transaction()`` therefore waits, at
its end, for the commits it could have seen (those begun before it ended),
readers included, so nothing read from the ledger leaves the process before
it is durable. That holds once ``transaction()`` returned: code inside the
``with`` block must not act outside the process on what it read (none does:
the receiving pipeline acts after its block, the sender loop publishes after
its claim returned). A reader in *another* process (a CLI command beside a
running gateway) may see a commit up to one flush (a fraction of a
millisecond on the bench machine's disk) before it is durable; the gateway's
own API and dashboard run in the process.

A flush that fails leaves the log's state unknown (after a failed ``fsync``
Linux may drop the dirty pages and report the next one as a success), so the
failure sticks: every later wait raises ``LedgerUnavailableError`` until the
process restarts, as PostgreSQL stops on a failed flush of its log.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from gateway.errors import LedgerUnavailableError

__all__ = ["WalSync", "fsync_path"]


def fsync_path(path: Path) -> None:
    """Flush ``path``'s data to disk; a file that is gone holds nothing to flush.

    SQLite deletes its log only after a checkpoint that copied every commit into
    the database file and flushed it (as it does with ``synchronous=NORMAL``),
    so a missing log means the commits are durable already.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WalSync:
    """Tickets for commits, and one flush at a time covering every completed one.

    A writer takes a ticket just before its ``COMMIT`` (``issue``) and marks it
    done once the commit returned (``complete``). ``wait(n)`` returns once a
    flush that began after tickets ``1..n`` all completed has finished: the
    first waiter to find no flush under way runs one for everything completed
    so far, the others wait for it (or the next).
    """

    def __init__(self, flush: Callable[[], None], wait_s: float) -> None:
        self._flush = flush
        self._wait_s = wait_s
        self.reset()

    def reset(self) -> None:
        """No commit issued, none pending, no flush under way (a forked child's copy:
        its locks may be held by a thread the child does not have)."""
        self._changed = threading.Condition()
        self._issued = 0
        self._outstanding: set[int] = set()  # issued, their commit not yet returned
        self._completed = 0  # every ticket up to this one has returned
        self._synced = 0
        self._flushing = False
        self._failed: str | None = None
        self.flushes = 0  # how many flushes ran (the tests read it)

    @property
    def issued(self) -> int:
        """The newest ticket: what a reader ending now could have seen."""
        with self._changed:
            return self._issued

    def issue(self) -> int:
        with self._changed:
            self._issued += 1
            self._outstanding.add(self._issued)
            return self._issued

    def complete(self, ticket: int) -> None:
        with self._changed:
            self._outstanding.discard(ticket)
            # A writer that went on without the turn may complete out of order: a
            # flush covers a ticket only once every earlier one has returned too.
            self._completed = min(self._outstanding) - 1 if self._outstanding else self._issued
            self._changed.notify_all()

    def wait(self, ticket: int) -> None:
        """Return once ticket ``ticket``'s commit (and every earlier one) is on disk."""
        deadline = time.monotonic() + self._wait_s  # however many others come and go
        with self._changed:
            while True:
                if self._failed is not None:
                    raise LedgerUnavailableError(self._failed)
                if self._synced >= ticket:
                    return
                if self._flushing or self._completed < ticket:
                    # A flush is under way (it may not cover this ticket: then
                    # the next one will), or the commit has not returned yet.
                    if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                        raise LedgerUnavailableError(
                            "ledger unavailable: the transaction ended (it may have "
                            "committed) but no flush of the ledger's log to disk was "
                            f"confirmed within {self._wait_s:g} s; whether it survives "
                            "a power cut is unknown"
                        )
                    continue
                self._flushing = True
                target = self._completed
                break
        flushed = False
        try:
            self._flush()
            flushed = True
        except OSError as exc:
            with self._changed:
                self._failed = (
                    f"ledger unavailable: flushing its log to disk failed ({exc}); commits "
                    "since the last flush may be lost: check the disk, then restart the gateway"
                )
            raise LedgerUnavailableError(self._failed) from exc
        finally:
            with self._changed:
                if flushed:
                    self._synced = max(self._synced, target)
                    self.flushes += 1
                self._flushing = False
                self._changed.notify_all()
