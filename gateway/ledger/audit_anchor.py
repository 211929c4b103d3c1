"""The audit chain anchored at the peers: heads they hold, checked against the chain.

A chain alone cannot show that it was cut back or rewritten whole by someone
holding the audit key (the host's own administrator can read it). So every
signed receipt carries the signer's head (``Receipt.audit_head``: sequence
number and hash), and the recipient keeps it (``audit_peer_heads``). In the
receipts it sends that peer later, it gives some of those heads back
(``Receipt.held_heads``), signed by its own key; the peer keeps what it is
given back (``audit_anchors``) and checks that its chain still contains each
head with the same hash, and verifies up to it. Anything a peer has seen
cannot then be cut off or rewritten unnoticed: the entry is gone, or its
hash is another, or the chain before it no longer verifies.

``cafgw audit heads`` prints the heads a peer reported here, so that an
auditor can also check that peer's chain against all of them
(``cafgw audit verify --peer-heads FILE`` at the peer).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.errors import ConfigError
from gateway.ledger import audit_verify
from gateway.ledger.audit import GENESIS
from gateway.ledger.in_lists import EXPANDING, SIZES, bind, in_list, size_of
from gateway.ledger.store import Ledger, as_utc
from gateway.ledger.tables import audit, audit_anchor_checks, audit_anchors, audit_peer_heads
from gateway.model import AuditHead, HeldAuditHead

# At most this many heads are given back per receipt (the XSD allows 3).
GIVE_BACK = 3


@dataclass(frozen=True)
class Anchor:
    """A head of this gateway's chain that ``peer`` holds."""

    authority: str  # the hosted authority the peer's receipt came to
    peer: str
    seq: int
    hash: str
    reported_in: str  # our receipt that reported it ("" when read from an export)
    message_id: str  # the peer's receipt that gave it back (or the export file)


@dataclass(frozen=True)
class Mismatch:
    anchor: Anchor
    problem: str

    def __str__(self) -> str:
        a = self.anchor
        source = f"given back in {a.message_id}" if a.reported_in else f"from {a.message_id}"
        return f"peer {a.peer} holds audit head {a.seq}:{a.hash[:12]}… ({source}): {self.problem}"


@dataclass(frozen=True)
class AnchorStatus:
    """The last check of the anchors one peer holds for one hosted authority."""

    authority: str
    peer: str
    checked_at: datetime
    anchors: int
    mismatches: int
    detail: str | None


# --- what receipts carry ------------------------------------------------------


# Read for every receipt: built once (a statement built afresh costs SQLAlchemy its
# cache key on each call, more CPU than the read; docs/performance.md, issue 14).
_OWN_HEAD = select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
_HEADS = audit_peer_heads
_HEAD_COLUMNS = (_HEADS.c.seq, _HEADS.c.hash, _HEADS.c.message_id)
_OF_PEER = _HEADS.c.peer == bindparam("peer")
# The draw is an integer below _DRAW_SCALE from `secrets` (a peer must not predict
# which of its heads comes back); the offset (span * draw) // _DRAW_SCALE is then
# below the span, in integer arithmetic on SQLite and PostgreSQL alike (a float cast
# to INTEGER truncates on SQLite but rounds on PostgreSQL, and could exceed the span).
# span < 2**31 ids, so the product stays below 2**62: no overflow.
_DRAW_SCALE = 2**31
_LO = select(func.min(_HEADS.c.id)).where(_OF_PEER).scalar_subquery()
_HI = select(func.max(_HEADS.c.id)).where(_OF_PEER).scalar_subquery()
_DRAWN_ID = _LO + (
    cast(_HI - _LO + 1, BigInteger) * bindparam("draw", type_=BigInteger)
) // literal(_DRAW_SCALE, BigInteger)


def _one_head(
    pick: int, *where: ColumnElement[bool], order: Sequence[ColumnElement[Any]]
) -> Select[Any]:
    """One head of the peer, wrapped so that a compound select may carry its LIMIT."""
    head = (
        select(*_HEAD_COLUMNS, literal_column(str(pick)).label("pick"))
        .where(_OF_PEER, *where)
        .order_by(*order)
        .limit(1)
        .subquery()
    )
    return select(*head.c)


# The newest head (what a cut would remove), the highest (a cut-back chain reports
# lower ones afterwards) and one drawn from the peer's span of ids: one statement,
# since each costs ~20-50 µs of SQLAlchemy per receipt (docs/performance.md, issue 14).
_HEADS_TO_GIVE_BACK = union_all(
    _one_head(0, order=[_HEADS.c.id.desc()]),
    _one_head(1, order=[_HEADS.c.seq.desc(), _HEADS.c.id.desc()]),
    _one_head(2, _HEADS.c.id >= _DRAWN_ID, order=[_HEADS.c.id]),
).order_by("pick")


