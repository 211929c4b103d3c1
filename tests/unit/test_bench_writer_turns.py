"""bench.turns: who held the process's SQLite writer, and who waited for it."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from bench import turns
from gateway.ledger.core import make_engine
from gateway.ledger.sqlite_writer import _Turn


def test_every_turn_is_timed_by_thread_while_watched_and_the_writer_is_left_as_it_was(
    tmp_path: Path,
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    take, give_back = _Turn.take, _Turn.give_back
    inside = threading.Event()
    go_on = threading.Event()

    def holder() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            inside.set()
            go_on.wait(5)

    def waiter() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))

    with turns.watch() as times:
        first = threading.Thread(target=holder, name="holder")
        first.start()
        assert inside.wait(5)
        second = threading.Thread(target=waiter, name="waiter")
        second.start()
        threading.Timer(0.05, go_on.set).start()
        first.join(5)
        second.join(5)
    with engine.begin() as conn:  # not timed: the watch has ended
        conn.execute(text("INSERT INTO t VALUES (3)"))
    engine.dispose()

    assert sorted(times.holds) == ["holder", "waiter"]
    assert len(times.holds["holder"]) == 1 and times.holds["holder"][0] >= 0.04
    assert times.waits["waiter"][0] >= 0.03  # it waited while the holder held the turn
    assert (_Turn.take, _Turn.give_back) == (take, give_back)
    table = times.table(1.0)
    assert table[1].startswith("holder") and table[1].rstrip().endswith("%")
