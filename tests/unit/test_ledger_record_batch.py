"""``Ledger.record`` writes a batch in one statement per table on SQLite too, keys in order.

SQLAlchemy keeps multi-row ``RETURNING`` in parameter order on SQLite only with
a sentinel column, and without one wrote one ``INSERT`` per message (issue 14).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import event, select

from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import message_bodies, messages


def _message(n: int) -> NewMessage:
    return NewMessage(
        message_id=str(uuid.uuid4()),
        direction=Direction.INBOUND,
        authority="336",
        sender="332",
        recipient="336",
        message_type="Assessment",
        correlation_id=f"thread-{n}",
        legal_basis="CONSENT",
        statuses=((Status.RECEIVED, None), (Status.VERIFIED, f"note {n}")),
        digest=uuid.uuid4().hex,
        body=f"<m n='{n}'/>".encode(),
    )


def test_a_batch_is_one_statement_per_table_and_each_key_is_its_own_messages(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.record([_message(-1)])  # the keys do not start at 1
    batch = [_message(n) for n in range(250)]
    statements: list[str] = []

    def count(_c: object, _cur: object, sql: str, *_: object) -> None:
        statements.append(sql)

    event.listen(ledger.engine, "before_cursor_execute", count)
    try:
        pks = ledger.record(batch)
    finally:
        event.remove(ledger.engine, "before_cursor_execute", count)
    assert len([s for s in statements if s.startswith("INSERT INTO messages")]) == 1
    assert len([s for s in statements if s.startswith("INSERT INTO message_bodies")]) == 1
    assert len([s for s in statements if s.startswith("INSERT INTO status_history")]) == 1
    with ledger.transaction() as conn:
        by_pk = dict(conn.execute(select(messages.c.id, messages.c.message_id)).all())
        bodies = dict(conn.execute(select(message_bodies)).all())
    assert [by_pk[pk] for pk in pks] == [m.message_id for m in batch]
    # Each message's body hangs from its own key.
    assert [bodies[pk] for pk in pks] == [m.body for m in batch]
    # Each message's history hangs from its own key.
    found = ledger.find(message_id=batch[137].message_id)
    assert [(h.status, h.reason) for h in found[0].history] == [
        (Status.RECEIVED, None),
        (Status.VERIFIED, "note 137"),
    ]
    ledger.engine.dispose()
