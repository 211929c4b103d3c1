"""The outbox's hot statements are built once and still mean what they did.

Issue 14: SQLAlchemy computes a new statement's cache key on every execution,
which for the outbox claim (three statements) and each status move cost more
CPU than SQLite's own work. The claim is now one statement and a move reuses
one statement per shape; these tests hold both to their old meaning.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from local_systems import signed_inbound
from support.gateways import memory_gateway
from support.sql import captured

from gateway.context import Gateway
from gateway.ledger import core
from gateway.ledger.status import Status
from gateway.ledger.tables import messages
from gateway.lifecycle import outcomes
from gateway.model import Receipt, ReceiptItem, ReceiptOutcome


def _queued(gw: Gateway, count: int) -> list[int]:
    signed = signed_inbound(gw, "332", "336", count)
    with gw.ledger.transaction() as conn:
        return gw.ledger.record([replace(m, receipt_due=False) for m in signed], conn)


def test_the_outbox_claim_takes_at_most_the_limit_oldest_first_in_one_statement(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332",))
    pks = _queued(gw, 5)
    now = gw.clock()
    lease = now + timedelta(seconds=60)

    with captured(gw.ledger.engine) as seen:
        first = gw.ledger.claim_outbox(3, ("332",), now, lease)
    assert len(seen) == 1, seen
    assert [i.pk for i in first] == pks[:3]
    assert all(i.body for i in first)
    # The lease holds: the next claims take the rest, then nothing.
    assert [i.pk for i in gw.ledger.claim_outbox(3, None, now, lease)] == pks[3:]
    assert gw.ledger.claim_outbox(3, ("332",), now, lease) == []
    # Once the lease has run out, the rows are claimable again.
    later = lease + timedelta(seconds=1)
    assert [i.pk for i in gw.ledger.claim_outbox(10, ("332",), later, later)] == pks
    # Another authority's sender claims none of them.
    assert gw.ledger.claim_outbox(10, ("336",), later, later + timedelta(seconds=60)) == []


def test_sends_of_one_shape_reuse_one_statement_and_each_counts_its_own_attempt(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332",))
    first, second, third, fourth = _queued(gw, 4)
    now = gw.clock()
    gw.ledger.mark_sent([first, fourth], now + timedelta(seconds=30))
    shapes = len(core._MOVES)
    gw.ledger.mark_sent([second, third], now + timedelta(seconds=90))
    assert len(core._MOVES) == shapes
    # A row that has left the outbox is not moved back by a late mark.
    gw.ledger.mark_sent([first, fourth], now + timedelta(seconds=500))

    with gw.ledger.transaction() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                messages.select().where(messages.c.id.in_([first, second, third, fourth]))
            ).all()
        }
    assert {pk: (r.status, r.attempts) for pk, r in rows.items()} == {
        first: (Status.SENT.value, 1),
        second: (Status.SENT.value, 1),
        third: (Status.SENT.value, 1),
        fourth: (Status.SENT.value, 1),
    }
    deadlines = {pk: core.as_utc(r.next_attempt_at) - now for pk, r in rows.items()}
    assert deadlines == {
        first: timedelta(seconds=30),
        second: timedelta(seconds=90),
        third: timedelta(seconds=90),
        fourth: timedelta(seconds=30),
    }
    history = gw.ledger.find(authority="332")
    assert sum(1 for r in history for h in r.history if h.status == Status.SENT) == 4


def test_a_move_with_a_condition_of_its_own_is_built_for_that_call_and_keeps_it(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332",))
    due, not_due = _queued(gw, 2)
    now = gw.clock()
    gw.ledger.mark_sent([due], now - timedelta(seconds=1))
    gw.ledger.mark_sent([not_due], now + timedelta(seconds=60))
    shapes = len(core._MOVES)

    with gw.ledger.transaction() as conn:
        moved = gw.ledger.move_overdue(
            [due, not_due], now, Status.RETRYING, "no receipt", conn, next_attempt_at=None
        )

    assert moved == [due]
    assert len(core._MOVES) == shapes
    status = {r.pk: r.status for r in gw.ledger.find(authority="332", with_history=False)}
    assert status == {due: Status.RETRYING, not_due: Status.SENT}


def test_the_claim_finds_the_rows_it_chose_by_key_however_long_the_outbox(
    tmp_path: Path,
) -> None:
    # With the outbox conditions in the UPDATE as well, SQLite searched every row in
    # the outbox for the chosen keys: a claim cost more the longer the backlog.
    gw = memory_gateway(tmp_path, ("332",))
    _queued(gw, 3)
    now = gw.clock()
    with captured(gw.ledger.engine) as seen:
        gw.ledger.claim_outbox(2, ("332",), now, now + timedelta(seconds=60))
    claim, params = seen[0]
    with gw.ledger.engine.connect() as conn:
        plan = [str(row[3]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + claim, params)]
    assert plan[0] == "SEARCH messages USING INTEGER PRIMARY KEY (rowid=?)", plan


def test_a_receipt_that_settles_no_recall_of_ours_builds_no_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = memory_gateway(tmp_path, ("332",))

    def no_building(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a statement was built for this receipt")

    monkeypatch.setattr(outcomes, "select", no_building)
    monkeypatch.setattr(outcomes, "update", no_building)
    receipt = Receipt((ReceiptItem("m-1", "0" * 64, ReceiptOutcome.ACCEPTED),), None, ())
    with gw.ledger.transaction() as conn, captured(gw.ledger.engine) as seen:
        assert outcomes.apply_receipt(conn, "332", "336", "r-1", receipt, gw.clock()) == 0
    assert len(seen) == 1  # the one read of our recalls, which finds none
