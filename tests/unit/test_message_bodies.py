"""A message's signed body is written once, apart from its row: a status change
rewrites the row, never the body (issue 14, docs/performance.md).

SQLite rewrites a row whole when its size changes, as every status change does;
with the body in the row, each change wrote the body's overflow pages again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import sqlite as sqlite_dialect
from support.ledger_schema import downgrade
from support.outbound import signed_assessment

from gateway.errors import LedgerError
from gateway.ledger import bodies, migrate
from gateway.ledger.core import make_engine
from gateway.ledger.outbox import _CLAIM
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import message_bodies

SIGNED_DOCUMENT = b"<signed>" + b"x" * 5000 + b"</signed>"  # two overflow pages in a row


def _pages_written_by_sent(ledger: Ledger, pk: int) -> int:
    """Pages the write-ahead log holds after moving ``pk`` to SENT from an empty log."""
    with ledger.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.transition([pk], Status.SENT, "published")
    with ledger.engine.connect() as conn:
        _busy, frames, _done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    return int(frames)


def test_a_status_change_writes_as_many_pages_for_a_message_with_a_body_as_for_one_without(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with_body, without = ledger.record(
            [signed_assessment(SIGNED_DOCUMENT), signed_assessment(None)]
        )

        assert _pages_written_by_sent(ledger, with_body) == _pages_written_by_sent(ledger, without)
    finally:
        ledger.engine.dispose()


def test_a_message_moved_through_its_statuses_keeps_the_body_row_written_with_it(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        message = signed_assessment(SIGNED_DOCUMENT)
        (pk,) = ledger.record([message])
        with ledger.engine.connect() as conn:
            written = conn.execute(text("SELECT rowid, body FROM message_bodies")).all()

        for status in (Status.SENT, Status.DELIVERED):
            ledger.transition([pk], status, f"now {status.value}", attempts=1)

        with ledger.engine.connect() as conn:
            assert conn.execute(text("SELECT rowid, body FROM message_bodies")).all() == written
            assert conn.execute(select(message_bodies.c.message_pk)).scalars().all() == [pk]
        assert ledger.body_of("332", Direction.OUTBOUND, message.message_id) == SIGNED_DOCUMENT
    finally:
        ledger.engine.dispose()


def test_a_message_recorded_without_a_body_has_no_body_row_and_reads_as_none(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        message = signed_assessment(None)
        ledger.record([message])
        with ledger.engine.connect() as conn:
            assert conn.execute(select(message_bodies)).all() == []
        assert ledger.body_of("332", Direction.OUTBOUND, message.message_id) is None
    finally:
        ledger.engine.dispose()


def test_a_claim_returns_each_rows_own_body(ledger_url: str) -> None:
    ledger = Ledger.open(ledger_url)
    try:
        sent = [signed_assessment(f"<signed n='{n}'>".encode() + b"x" * 5000) for n in range(20)]
        sent.insert(7, signed_assessment(None))
        pks = ledger.record(sent)
        now = ledger.clock()
        claimed = ledger.claim_outbox(100, None, now, now.replace(year=now.year + 1))
        by_pk = {c.pk: c.body for c in claimed}
        assert by_pk == {pk: m.body for pk, m in zip(pks, sent, strict=True) if m.body}
        # The row without a body (erased since it was queued) is never published empty.
        (bodiless,) = ledger.find(message_id=sent[7].message_id, with_history=False)
        assert bodiless.status.value == "WITHDRAWN"
    finally:
        ledger.engine.dispose()


def test_a_claim_that_withdraws_erased_rows_takes_as_many_more(ledger_url: str) -> None:
    """Else a full claim that withdrew some read as an empty outbox to the sender loop,
    which then slept with the rest of a backlog waiting (found by a review)."""
    ledger = Ledger.open(ledger_url)
    try:
        pks = ledger.record([signed_assessment(SIGNED_DOCUMENT) for _ in range(4)])
        with ledger.transaction() as conn:  # the first two erased since they were queued
            conn.execute(message_bodies.delete().where(message_bodies.c.message_pk.in_(pks[:2])))
        now = ledger.clock()
        claimed = ledger.claim_outbox(2, None, now, now.replace(year=now.year + 1))
        assert [c.pk for c in claimed] == pks[2:]
    finally:
        ledger.engine.dispose()


def test_a_claim_whose_later_round_fails_returns_what_it_claimed_already(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each round commits: left held by a claim nobody publishes, the rows of the first
    would wait for their lease (found by a review)."""
    ledger = Ledger.open(ledger_url)
    try:
        pks = ledger.record([signed_assessment(SIGNED_DOCUMENT) for _ in range(3)])
        with ledger.transaction() as conn:
            conn.execute(message_bodies.delete().where(message_bodies.c.message_pk == pks[0]))
        real = ledger.transaction
        calls = []

        def failing_the_second() -> Any:
            calls.append(1)
            if len(calls) == 2:
                raise LedgerError("ledger unavailable: the test's")
            return real()

        monkeypatch.setattr(ledger, "transaction", failing_the_second)
        now = ledger.clock()
        claimed = ledger.claim_outbox(2, None, now, now.replace(year=now.year + 1))
        assert [c.pk for c in claimed] == [pks[1]] and len(calls) == 2
    finally:
        ledger.engine.dispose()


def test_a_row_handed_over_and_erased_since_is_no_longer_queued(ledger_url: str) -> None:
    """The sender loop asks before it publishes what it was handed in memory."""
    ledger = Ledger.open(ledger_url)
    try:
        now = ledger.clock()
        kept, erased = ledger.record(
            [signed_assessment(SIGNED_DOCUMENT) for _ in range(2)],
            claimed_until=now.replace(year=now.year + 1),
        )
        with ledger.transaction() as conn:
            conn.execute(message_bodies.delete().where(message_bodies.c.message_pk == erased))
        assert ledger.still_queued([kept, erased]) == {kept}
    finally:
        ledger.engine.dispose()


def test_the_sqlite_claim_names_the_claimed_rows_key_with_its_table() -> None:
    # SQLite's RETURNING is written without table names; a bare ``id`` in the body's
    # lookup would be captured by any column of that name in message_bodies.
    sql = str(_CLAIM[False].compile(dialect=sqlite_dialect.dialect()))
    assert "message_pk = messages.id" in sql, sql


MARK = b"KACPER-NOWAK-UPN-X332412014017"


def test_the_sqlite_upgrade_script_leaves_no_copy_of_a_body_erased_afterwards(
    tmp_path: Path,
) -> None:
    """``cafgw ledger upgrade --sql`` run in a ``sqlite3`` built with SQLite's default
    ``secure_delete=OFF``: the old bodies' pages are zeroed all the same, so a body
    erased after the upgrade leaves no copy in the file."""
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    ledger = Ledger.open(url)
    signed = b"<s>" + MARK + b"y" * 5000 + b"</s>"
    others = [signed_assessment(b"<o>" + b"z" * 5000) for _ in range(20)]
    pks = ledger.record([signed_assessment(signed), *others])
    with ledger.engine.begin() as conn:
        downgrade(conn, "0002")
    with ledger.engine.connect() as conn:
        conn.exec_driver_sql("VACUUM")
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.engine.dispose()

    raw = sqlite3.connect(path)
    raw.execute("PRAGMA secure_delete=OFF")  # SQLite's compiled-in default
    raw.executescript(migrate.upgrade_sql("sqlite:///x.db", "0002"))
    raw.close()

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            assert bodies.erase(conn, [pks[0]]) == 1  # as retention's purge does
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    assert path.read_bytes().count(MARK) == 0
