"""A SQLite ledger's commits are flushed to disk together before transaction() returns."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, select, text, update

from gateway.errors import LedgerError, LedgerUnavailableError
from gateway.ledger import sqlite_writer
from gateway.ledger.core import LedgerCore, make_engine
from gateway.ledger.wal_sync import WalSync, fsync_path

# --- WalSync alone --------------------------------------------------------------------


class Flushes:
    """A flush that counts, and can be held open until the test lets it finish."""

    def __init__(self) -> None:
        self.count = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail: OSError | None = None

    def __call__(self) -> None:
        self.count += 1
        self.started.set()
        assert self.release.wait(10)
        if self.fail is not None:
            raise self.fail


def _committed(sync: WalSync) -> int:
    ticket = sync.issue()
    sync.complete(ticket)
    return ticket


def _flush_held_open() -> tuple[WalSync, Flushes, threading.Thread]:
    """A sync whose first commit's flush has begun and is held open."""
    flushes = Flushes()
    sync = WalSync(flushes, 10)
    first = _committed(sync)
    flushes.release.clear()
    holder = threading.Thread(target=sync.wait, args=(first,))
    holder.start()
    assert flushes.started.wait(10)
    return sync, flushes, holder


def test_a_wait_flushes_once_and_a_second_wait_for_the_same_commit_flushes_nothing() -> None:
    flushes = Flushes()
    sync = WalSync(flushes, 10)
    ticket = _committed(sync)
    sync.wait(ticket)
    sync.wait(ticket)
    assert flushes.count == 1


def test_a_reader_with_nothing_committed_waits_for_no_flush() -> None:
    flushes = Flushes()
    sync = WalSync(flushes, 10)
    sync.wait(sync.issued)
    assert flushes.count == 0


def test_commits_made_while_a_flush_runs_share_the_next_flush() -> None:
    sync, flushes, holder = _flush_held_open()
    later = [_committed(sync) for _ in range(5)]
    waiters = [threading.Thread(target=sync.wait, args=(t,)) for t in later]
    for w in waiters:
        w.start()
    flushes.release.set()
    for w in [holder, *waiters]:
        w.join(10)
        assert not w.is_alive()
    assert flushes.count == 2  # one for the first commit, one for the five after it


def test_a_flush_that_began_before_a_commit_returned_does_not_count_for_it() -> None:
    sync, flushes, holder = _flush_held_open()
    second = _committed(sync)
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (sync.wait(second), done.set()))
    waiter.start()
    flushes.started.clear()
    flushes.release.set()
    holder.join(10)
    waiter.join(10)
    assert done.is_set()
    assert flushes.count == 2


def _waits_for(sync: WalSync, flushes: Flushes, need: int, pending: int) -> None:
    """A wait for ticket ``need`` lasts until ``pending`` returns; then one flush serves it."""
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (sync.wait(need), done.set()))
    waiter.start()
    assert not done.wait(0.2)
    assert flushes.count == 0
    sync.complete(pending)
    waiter.join(10)
    assert done.is_set()
    assert flushes.count == 1


def test_a_wait_for_a_commit_still_running_lasts_until_it_returns_and_is_flushed() -> None:
    flushes = Flushes()
    sync = WalSync(flushes, 10)
    ticket = sync.issue()  # COMMIT under way: a reader may already see its rows
    _waits_for(sync, flushes, sync.issued, ticket)


def test_a_failed_flush_fails_that_wait_and_every_later_one() -> None:
    flushes = Flushes()
    flushes.fail = OSError(errno.EIO, "Input/output error")
    sync = WalSync(flushes, 10)
    ticket = _committed(sync)
    with pytest.raises(
        LedgerUnavailableError, match="ledger unavailable: flushing its log to disk failed"
    ):
        sync.wait(ticket)
    flushes.fail = None
    later = _committed(sync)
    with pytest.raises(LedgerUnavailableError, match="restart the gateway"):
        sync.wait(later)
    assert flushes.count == 1  # a later flush may report success without the lost pages


def test_a_commit_that_never_returns_fails_the_wait_after_the_time_allowed() -> None:
    sync = WalSync(Flushes(), 0.1)
    ticket = sync.issue()
    with pytest.raises(LedgerUnavailableError, match=r"log to disk was confirmed within 0\.1 s"):
        sync.wait(ticket)


def test_a_commit_that_never_returns_fails_the_wait_even_while_others_come_and_go() -> None:
    sync = WalSync(Flushes(), 0.3)
    sync.issue()  # never completed
    stop = threading.Event()

    def others() -> None:  # each wakes the waiter, none lets it through
        while not stop.wait(0.01):
            sync.complete(sync.issue())

    busy = threading.Thread(target=others)
    busy.start()
    try:
        with pytest.raises(LedgerUnavailableError, match=r"within 0\.3 s"):
            sync.wait(sync.issued)
    finally:
        stop.set()
        busy.join(10)


