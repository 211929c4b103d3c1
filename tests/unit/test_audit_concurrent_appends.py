"""Audit appends racing on a real SQLite ledger: each reads the chain's head under the
write lock, so none takes a seq another just committed (issue 14: the whole path's
inbox reads answered 503, "UNIQUE constraint failed: audit_log.seq")."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection

from gateway.ledger import audit
from gateway.ledger.store import Ledger


def _event(detail: str) -> audit.AuditEvent:
    return audit.AuditEvent("bench local system", "READ", "336", detail=detail)


def _append(ledger: Ledger, detail: str) -> None:
    with ledger.transaction() as conn:
        audit.append(ledger, [_event(detail)], conn)


def test_an_audit_append_that_read_the_head_is_not_overtaken_by_another_appender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    _append(ledger, "first")
    read_head, other_done = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    real_last = audit._last

    def last_then_let_the_other_in(conn: Connection) -> audit.AuditEntry | None:
        head = real_last(conn)
        if threading.current_thread() is threading.main_thread() and not read_head.is_set():
            read_head.set()
            # The other appender's whole transaction fits here unless this one holds
            # the write lock (then it waits for this commit, and the wait times out).
            other_done.wait(1)
        return head

    def other() -> None:
        read_head.wait(10)
        try:
            _append(ledger, "other")
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)
        other_done.set()

    monkeypatch.setattr(audit, "_last", last_then_let_the_other_in)
    thread = threading.Thread(target=other)
    thread.start()
    try:
        _append(ledger, "reader's")  # an inbox read's audit entry, in a transaction of its own
        thread.join(10)
        assert failures == []
        entries = audit.entries(ledger)
        assert [e.seq for e in entries] == [1, 2, 3]
        assert {e.event.detail for e in entries} == {"first", "reader's", "other"}
        assert audit.verify(ledger) == []
    finally:
        thread.join(10)
        ledger.engine.dispose()


def test_many_threads_appending_audit_entries_at_once_all_succeed_in_one_chain(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    failures: list[BaseException] = []

    def appender(n: int) -> None:
        for i in range(25):
            try:
                _append(ledger, f"thread {n} entry {i}")
            except BaseException as exc:  # reported by the assertion below
                failures.append(exc)

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert failures == []
        assert [e.seq for e in audit.entries(ledger)] == list(range(1, 151))
        assert audit.verify(ledger) == []
    finally:
        ledger.engine.dispose()
