"""A message's signed body is written once, apart from its row: a status change
rewrites the row, never the body (issue 14, docs/performance.md).

SQLite rewrites a row whole when its size changes, as every status change does;
with the body in the row, each change wrote the body's overflow pages again.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select, text

from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import message_bodies

SIGNED_DOCUMENT = b"<signed>" + b"x" * 5000 + b"</signed>"  # two overflow pages in a row


def _outbound(body: bytes | None) -> NewMessage:
    return NewMessage(
        message_id=str(uuid.uuid4()),
        direction=Direction.OUTBOUND,
        authority="332",
        sender="332",
        recipient="336",
        message_type="Assessment",
        correlation_id="thread-1",
        legal_basis="CONSENT",
        statuses=((Status.ACCEPTED, None), (Status.SIGNED, None)),
        digest=uuid.uuid4().hex,
        body=body,
    )


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
        with_body, without = ledger.record([_outbound(SIGNED_DOCUMENT), _outbound(None)])

        assert _pages_written_by_sent(ledger, with_body) == _pages_written_by_sent(ledger, without)
    finally:
        ledger.engine.dispose()


def test_a_message_moved_through_its_statuses_keeps_the_body_row_written_with_it(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        message = _outbound(SIGNED_DOCUMENT)
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
        message = _outbound(None)
        ledger.record([message])
        with ledger.engine.connect() as conn:
            assert conn.execute(select(message_bodies)).all() == []
        assert ledger.body_of("332", Direction.OUTBOUND, message.message_id) is None
    finally:
        ledger.engine.dispose()
