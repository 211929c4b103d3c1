"""Read-then-write transactions on a real SQLite ledger from several threads: a locking
read (``with_for_update()``) or ``locks.xact_lock`` holds the database's write lock from
that moment, as the row or advisory lock does on PostgreSQL, so a second transaction
deciding on the same rows waits for the first to commit and then sees what it did.

Without it SQLite dropped the FOR UPDATE and the advisory lock was a no-op: the second
transaction read before the first one's write, and one of the two updates was lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Column, Connection, Integer, MetaData, Select, Table, select, update

from gateway.ledger import locks
from gateway.ledger.store import Ledger

_META = MetaData()
_COUNTER = Table(
    "test_counter", _META, Column("id", Integer, primary_key=True), Column("n", Integer)
)


def _ledger(tmp_path: Path) -> Ledger:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ledger.transaction() as conn:
        _META.create_all(conn)
        conn.execute(_COUNTER.insert().values(id=1, n=0))
    return ledger


def _read(conn: Connection, query: Select[tuple[int]]) -> int:
    return int(conn.execute(query).scalar_one())


def _increment(conn: Connection, seen: int) -> None:
    conn.execute(update(_COUNTER).where(_COUNTER.c.id == 1).values(n=seen + 1))


def _race(ledger: Ledger, take_lock: Callable[[Connection], int]) -> tuple[bool, int]:
    """The main thread reads under ``take_lock``, then a second thread runs the same
    read-modify-write; whether the second had finished before the first wrote, and
    the count once both committed."""
    failures: list[BaseException] = []

    def other() -> None:
        try:
            with ledger.transaction() as conn:
                _increment(conn, take_lock(conn))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    thread = threading.Thread(target=other)
    try:
        with ledger.transaction() as conn:
            seen = take_lock(conn)
            thread.start()
            thread.join(0.5)
            overtaken = not thread.is_alive()
            _increment(conn, seen)
        thread.join(10)
        assert failures == []
        with ledger.transaction() as conn:
            return overtaken, _read(conn, select(_COUNTER.c.n))
    finally:
        thread.join(10)
        ledger.engine.dispose()


def test_a_locking_read_on_sqlite_makes_a_second_read_modify_write_wait_for_its_commit(
    tmp_path: Path,
) -> None:
    locked = select(_COUNTER.c.n).where(_COUNTER.c.id == 1).with_for_update()
    overtaken, count = _race(_ledger(tmp_path), lambda conn: _read(conn, locked))
    assert not overtaken
    assert count == 2


def test_a_skip_locked_claim_on_sqlite_also_holds_the_write_lock(tmp_path: Path) -> None:
    claim = select(_COUNTER.c.n).where(_COUNTER.c.id == 1).with_for_update(skip_locked=True)
    overtaken, count = _race(_ledger(tmp_path), lambda conn: _read(conn, claim))
    assert not overtaken
    assert count == 2


def test_an_advisory_lock_on_sqlite_makes_a_second_read_modify_write_wait_for_its_commit(
    tmp_path: Path,
) -> None:
    def locked(conn: Connection) -> int:
        locks.xact_lock(conn, ["thread:336:case-1"])
        return _read(conn, select(_COUNTER.c.n))

    overtaken, count = _race(_ledger(tmp_path), locked)
    assert not overtaken
    assert count == 2


def test_try_xact_lock_on_sqlite_waits_for_the_write_lock_and_reports_it_taken(
    tmp_path: Path,
) -> None:
    def locked(conn: Connection) -> int:
        assert locks.try_xact_lock(conn, locks.RECEIPTS)
        return _read(conn, select(_COUNTER.c.n))

    overtaken, count = _race(_ledger(tmp_path), locked)
    assert not overtaken
    assert count == 2


def test_a_plain_read_on_sqlite_takes_no_write_lock(tmp_path: Path) -> None:
    # The control: readers are never held (WAL), so without a lock the second
    # transaction overtakes the first and one of the two increments is lost.
    overtaken, count = _race(_ledger(tmp_path), lambda conn: _read(conn, select(_COUNTER.c.n)))
    assert overtaken
    assert count == 1