def test_flushing_a_log_that_is_gone_is_nothing_to_do(tmp_path: Path) -> None:
    fsync_path(tmp_path / "ledger.db-wal")  # checkpointed and removed: durable already
    (tmp_path / "x").write_bytes(b"x")
    fsync_path(tmp_path / "x")


# --- on a SQLite ledger ---------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LedgerCore, Flushes]]:
    flushes = Flushes()
    flushed_paths: list[Path] = []

    def flush(path: Path) -> None:
        flushed_paths.append(path)
        fsync_path(path)
        flushes()

    monkeypatch.setattr(sqlite_writer, "fsync_path", flush)
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    core = LedgerCore(engine)
    with core.transaction() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    assert flushed_paths == [tmp_path / "ledger.db-wal"]
    try:
        yield core, flushes
    finally:
        engine.dispose()


def test_a_ledger_named_by_a_relative_path_flushes_its_own_log_after_a_chdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flushed: list[Path] = []

    def flush(path: Path) -> None:
        flushed.append(path)
        fsync_path(path)

    monkeypatch.setattr(sqlite_writer, "fsync_path", flush)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    core = LedgerCore(make_engine("sqlite:///relative.db"))
    try:
        with core.transaction() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        monkeypatch.chdir(tmp_path / "elsewhere")  # a missing log would count as flushed
        _insert(core, 1)
    finally:
        core.engine.dispose()
    assert flushed == [tmp_path / "relative.db-wal"] * 2


def test_a_ledger_named_by_an_sqlite_uri_is_refused_with_what_to_write_instead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Group commit flushes the log by the file's name, which a URI does not give, and
    # its file would have been made under a directory named "file:".
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LedgerError, match=r"SQLite URI: name its file by its path"):
        make_engine(f"sqlite:///file:{tmp_path / 'uri.db'}?uri=true")
    assert list(tmp_path.iterdir()) == []


def _insert(core: LedgerCore, x: int) -> None:
    with core.transaction() as conn:
        conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": x})


