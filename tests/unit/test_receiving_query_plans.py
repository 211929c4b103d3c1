"""What a received batch reads, it finds by index: its cost does not grow with the ledger.

Issue 14: flat out, the receiver's ledger stage cost 5.5 ms per message against
2.1 at 200/s, because some reads of the recording transaction named only the
authority (and direction) of the rows they wanted: finding a message's earlier
copies read every message the authority had received, finding its case thread
every thread the authority held, and the content dedup fetched every earlier
copy of a record sent again. Here a real batch goes through ``handle_batch`` on
a SQLite ledger, every statement it runs is captured, and SQLite's own query
plan says how each is answered. So does the sender's read of the messages a
receipt settles.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from policy_support import memory_gateway
from sqlalchemy import select
from support.outbound import queued
from support.received import assessments
from support.sql import AUTHORITY_ONLY, captured, plans

from gateway.context import Gateway
from gateway.errors import LedgerError
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.services.receiving import handle_batch
from gateway.transport.base import Delivery, Verdict

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    gateway = memory_gateway(tmp_path, ("332", "336"))
    try:
        yield gateway
    finally:
        gateway.ledger.engine.dispose()


def _assessments(gw: Gateway, case_refs: Sequence[str]) -> list[Delivery]:
    return assessments(gw, gw, case_refs)


def test_every_read_of_a_received_batch_is_an_index_search_on_more_than_the_authority(
    gw: Gateway,
) -> None:
    # Something to find first: earlier messages, their threads, one record sent again.
    first = _assessments(gw, ["DUD-1", "DUD-2", "DUD-3"])
    assert {d.verdict for d in handle_batch(gw, first)} == {Verdict.ACK}
    batch = _assessments(gw, ["DUD-4", "DUD-2", "DUD-5"])
    with captured(gw.ledger.engine) as statements:
        assert {d.verdict for d in handle_batch(gw, batch)} == {Verdict.ACK}
    found = plans(gw.ledger.engine, statements)
    assert any("FROM messages" in sql for sql in found)
    assert any("FROM case_threads" in sql for sql in found)
    for sql, plan in found.items():
        if sql.startswith("SELECT audit_log.seq, audit_log.hash"):
            # The audit chain's head for the receipts: the last row by its key, read
            # backwards from the end (no sort, one row).
            assert plan == "SCAN audit_log", f"{sql}\n{plan}"
            continue
        # A subquery's own result (the heads given back, one row each) is scanned.
        scans = [
            line
            for line in plan.splitlines()
            if "SCAN" in line and not line.startswith("SCAN anon_")
        ]
        assert not scans, f"{sql}\n{plan}"
        assert not AUTHORITY_ONLY.search(plan), f"{sql}\n{plan}"
        if "FROM messages" in sql and "messages.receipt_due IS 1" not in sql:
            # Inbound rows are found under their id (whoever sent them) or their sender
            # (the content). (The receipts owed, signed in the same transaction, by the
            # index of the rows owed one.)
            assert "sender=?" in plan or "message_id=?" in plan, f"{sql}\n{plan}"


def test_a_record_sent_again_and_again_is_found_by_its_first_copy_alone(gw: Gateway) -> None:
    copies = _assessments(gw, ["DUD-7"] * 4)
    for one in copies:  # one by one: each batch finds the copies recorded before it
        assert [d.verdict for d in handle_batch(gw, [one])] == [Verdict.ACK]
    received = gw.ledger.find(authority="336", direction=Direction.INBOUND)
    by_id = {r.message_id: r for r in received}
    assert by_id[copies[0].message_id or ""].status == Status.VERIFIED
    for later in copies[1:]:
        record = by_id[later.message_id or ""]
        assert record.status == Status.DUPLICATE
        assert f"identical to {copies[0].message_id}" in (record.reason or "")
    with captured(gw.ledger.engine) as statements:
        handle_batch(gw, _assessments(gw, ["DUD-7"]))
    (content_read,) = [
        (sql, plan)
        for sql, plan in plans(gw.ledger.engine, statements).items()
        if "content_digest =" in sql
    ]
    sql, plan = content_read
    # The first copy only: in row order from the content index, stopping at one row.
    assert "LIMIT" in sql
    assert "ix_messages_content" in plan
    assert "TEMP B-TREE" not in plan


def test_a_batch_reads_the_content_index_once_however_many_records_it_carries(
    gw: Gateway,
) -> None:
    # Issue 14: the dedup read ran once per record, and once per copy for a record
    # sent again (the copies were never remembered within the batch).
    refs = ["DUD-20", "DUD-22", "DUD-21", "DUD-20", "DUD-23", "DUD-22"]
    seen = _assessments(gw, ["DUD-20", "DUD-21"])
    assert {d.verdict for d in handle_batch(gw, seen)} == {Verdict.ACK}
    batch = _assessments(gw, refs)
    with captured(gw.ledger.engine) as statements:
        assert {d.verdict for d in handle_batch(gw, batch)} == {Verdict.ACK}
    assert len([sql for sql, _ in statements if "content_digest =" in sql]) == 1
    by_id = {r.message_id: r for r in gw.ledger.find(authority="336", direction=Direction.INBOUND)}
    first_of = {"DUD-20": seen[0], "DUD-21": seen[1], "DUD-22": batch[1]}
    for delivery, ref in zip(batch, refs, strict=True):
        record = by_id[delivery.message_id or ""]
        first = first_of.get(ref)
        if first is None or first is delivery:
            assert record.status == Status.VERIFIED, ref
        else:
            assert record.status == Status.DUPLICATE, ref
            assert f"identical to {first.message_id}" in (record.reason or ""), ref


def test_the_content_read_answers_for_more_records_than_one_statement_takes(
    gw: Gateway,
) -> None:
    received = _assessments(gw, [f"DUD-{n}" for n in range(30, 33)])
    assert {d.verdict for d in handle_batch(gw, received)} == {Verdict.ACK}
    with gw.ledger.transaction() as conn:
        rows = conn.execute(select(messages.c.message_id, messages.c.content_digest)).all()
    content_of = {r[0]: r[1] for r in rows}
    digests = [str(content_of[d.message_id]) for d in received]
    asked = [f"{n:064x}" for n in range(250)] + digests + [digests[0]]
    with gw.ledger.transaction() as conn, captured(gw.ledger.engine) as statements:
        found = gw.ledger.same_content(conn, "336", "332", asked)
    assert found == {d: r.message_id for d, r in zip(digests, received, strict=True)}
    assert len(statements) == 16  # 253 distinct digests, 16 to a statement


def test_the_content_read_takes_a_few_statement_shapes_whatever_the_batch_size(
    gw: Gateway,
) -> None:
    # Each shape is compiled and cached once (about 24 KB a digest): one shape per
    # batch size up to 100 held 120 MB more in a receiving gateway.
    with gw.ledger.transaction() as conn:
        shapes = set()
        for count in range(1, 40):
            with captured(gw.ledger.engine) as statements:
                gw.ledger.same_content(conn, "336", "332", [f"{n:064x}" for n in range(count)])
            shapes.update(sql for sql, _ in statements)
    assert len(shapes) == 3


def _sent(gw: Gateway, count: int) -> list[tuple[str, str]]:
    """``count`` messages 332 sent to 336 and awaits receipts for: (message id, digest)."""
    made = [queued("332", "332", n) for n in range(count)]
    gw.ledger.mark_sent(gw.ledger.record(made), None)
    return [(m.message_id, m.digest or "") for m in made]


@pytest.mark.parametrize("count", [1, 3, 16, 17, 40])
def test_a_receipt_finds_the_messages_it_settles_by_the_unique_key_not_every_send(
    gw: Gateway, count: int
) -> None:
    # Issue 14: the sender's receipt read named the authority but not the sender of
    # its own sends, so every receipt read every message the authority ever sent.
    # A receipt of up to 16 items finds them in its update, by (id, digest), with no
    # read first; a larger one reads their keys first.
    sent = _sent(gw, count)
    with captured(gw.ledger.engine) as statements:
        settled = gw.ledger.mark_delivered(
            "332", [(m, d, Status.DELIVERED, None) for m, d in sent], "336"
        )
    assert settled == count
    found = plans(gw.ledger.engine, statements)
    reads = [sql for sql in found if sql.lstrip().startswith("SELECT") and "FROM messages" in sql]
    moves = [sql for sql in found if sql.lstrip().startswith("UPDATE messages")]
    assert len(reads) == (0 if count <= 16 else 1), reads
    assert len(moves) == 1, moves
    for sql in (*reads, *moves):
        assert "SCAN" not in found[sql], f"{sql}\n{found[sql]}"
        assert "message_id=?" in found[sql] or "rowid=?" in found[sql], f"{sql}\n{found[sql]}"
    status = {r.message_id: r.status for r in gw.ledger.find(authority="332", with_history=False)}
    assert set(status.values()) == {Status.DELIVERED}


def test_an_outbound_message_whose_sender_is_not_its_authority_is_refused(gw: Gateway) -> None:
    message = queued("336", "332")
    with pytest.raises(LedgerError, match="sender 336 is not the authority 332"):
        gw.ledger.record([message])
    assert gw.ledger.find(message_id=message.message_id) == []