def anchors_here(peer: str, hosted: Iterable[str]) -> bool:
    """Whether ``peer``'s receipts anchor this gateway's chain: only a peer on another
    ledger does. One hosted here (the authority itself, when a record is shared within
    the LA, or another authority on this gateway) shares the ledger, and whoever can
    cut the chain can cut what it would hold: its receipts carry no heads, and heads
    in one (from an older version) are not kept."""
    return peer not in hosted


def own_head(conn: Connection) -> AuditHead:
    """This gateway's chain head as a receipt reports it (0 and the genesis hash when empty)."""
    last = conn.execute(_OWN_HEAD).first()
    return AuditHead(0, GENESIS) if last is None else AuditHead(int(last[0]), str(last[1]))


def to_give_back(conn: Connection, peer: str) -> tuple[HeldAuditHead, ...]:
    """Heads ``peer`` reported here, to give back in a receipt to it.

    The newest (what a cut would remove), the highest (a cut-back chain
    reports lower ones afterwards) and one drawn at random from all of them
    (so a rewrite of older entries is found in time even if the newest heads
    were reported after the rewrite).
    """
    rows = conn.execute(
        _HEADS_TO_GIVE_BACK, {"peer": peer, "draw": secrets.randbelow(_DRAW_SCALE)}
    ).all()
    found: dict[tuple[int, str], HeldAuditHead] = {}
    for row in rows:
        found.setdefault((row.seq, row.hash), HeldAuditHead(row.seq, row.hash, row.message_id))
    return tuple(found.values())[:GIVE_BACK]


# --- what received receipts carry -------------------------------------------------


# Run for every receipt received (at most three statements, however many heads it
# gives back): built once, like the reads above.
_PEER_HEAD_INSERT = insert(audit_peer_heads)
_ANCHOR_INSERT = {
    "postgresql": pg_insert(audit_anchors).on_conflict_do_nothing(constraint="uq_audit_anchor"),
    "sqlite": sqlite_insert(audit_anchors).on_conflict_do_nothing(),
}


def _anchor_insert(conn: Connection) -> Any:
    """An insert of anchors that leaves one already recorded as it is."""
    return _ANCHOR_INSERT.get(conn.dialect.name, insert(audit_anchors))


# Per size of the list of sequence numbers (at most ``GIVE_BACK`` from a peer that
# keeps to the XSD): no expanding IN (``gateway.ledger.in_lists``).
_ANCHORS_KNOWN = {
    size: select(audit_anchors.c.seq, audit_anchors.c.hash).where(
        audit_anchors.c.authority == bindparam("authority"),
        audit_anchors.c.peer == bindparam("peer"),
        in_list(audit_anchors.c.seq, "seqs", size),
    )
    for size in (*SIZES, EXPANDING)
}


def record_receipt(
    conn: Connection,
    authority: str,
    peer: str,
    message_id: str,
    head: AuditHead | None,
    held: Sequence[HeldAuditHead],
    now: datetime,
) -> None:
    """Keep the head a peer's receipt reports and the heads of ours it gives back.

    A head given back again (in this receipt or an earlier one) is kept once.
    """
    if head is not None:
        conn.execute(
            _PEER_HEAD_INSERT,
            {
                "authority": authority,
                "peer": peer,
                "seq": head.seq,
                "hash": head.hash,
                "received_at": now,
                "message_id": message_id,
            },
        )
    given: dict[tuple[int, str], HeldAuditHead] = {}
    for h in held:
        given.setdefault((h.seq, h.hash), h)  # in the receipt's order, the first of equals
    if not given:
        return
    seqs = sorted({seq for seq, _ in given})
    size = size_of(seqs)
    known = conn.execute(
        _ANCHORS_KNOWN[size], {"authority": authority, "peer": peer, **bind("seqs", seqs, size)}
    ).all()
    for row in known:
        given.pop((row.seq, row.hash), None)
    if given:
        # Another replica may record the same head from the same peer meanwhile (both
        # read it as unknown): the first one stays, and neither batch rolls back.
        conn.execute(
            _anchor_insert(conn),
            [
                {
                    "authority": authority,
                    "peer": peer,
                    "seq": h.seq,
                    "hash": h.hash,
                    "reported_in": h.reported_in,
                    "received_at": now,
                    "message_id": message_id,
                }
                for h in given.values()
            ],
        )


# --- checking the chain against them ----------------------------------------------


def anchors(ledger: Ledger) -> list[Anchor]:
    """Every head of this gateway's chain that peers gave back."""
    with ledger.transaction() as conn:
        rows = conn.execute(select(audit_anchors).order_by(audit_anchors.c.id)).mappings().all()
    return [
        Anchor(r["authority"], r["peer"], r["seq"], r["hash"], r["reported_in"], r["message_id"])
        for r in rows
    ]