def test_a_file_ledger_commits_without_the_flush_and_an_in_memory_one_with_it(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    core, _ = ledger
    with core.transaction() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL
    memory = make_engine("sqlite:///:memory:")
    try:
        with memory.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2  # FULL
    finally:
        memory.dispose()


def test_a_write_returns_only_after_a_flush_that_began_after_its_commit(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    core, flushes = ledger
    before = flushes.count
    _insert(core, 1)
    assert flushes.count == before + 1
    with core.transaction() as conn:  # a read after it: its commit is flushed already
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    assert flushes.count == before + 1


def test_a_rolled_back_transaction_waits_for_no_flush(ledger: tuple[LedgerCore, Flushes]) -> None:
    core, flushes = ledger
    before = flushes.count
    with pytest.raises(RuntimeError), core.transaction() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        raise RuntimeError("changed my mind")
    assert flushes.count == before


def test_the_writers_turn_is_free_while_a_commit_is_flushed_and_a_reader_waits_for_it(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    core, flushes = ledger
    flushes.release.clear()
    flushes.started.clear()
    first_done = threading.Event()
    first = threading.Thread(target=lambda: (_insert(core, 1), first_done.set()))
    first.start()
    assert flushes.started.wait(10)  # the first commit is being flushed

    _second = threading.Thread(target=_insert, args=(core, 2))
    _second.start()
    turn = sqlite_writer._BY_ENGINE[core.engine]
    with turn.changed:  # the second writer committed while the first one's flush runs
        assert turn.changed.wait_for(lambda: turn.sync.issued == 3, 10)

    read: list[int] = []
    reader = threading.Thread(
        target=lambda: read.append(_count(core)),
    )
    reader.start()
    reader.join(0.3)
    assert reader.is_alive()  # it may have seen rows not yet on disk: it waits
    assert not first_done.is_set()
    flushes.release.set()
    for thread in (first, _second, reader):
        thread.join(10)
        assert not thread.is_alive()
    assert first_done.is_set()
    assert read and read[0] in (1, 2)


def test_a_transaction_ended_by_an_error_waits_for_the_commits_it_could_have_read(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    # Its error may tell what it read (a 409 naming who decided first): not before that
    # decision is on disk, as a block that ends normally waits (a review found the gap).
    core, flushes = ledger
    flushes.release.clear()
    flushes.started.clear()
    first = threading.Thread(target=_insert, args=(core, 1))
    first.start()
    assert flushes.started.wait(10)  # the first commit is being flushed
    told: list[str] = []

    def refuses_on_what_it_read() -> None:
        try:
            with core.transaction() as conn:
                found = conn.execute(text("SELECT count(*) FROM t")).scalar_one()
                raise LookupError(f"already decided ({found} row)")
        except LookupError as exc:
            told.append(str(exc))

    refusing = threading.Thread(target=refuses_on_what_it_read)
    refusing.start()
    refusing.join(0.3)
    assert refusing.is_alive() and not told
    flushes.release.set()
    for thread in (first, refusing):
        thread.join(10)
        assert not thread.is_alive()
    assert told == ["already decided (1 row)"]


def _count(core: LedgerCore) -> int:
    with core.transaction() as conn:
        return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())


def test_a_failed_flush_makes_the_ledger_unavailable_until_the_process_restarts(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    core, flushes = ledger
    flushes.fail = OSError(errno.EIO, "Input/output error")
    with pytest.raises(LedgerUnavailableError, match="check the disk"):
        _insert(core, 1)
    flushes.fail = None
    with pytest.raises(LedgerUnavailableError):
        _count(core)


def test_a_flush_covers_a_commit_only_once_every_earlier_one_has_returned() -> None:
    flushes = Flushes()
    sync = WalSync(flushes, 10)
    first, second = sync.issue(), sync.issue()
    sync.complete(second)  # a writer without the turn returned before the one with it
    _waits_for(sync, flushes, second, first)


def test_an_update_with_a_cte_takes_the_turn_runs_in_a_transaction_and_is_flushed(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    core, flushes = ledger
    _insert(core, 1)
    t = Table("t", MetaData(), Column("x", Integer))
    chosen = select(t.c.x).where(t.c.x == 1).cte("chosen")
    claim = update(t).where(t.c.x.in_(select(chosen.c.x))).values(x=2)
    turn = sqlite_writer._BY_ENGINE[core.engine]
    before = flushes.count
    with core.transaction() as conn:
        conn.execute(claim)
        # pysqlite runs WITH ... UPDATE on its own (committed at once) unless begun.
        assert conn.connection.dbapi_connection.in_transaction
        assert turn.owner is conn.connection.dbapi_connection
    assert flushes.count == before + 1
    assert _count(core) == 1


@contextmanager
def _turn_held_elsewhere(engine: Engine) -> Iterator[None]:
    """Another connection holds the writer's turn; a writer waits 50 ms, then goes on."""
    turn = sqlite_writer._BY_ENGINE[engine]
    with engine.connect() as holder:  # holds the turn, writes nothing SQLite locks
        turn.take(holder.connection.dbapi_connection, 1)
        assert turn.owner is holder.connection.dbapi_connection
        original = turn.take
        turn.take = lambda dbapi_conn, _wait_s: original(dbapi_conn, 0.05)  # type: ignore[method-assign]
        try:
            yield
        finally:
            turn.take = original  # type: ignore[method-assign]
            turn.give_back(holder.connection.dbapi_connection)


def test_a_writer_that_went_on_without_the_turn_is_flushed_too(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    core = LedgerCore(engine)
    turn = sqlite_writer._BY_ENGINE[engine]
    with core.transaction() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    issued = turn.sync.issued
    with _turn_held_elsewhere(engine):
        _insert(core, 1)  # waited 50 ms, went on without the turn, committed
    assert turn.sync.issued == issued + 1
    assert turn.sync.wait(turn.sync.issued) is None  # already flushed by the writer's wait
    engine.dispose()


def test_a_forked_child_finds_every_turn_free_and_no_commit_pending(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    core, _ = ledger
    turn = sqlite_writer._BY_ENGINE[core.engine]
    with core.engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))  # the parent holds the turn
        assert turn.owner is not None
        pid = os.fork()
        if pid == 0:  # the child: no thread of its own holds anything
            free = turn.owner is None and turn.sync.issued == 0
            os._exit(0 if free else 1)
        _, status = os.waitpid(pid, 0)
        conn.rollback()
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_connection_kept_after_two_commits_holds_up_no_other_transaction(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    core, _ = ledger
    with core.engine.connect() as conn:
        for x in (1, 2):
            conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": x})
            conn.commit()
        counted: list[int] = []
        reader = threading.Thread(target=lambda: counted.append(_count(core)))
        reader.start()
        reader.join(5)  # each ticket completed when its commit returned, not at checkin
        assert counted == [2]


def test_a_write_on_a_connection_in_driver_autocommit_is_kept(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    core, _ = ledger
    t = Table("t", MetaData(), Column("x", Integer))
    with core.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(update(t).values(x=0))
        conn.execute(t.insert().values(x=5))
    assert _count(core) == 1


def test_a_savepoint_first_is_inside_a_transaction_and_its_commit_is_flushed(
    ledger: tuple[LedgerCore, Flushes],
) -> None:
    core, flushes = ledger
    before = flushes.count
    with core.transaction() as conn:
        with conn.begin_nested():
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert conn.connection.dbapi_connection.in_transaction  # RELEASE committed nothing
    assert flushes.count == before + 1
    assert _count(core) == 1


def test_ddl_that_went_on_without_the_turn_is_flushed_too(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    core = LedgerCore(engine)
    turn = sqlite_writer._BY_ENGINE[engine]
    with _turn_held_elsewhere(engine), core.transaction() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    assert turn.sync.issued == 1
    assert turn.sync.flushes == 1
    engine.dispose()
