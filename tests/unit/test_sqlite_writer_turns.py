"""SQLite writers of one process take turns on a condition, not SQLite's busy sleeps (issue 14)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from gateway.ledger import sqlite_writer
from gateway.ledger.core import make_engine


def test_a_write_holds_the_turn_until_its_connection_returns_and_a_read_never_takes_it(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    turn = sqlite_writer._BY_ENGINE[engine]
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        assert turn.owner is None
        with engine.begin() as conn:
            conn.execute(text("SELECT count(*) FROM t")).scalar_one()
            assert turn.owner is None
            conn.execute(text("INSERT INTO t VALUES (1)"))
            assert turn.owner is not None
        assert turn.owner is None
    finally:
        engine.dispose()


def test_a_second_writer_waits_for_the_first_to_commit_and_then_goes_on(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    turn = sqlite_writer._BY_ENGINE[engine]
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    first_writing, second_done = threading.Event(), threading.Event()

    def second() -> None:
        first_writing.wait(10)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            first_writing.set()
            with turn.changed:  # the second writer is queued on the turn, not in SQLite
                assert turn.changed.wait_for(lambda: turn.waiting == 1, 10)
            assert not second_done.is_set()
        thread.join(10)
        assert second_done.is_set()
        with engine.begin() as conn:
            assert conn.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 2]
    finally:
        thread.join(10)
        engine.dispose()
