"""``IN`` lists bound at fixed sizes (``gateway.ledger.in_lists``) match what the
expanding form matched: a list padded with its last value finds the same rows, a
list longer than the largest size is bound expanding, and only constants are ever
written into a statement's text."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select
from support.databases import on_both
from support.outbound import queued

from gateway.feature import ReceiptNote
from gateway.ledger.core import ONE_MORE_ATTEMPT
from gateway.ledger.in_lists import EXPANDING, SIZES, among, bind, in_list, size_of
from gateway.ledger.inbox import _inbound_known
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import messages
from gateway.lifecycle.receiver import receipt_notes
from gateway.lifecycle.tables import received
from gateway.model import ActionTaken

_META = MetaData()
_ROWS = Table("rows", _META, Column("id", Integer, primary_key=True), Column("kind", String(16)))


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 9, 16, 17, 100])
def test_an_in_list_of_any_length_finds_exactly_its_values(count: int) -> None:
    engine = create_engine("sqlite://")
    _META.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(_ROWS), [{"id": i, "kind": "A"} for i in range(1, 301)])
        wanted = list(range(3, 3 + 2 * count, 2))
        size = size_of(wanted)
        assert size == next((s for s in SIZES if s >= count), EXPANDING)
        found = conn.execute(
            select(_ROWS.c.id).where(in_list(_ROWS.c.id, "ids", size)), bind("ids", wanted, size)
        ).all()
    assert sorted(r[0] for r in found) == wanted


def test_values_are_padded_with_the_last_and_never_more_than_the_size() -> None:
    assert bind("k", [7, 8, 9], 4) == {"k_0": 7, "k_1": 8, "k_2": 9, "k_3": 9}
    assert bind("k", [7] * 20, EXPANDING) == {"k": [7] * 20}
    with pytest.raises(ValueError, match="5 values bound to an IN list of 4"):
        bind("k", [1, 2, 3, 4, 5], 4)
    with pytest.raises(ValueError, match="at least one"):
        size_of([])


def test_only_upper_case_names_are_written_into_the_statement() -> None:
    engine = create_engine("sqlite://")
    _META.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(_ROWS), [{"id": 1, "kind": "SENT"}, {"id": 2, "kind": "DELIVERED"}])
        statement = select(_ROWS.c.id).where(among(_ROWS.c.kind, ["SENT", "RETRYING"]))
        assert "'RETRYING', 'SENT'" in str(statement.compile(engine))
        assert [r[0] for r in conn.execute(statement)] == [1]
    with pytest.raises(ValueError, match="not a constant"):
        among(_ROWS.c.kind, ["SENT'); DROP TABLE rows; --"])
    with pytest.raises(ValueError, match="at least one"):
        among(_ROWS.c.kind, [])


@on_both
@pytest.mark.parametrize("count", [1, 2, 3, 5, 16, 17, 40])
def test_a_move_of_any_number_of_keys_moves_those_rows_once_and_no_other(
    ledger: Ledger, count: int
) -> None:
    pks = ledger.record([queued(n=i) for i in range(count + 2)])
    chosen, others = pks[1 : count + 1], [pks[0], pks[-1]]
    moved = ledger.transition_from(
        [*chosen, chosen[0]], (Status.SIGNED,), Status.SENT, "sent", attempts=ONE_MORE_ATTEMPT
    )
    assert sorted(moved) == chosen
    rows = {r.pk: r for r in ledger.find(authority="332")}
    assert all(rows[pk].status is Status.SENT and rows[pk].attempts == 1 for pk in chosen)
    assert all(sum(h.status is Status.SENT for h in rows[pk].history) == 1 for pk in chosen)
    assert all(rows[pk].status is Status.SIGNED for pk in others)
    # Moved already: a second move from SIGNED finds none of them.
    assert ledger.transition_from(chosen, (Status.SIGNED,), Status.SENT) == []
    assert ledger.still_queued(pks) == set(others)


@on_both
@pytest.mark.parametrize("count", [1, 3, 17])
def test_a_receipt_of_any_number_of_items_settles_exactly_the_sends_it_names(
    ledger: Ledger, count: int
) -> None:
    sent = [queued(n=i) for i in range(count + 1)]
    pks = ledger.record(sent)
    ledger.transition(pks, Status.SENT)
    items = [(m.message_id, m.digest or "", Status.DELIVERED, "receipt r-1") for m in sent[:count]]
    # An item with another digest than the one sent settles nothing.
    items.append((sent[-1].message_id, "f" * 64, Status.DELIVERED, "receipt r-1"))
    assert ledger.mark_delivered("332", items, "336") == count
    status = {r.pk: r.status for r in ledger.find(authority="332", with_history=False)}
    assert status == {pk: Status.DELIVERED for pk in pks[:count]} | {pks[-1]: Status.SENT}


@on_both
def test_a_receipt_settles_only_what_was_sent_to_its_signer_item_by_item_in_order(
    ledger: Ledger,
) -> None:
    first, second = (queued(n=i) for i in range(2))
    pks = ledger.record([first, second])
    ledger.transition(pks, Status.SENT)
    # Signed by another authority than the one the messages went to: nothing moves.
    items = [(first.message_id, first.digest or "", Status.DELIVERED, None)]
    assert ledger.mark_delivered("332", items, "335") == 0
    # An unknown item first, then one message reported twice: the outcomes apply in
    # the order of the items found (DELIVERED, then UNDELIVERABLE, which may follow it).
    items = [
        ("unknown", "0" * 64, Status.UNDELIVERABLE, "gone"),
        (first.message_id, first.digest or "", Status.DELIVERED, None),
        (first.message_id, first.digest or "", Status.UNDELIVERABLE, "gone"),
        (second.message_id, second.digest or "", Status.DELIVERED, None),
    ]
    assert ledger.mark_delivered("332", items, "336") == 3
    rows = {r.pk: r for r in ledger.find(authority="332")}
    assert [h.status for h in rows[pks[0]].history][-3:] == [
        Status.SENT,
        Status.DELIVERED,
        Status.UNDELIVERABLE,
    ]
    assert rows[pks[1]].status is Status.DELIVERED
    assert rows[pks[1]].next_attempt_at is None


@on_both
def test_a_small_receipt_moves_only_this_authoritys_own_send_of_each_item(
    ledger: Ledger,
) -> None:
    # Decoys sharing the item's id and digest, each made to fail as few conditions of
    # the move as the ledger lets it record: an inbound row, another hosted
    # authority's send (its own sender too). (Another recipient: the test above.)
    ours = queued(n=7)
    decoys = [
        replace(ours, direction=Direction.INBOUND),
        replace(ours, authority="333", sender="333"),
    ]
    pks = ledger.record([ours, *decoys])
    ledger.transition(pks, Status.SENT)
    items = [(ours.message_id, ours.digest or "", Status.DELIVERED, "receipt r-1")]
    assert ledger.mark_delivered("332", items, "336") == 1
    rows = {r.pk: r for r in ledger.find(with_history=False)}
    assert rows[pks[0]].status is Status.DELIVERED
    assert rows[pks[0]].next_attempt_at is None
    assert [rows[pk].status for pk in pks[1:]] == [Status.SENT] * len(decoys)


def test_a_move_by_a_lambda_is_refused_as_it_would_keep_a_new_statement_every_call(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        with ledger.transaction() as conn, pytest.raises(TypeError, match="module-level"):
            ledger.move_rows(
                conn,
                lambda size: (messages.c.id == 1,),
                1,
                {},
                (Status.SENT,),
                Status.DELIVERED,
                None,
            )
    finally:
        ledger.engine.dispose()


def _owed(message: NewMessage, authority: str) -> NewMessage:
    """``message`` as received by ``authority``, owed a receipt."""
    return replace(
        message,
        direction=Direction.INBOUND,
        authority=authority,
        statuses=((Status.ACCEPTED, None),),
        receipt_due=True,
        route_to=authority,
    )


@on_both
@pytest.mark.parametrize("count", [1, 2, 3, 5, 16, 17, 40])
def test_a_receipt_claims_checks_and_marks_exactly_the_rows_and_authorities_named(
    ledger: Ledger, count: int
) -> None:
    # Owed a receipt by 336, 337 and 338; each list bound at every size, and beyond.
    owed = {a: [_owed(queued(n=i), a) for i in range(count + 2)] for a in ("336", "337", "338")}
    pks = {a: ledger.record(rows) for a, rows in owed.items()}
    chosen = pks["336"][1 : count + 1]
    with ledger.transaction() as conn:
        # Rows of another authority named, or of an authority not asked for: not claimed.
        named = [*chosen, chosen[0], pks["338"][0]]
        due = ledger.claim_receipts_due(conn, ["336", "337"], 100, named)
        assert [d.pk for d in due] == chosen
        assert [d.pk for d in ledger.claim_receipts_due(conn, ["337"], 100, chosen)] == []
        limited = ledger.claim_receipts_due(conn, ["337", "336"], 2, [pks["336"][-1], *chosen])
        assert [d.pk for d in limited] == sorted([pks["336"][-1], *chosen])[:2]
        loop = ledger.claim_receipts_due(conn, ["337", "338"], 100)
        assert [d.pk for d in loop] == sorted([*pks["337"], *pks["338"]])
        assert ledger.mark_receipted([*chosen, chosen[-1]], "r-1", conn) == count
        assert ledger.mark_receipted(chosen, "r-2", conn) == 0  # receipted already
        assert ledger.mark_receipted([], "r-3", conn) == 0
        assert ledger.mark_receipted(pks["337"] + pks["338"], "r-4", conn) == 2 * (count + 2)
        assert ledger.receipts_owed(conn, ["336"])  # its first and last row
        assert not ledger.receipts_owed(conn, ["337", "338"])
        ledger.mark_receipted([pks["336"][0], pks["336"][-1]], "r-5", conn)
        assert not ledger.receipts_owed(conn, ["336", "337", "338", "339"])
        marked = conn.execute(
            select(messages.c.id, messages.c.receipt_message_id).where(
                messages.c.id.in_([*pks["336"], pks["337"][0]])
            )
        ).all()
    assert dict(marked) == {
        **dict.fromkeys(chosen, "r-1"),
        pks["336"][0]: "r-5",
        pks["336"][-1]: "r-5",
        pks["337"][0]: "r-4",
    }


@on_both
@pytest.mark.parametrize("count", [1, 3, 17])
def test_a_receipts_notes_are_read_for_exactly_the_messages_it_covers(
    ledger: Ledger, count: int
) -> None:
    at = datetime(2026, 12, 6, tzinfo=UTC)
    rows = [
        {
            "authority": "336",
            "sender": sender,
            "message_id": f"m-{i}",
            "kind": "RECALL",
            "original_id": f"o-{i}",
            "action": ActionTaken.WITHDRAWN.value,
            "handed_over_at": None,
            "reason": f"{sender} {i}",
            "at": at,
        }
        for i in range(count + 1)
        for sender in ("332", "333")
    ]
    with ledger.transaction() as conn:
        conn.execute(insert(received), rows)
        keys = [("336", "332", f"m-{i}") for i in range(count)]
        notes = receipt_notes(conn, [*keys, keys[0], ("336", "332", "m-none")])
    assert notes == {k: ReceiptNote(ActionTaken.WITHDRAWN, None, f"332 {k[2][2:]}") for k in keys}


def test_the_read_of_what_a_received_batch_knows_binds_no_expanding_parameter() -> None:
    # Both directions are read (an id names one message of an authority): as constants,
    # or SQLAlchemy re-renders the statement for every batch.
    compiled = _inbound_known(SIZES[0]).compile()
    assert [b.key for b in compiled.binds.values() if b.expanding] == []
