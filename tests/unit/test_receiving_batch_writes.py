"""A received batch writes the case log and the existence index in one statement each,
and leaves exactly what receiving its messages one by one leaves.

Issue 14: the appliers wrote a case-log line and the existence-index rows of
every received Assessment with statements of their own. They now wait for the
end of the recording transaction (``gateway.ledger.deferred``) and go in
together, in order; whatever reads those tables in the transaction writes
them first. Two receivers take the same deliveries, one as a single batch and
one message per batch, and must end with the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from policy_support import settings_for
from sqlalchemy import Engine, Table, event, select
from support.gateways import memory_gateway
from support.received import assessments

from gateway.cases.tables import case_log, case_threads
from gateway.context import Gateway
from gateway.crossborder.consent_store import consent_register
from gateway.crossborder.existence_store import existence_index
from gateway.ledger.status import Direction
from gateway.ledger.tables import messages
from gateway.services.receiving import handle_batch
from gateway.transport.base import Verdict
from gateway.transport.memory import MemoryTransport

HOSTED = ("332", "336")
# New cases, a second message on a case of the batch (its thread and index rows
# exist only in the transaction so far), the same record again (a repeat), and
# a case the receiver held before the batch.
CASES = ["DUD-1", "DUD-2", "DUD-1#2", "DUD-3", "DUD-2", "DUD-0#2", "DUD-3#2", "DUD-4"]
# Columns that differ between two runs whatever they do (keys, clocks).
RUN_COLUMNS = {"id", "at", "updated_at", "entered_at", "created_at"}
RECEIPT_COLUMNS = {"receipt_due", "receipt_message_id"}

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Gateway, Gateway]]:
    made = [
        memory_gateway(
            tmp_path,
            HOSTED,
            transport=MemoryTransport(),
            settings=settings_for(tmp_path, HOSTED, ledger_url=f"sqlite:///{tmp_path / name}"),
        )
        for name in ("batched.db", "one-by-one.db")
    ]
    try:
        yield made[0], made[1]
    finally:
        for gw in made:
            gw.ledger.engine.dispose()


def rows(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    """The table's rows; of ``messages``, the received ones, without their receipt: a
    batch's transaction signs one receipt for the batch, one by one makes one each."""
    if table is messages:
        kept = [c for c in table.c if c.name not in RUN_COLUMNS | RECEIPT_COLUMNS]
        query = select(*kept).where(messages.c.direction == Direction.INBOUND.value)
    else:
        query = select(*[c for c in table.c if c.name not in RUN_COLUMNS])
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query.order_by(table.c.id)).all()]


def test_a_batch_leaves_the_rows_one_by_one_leaves_in_one_insert_per_table(
    pair: tuple[Gateway, Gateway],
) -> None:
    batched, one_by_one = pair
    before = assessments(batched, batched, ["DUD-0"])
    deliveries = assessments(batched, batched, CASES, first_tag=1)
    for gw in pair:
        assert [d.verdict for d in handle_batch(gw, before)] == [Verdict.ACK]

    inserts: list[str] = []

    def count(_c: object, _cur: object, sql: str, *_: object) -> None:
        if sql.startswith("INSERT INTO"):
            inserts.append(sql.split()[2])

    event.listen(batched.ledger.engine, "before_cursor_execute", count)
    try:
        assert {d.verdict for d in handle_batch(batched, deliveries)} == {Verdict.ACK}
    finally:
        event.remove(batched.ledger.engine, "before_cursor_execute", count)
    for delivery in deliveries:
        assert [d.verdict for d in handle_batch(one_by_one, [delivery])] == [Verdict.ACK]

    assert inserts.count("case_log") == 1
    assert inserts.count("existence_index") == 1
    for table in (messages, case_threads, case_log, existence_index, consent_register):
        assert rows(batched.ledger.engine, table) == rows(one_by_one.ledger.engine, table), (
            table.name
        )
    logged = rows(batched.ledger.engine, case_log)
    # every Assessment but the repeat, each a line (checks the comparison saw rows)
    assert len([r for r in logged if r[2] == "RECEIVED:Assessment"]) == 1 + len(CASES) - 1
    assert rows(batched.ledger.engine, existence_index)