def mismatches(ledger: Ledger, held: Iterable[Anchor], *, walk: bool = True) -> list[Mismatch]:
    """The anchors this chain does not contain: entry gone or with another hash, and
    (``walk``: the chain is read and verified up to the highest anchor) a chain that
    no longer verifies up to it.

    Without ``walk`` only the anchored entries are read: what a cut or a rewrite
    with recomputed hashes changes, at a cost that does not grow with the chain.
    An entry edited without recomputing anything is the chain's own check
    (``audit_verify``, ``cafgw audit verify``).
    """
    held = [a for a in held if a.seq > 0]  # 0: the empty chain's head, in every chain
    if not held:
        return []
    broken: int | None = None
    if walk:
        chain = audit_verify.whole_chain(ledger, up_to=max(a.seq for a in held))
        by_seq = {e.seq: e.hash for e in chain}
        broken = audit_verify.first_break(chain, ledger.audit_key)
    else:
        by_seq = _hashes_at(ledger, sorted({a.seq for a in held}))
    with ledger.transaction() as conn:
        last = own_head(conn).seq
    found: list[Mismatch] = []
    for a in held:
        digest = by_seq.get(a.seq)
        if digest is None:
            why = (
                f"entry {a.seq} is gone (the chain ends at {last}): entries were cut off"
                if a.seq > last
                else f"entry {a.seq} is gone: entries were deleted"
            )
            found.append(Mismatch(a, why))
        elif digest != a.hash:
            found.append(Mismatch(a, f"entry {a.seq} has another hash: the chain was rewritten"))
        elif broken is not None and broken <= a.seq:
            found.append(
                Mismatch(a, f"the chain no longer verifies from entry {broken}, before this head")
            )
    return found


def _hashes_at(ledger: Ledger, seqs: Sequence[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    with ledger.transaction() as conn:
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            found.update(
                (int(r.seq), str(r.hash))
                for r in conn.execute(
                    select(audit.c.seq, audit.c.hash).where(audit.c.seq.in_(chunk))
                ).all()
            )
    return found


def check(ledger: Ledger, now: datetime, *, walk: bool = True) -> list[AnchorStatus]:
    """Check the chain against every anchor (see ``mismatches``) and keep the outcome
    per (authority, peer) for the metric ``cafgw_audit_anchor_mismatch``."""
    held = anchors(ledger)
    bad = mismatches(ledger, held, walk=walk)
    groups: dict[tuple[str, str], list[Anchor]] = {}
    for a in held:
        groups.setdefault((a.authority, a.peer), []).append(a)
    statuses = []
    for (authority, peer), group in sorted(groups.items()):
        theirs = [m for m in bad if (m.anchor.authority, m.anchor.peer) == (authority, peer)]
        statuses.append(
            AnchorStatus(
                authority,
                peer,
                now,
                len(group),
                len(theirs),
                str(theirs[0]) if theirs else None,
            )
        )
    with ledger.transaction() as conn:
        conn.execute(delete(audit_anchor_checks))
        if statuses:
            conn.execute(
                insert(audit_anchor_checks),
                [
                    {
                        "authority": s.authority,
                        "peer": s.peer,
                        "checked_at": s.checked_at,
                        "anchors": s.anchors,
                        "mismatches": s.mismatches,
                        "detail": s.detail,
                    }
                    for s in statuses
                ],
            )
    return statuses


def last_checked(ledger: Ledger) -> list[AnchorStatus]:
    """The outcome of the last check, per (authority, peer)."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(audit_anchor_checks).order_by(
                audit_anchor_checks.c.authority, audit_anchor_checks.c.peer
            )
        ).all()
    return [
        AnchorStatus(r.authority, r.peer, as_utc(r.checked_at), r.anchors, r.mismatches, r.detail)
        for r in rows
    ]


def last_check_at(ledger: Ledger) -> datetime | None:
    with ledger.transaction() as conn:
        at = conn.execute(select(func.max(audit_anchor_checks.c.checked_at))).scalar()
    return None if at is None else as_utc(at)


# --- heads a peer reported, exported for an auditor ---------------------------------


def peer_heads(ledger: Ledger, peer: str | None = None) -> list[dict[str, object]]:
    """The heads peers reported here (``peer`` only, when given), oldest first."""
    query = select(audit_peer_heads).order_by(audit_peer_heads.c.id)
    if peer is not None:
        query = query.where(audit_peer_heads.c.peer == peer)
    with ledger.transaction() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        {
            "peer": r["peer"],
            "held_by": r["authority"],
            "seq": r["seq"],
            "hash": r["hash"],
            "received_at": as_utc(r["received_at"]).isoformat(),
            "message_id": r["message_id"],
        }
        for r in rows
    ]


def read_export(path: Path, own: Sequence[str]) -> list[Anchor]:
    """Anchors from a ``cafgw audit heads`` export (JSON lines) made at a peer;
    only the heads of ``own`` authorities (this gateway's) are taken."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the peer heads: {exc}") from exc
    found = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            anchor = Anchor(
                authority=str(row["peer"]),
                peer=str(row["held_by"]),
                seq=int(row["seq"]),
                hash=str(row["hash"]),
                reported_in="",
                message_id=f"{path.name}:{number}",
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path}, line {number}: not a head from `cafgw audit heads` ({exc})"
            ) from None
        if anchor.authority in own:
            found.append(anchor)
    return found
