"""What the audit anchors cost per receipt: the heads given back to a peer are read in
one statement, and the heads a peer gives back are kept in at most three, however
many it gives back (each statement costs ~20-50 µs of SQLAlchemy; docs/performance.md,
issue 14). On SQLite, and on PostgreSQL (``-m integration``), whose integer
arithmetic differs."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from sqlalchemy import false, insert, select
from support.databases import on_both
from support.sql import captured

from gateway.ledger import audit_anchor
from gateway.ledger.store import Ledger
from gateway.ledger.tables import audit_anchors, audit_peer_heads
from gateway.model import AuditHead, HeldAuditHead

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SCALE = audit_anchor._DRAW_SCALE


def _digest(n: int) -> str:
    return f"{n:064x}"


def _report(ledger: Ledger, heads: list[tuple[str, int]]) -> dict[int, HeldAuditHead]:
    """Keep the heads (peer, seq) as peers' receipts report them, in this order: by id."""
    found = {}
    with ledger.transaction() as conn:
        for n, (peer, seq) in enumerate(heads):
            message_id = f"receipt-{n}"
            conn.execute(
                insert(audit_peer_heads).values(
                    authority="332",
                    peer=peer,
                    seq=seq,
                    hash=_digest(seq),
                    received_at=NOW,
                    message_id=message_id,
                )
            )
            found[seq] = HeldAuditHead(seq, _digest(seq), message_id)
    return found


def _span(ledger: Ledger, peer: str) -> list[int]:
    with ledger.transaction() as conn:
        return list(
            conn.execute(
                select(audit_peer_heads.c.id)
                .where(audit_peer_heads.c.peer == peer)
                .order_by(audit_peer_heads.c.id)
            ).scalars()
        )


@on_both
def test_the_newest_highest_and_a_drawn_head_are_read_in_one_statement(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    heads = _report(ledger, [("336", 5), ("336", 9), ("337", 11), ("336", 7)])
    monkeypatch.setattr(audit_anchor.secrets, "randbelow", lambda n: 0)  # draws the oldest
    with ledger.transaction() as conn, captured(ledger.engine) as statements:
        given = audit_anchor.to_give_back(conn, "336")
    assert len(statements) == 1, statements
    assert given == (heads[7], heads[9], heads[5])  # newest, highest, drawn


@on_both
def test_a_peer_that_reported_no_heads_is_given_none_back_in_one_statement(
    ledger: Ledger,
) -> None:
    _report(ledger, [("337", 3)])
    with ledger.transaction() as conn, captured(ledger.engine) as statements:
        assert audit_anchor.to_give_back(conn, "336") == ()
    assert len(statements) == 1, statements


# 336's heads (seq 1-5) are not contiguous in id: 337's receipts came before, between
# and after them.
INTERLEAVED = [
    ("337", 100),
    *[(peer, seq) for n in range(1, 6) for peer, seq in (("336", n), ("337", 100 + n))],
    ("337", 200),
]


@on_both
def test_every_head_of_a_peer_is_drawn_in_time_and_none_of_another_peer(
    ledger: Ledger,
) -> None:
    heads = _report(ledger, INTERLEAVED)
    theirs = [heads[seq] for seq in range(1, 6)]
    seen: set[HeldAuditHead] = set()
    with ledger.transaction() as conn:
        for _ in range(300):
            given = audit_anchor.to_give_back(conn, "336")
            assert given[0] == theirs[-1]  # the newest is the highest: then the drawn one
            seen.update(given)
    assert seen == set(theirs)


@on_both
def test_the_drawn_id_is_an_integer_within_the_peers_span_for_any_draw(ledger: Ledger) -> None:
    _report(ledger, INTERLEAVED)
    ids = _span(ledger, "336")
    edges = [0, 1, SCALE // 2, SCALE - 2, SCALE - 1]
    with ledger.transaction() as conn:
        drawn = {
            draw: conn.execute(
                select(audit_anchor._DRAWN_ID), {"peer": "336", "draw": draw}
            ).scalar_one()
            for draw in [*edges, *(secrets.randbelow(SCALE) for _ in range(50))]
        }
    assert all(isinstance(d, int) and ids[0] <= d <= ids[-1] for d in drawn.values()), drawn
    assert (drawn[0], drawn[SCALE - 1]) == (ids[0], ids[-1])


@on_both
def test_heads_given_back_again_are_kept_once_in_at_most_three_statements(
    ledger: Ledger,
) -> None:
    known = HeldAuditHead(4, _digest(4), "ours-1")
    with ledger.transaction() as conn:
        audit_anchor.record_receipt(conn, "332", "336", "theirs-1", None, [known], NOW)
    new = HeldAuditHead(8, _digest(8), "ours-2")
    again = HeldAuditHead(8, _digest(8), "ours-3")  # the same head, reported twice
    other_hash = HeldAuditHead(4, _digest(44), "ours-4")  # seq 4, but another hash
    with ledger.transaction() as conn, captured(ledger.engine) as statements:
        audit_anchor.record_receipt(
            conn, "332", "336", "theirs-2", AuditHead(20, _digest(20)), [known, new, again], NOW
        )
    assert len(statements) <= 3, statements
    with ledger.transaction() as conn, captured(ledger.engine) as statements:
        audit_anchor.record_receipt(
            conn, "332", "336", "theirs-3", None, [new, other_hash, known], NOW
        )
    assert len(statements) <= 2, statements
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(
                audit_anchors.c.seq,
                audit_anchors.c.hash,
                audit_anchors.c.reported_in,
                audit_anchors.c.message_id,
            ).order_by(audit_anchors.c.id)
        ).all()
        peer_heads = conn.execute(select(audit_peer_heads.c.seq, audit_peer_heads.c.hash)).all()
    assert [tuple(r) for r in rows] == [
        (4, _digest(4), "ours-1", "theirs-1"),
        (8, _digest(8), "ours-2", "theirs-2"),
        (4, _digest(44), "ours-4", "theirs-3"),
    ]
    assert [tuple(r) for r in peer_heads] == [(20, _digest(20))]


@on_both
def test_a_head_another_replica_kept_meanwhile_is_kept_once_and_the_batch_goes_on(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two replicas receiving receipts from one peer read the same head as unknown;
    # the second insert failed on uq_audit_anchor and rolled its whole batch back.
    head = HeldAuditHead(4, _digest(4), "ours-1")
    with ledger.transaction() as conn:
        audit_anchor.record_receipt(conn, "332", "336", "theirs-1", None, [head], NOW)
    # Read before the first committed: every size of the read finds nothing.
    unseen = {size: read.where(false()) for size, read in audit_anchor._ANCHORS_KNOWN.items()}
    monkeypatch.setattr(audit_anchor, "_ANCHORS_KNOWN", unseen)
    with ledger.transaction() as conn:
        audit_anchor.record_receipt(conn, "332", "336", "theirs-2", None, [head], NOW)
    with ledger.transaction() as conn:
        rows = conn.execute(select(audit_anchors.c.seq, audit_anchors.c.message_id)).all()
    assert [tuple(r) for r in rows] == [(4, "theirs-1")]
