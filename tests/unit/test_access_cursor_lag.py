"""The access-notice cursor never passes a status-history row that can still commit.

On PostgreSQL ids are handed out before commit: an acknowledgement's history row
with a lower id could commit after the cursor had moved past a higher one, and
its opening was never reported to the sender. There the cursor now stops at the
newest row ``id_order.LAG_S`` old; on SQLite (ids visible in order) at the newest.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from support.databases import on_both
from support.outbound import queued

from gateway.ledger.id_order import LAG_S
from gateway.ledger.store import Ledger
from gateway.ledger.tables import history
from gateway.lifecycle import access

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@on_both
def test_the_cursor_stops_short_of_history_rows_that_may_still_be_overtaken(
    ledger: Ledger,
) -> None:
    (pk,) = ledger.record([queued()])
    with ledger.transaction() as conn:
        ids = [
            conn.execute(
                insert(history).values(message_pk=pk, status="ACKNOWLEDGED", at=at)
            ).inserted_primary_key[0]
            for at in (NOW - timedelta(seconds=LAG_S + 5), NOW - timedelta(seconds=1))
        ]
    with ledger.transaction() as conn:
        top_history, _ = access._tops(conn, NOW)
    expected = ids[0] if ledger.engine.dialect.name == "postgresql" else ids[1]
    assert top_history == expected
