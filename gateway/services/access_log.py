"""Who saw and who received a child's data: reads in the audit chain, and the answer.

Every read of a child's record through the API (the inbox in either
format, the consent register, a case thread, this very report) is a
``READ`` entry in the hash-chained audit log naming the API key's holder,
the child and the message read; every disclosure to another authority is a
``DISCLOSURE`` entry already. ``disclosures`` answers "who saw and who
received this child's data" from those entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select

from gateway.context import Gateway
from gateway.ledger import audit
from gateway.ledger.status import Direction
from gateway.ledger.store import as_utc
from gateway.ledger.tables import audit as audit_table
from gateway.ledger.tables import audit_subjects, messages

READ = "READ"
RECEIVED_ACTIONS = frozenset({"DISCLOSURE", "SAFEGUARDING_OVERRIDE", "CONSENT_WITHDRAWAL"})


@dataclass(frozen=True)
class Read:
    """One thing a caller read: what, about which child, from which message."""

    what: str  # "inbox", "inbox (local format)", "consent", "case", "disclosures"
    child_key: str | None = None
    message_id: str | None = None
    digest: str | None = None
    counterparty: str | None = None  # the authority the message came from


def record(gw: Gateway, authority: str, actor: str, reads: Sequence[Read]) -> None:
    """Append one READ entry per read, in a transaction of its own (before serving)."""
    events = [
        audit.AuditEvent(
            actor=actor,
            action=READ,
            authority=authority,
            counterparty=r.counterparty,
            message_id=r.message_id,
            digest=r.digest,
            detail=r.what,
            child_key=r.child_key,
        )
        for r in reads
    ]
    if not events:
        return
    with gw.ledger.transaction() as conn:
        audit.append(gw.ledger, events, conn)


def inbox_reads(gw: Gateway, authority: str, pks: Sequence[int], what: str) -> list[Read]:
    """Reads for inbox rows ``pks``: each names its message, digest, child and sender."""
    if not pks:
        return []
    # By their keys alone, the authority kept after: beside the keys, SQLite searched
    # by the authority, every message of it at each pull of the inbox (issue 14).
    query = select(
        messages.c.id,
        messages.c.message_id,
        messages.c.digest,
        messages.c.child_key,
        messages.c.sender,
        messages.c.authority,
    ).where(messages.c.id.in_(list(pks)))
    with gw.ledger.transaction() as conn:
        rows = {r.id: r for r in conn.execute(query) if r.authority == authority}
    return [
        Read(what, rows[pk].child_key, rows[pk].message_id, rows[pk].digest, rows[pk].sender)
        for pk in pks
        if pk in rows
    ]


@dataclass(frozen=True)
class AccessEntry:
    """One audit entry about the child, as the disclosures report shows it."""

    seq: int
    at: datetime
    action: str
    actor: str
    counterparty: str | None
    legal_basis: str | None
    message_id: str | None
    detail: str | None


@dataclass(frozen=True)
class Disclosures:
    """Who received the child's data (other authorities) and who saw it (API key holders)."""

    child_key: str
    received: tuple[AccessEntry, ...]
    seen: tuple[AccessEntry, ...]
    other: tuple[AccessEntry, ...]


def disclosures(gw: Gateway, authority: str, child_key: str, limit: int = 1000) -> Disclosures:
    """Every audit entry of ``authority`` about the child, newest first, by kind."""
    about_child = select(audit_subjects.c.seq).where(audit_subjects.c.child_key == child_key)
    its_messages = select(messages.c.message_id).where(
        messages.c.authority == authority,
        messages.c.child_key == child_key,
        messages.c.direction.in_([Direction.OUTBOUND.value, Direction.INBOUND.value]),
    )
    query = (
        select(audit_table)
        .where(
            audit_table.c.authority == authority,
            or_(
                audit_table.c.seq.in_(about_child),
                audit_table.c.message_id.in_(its_messages),
            ),
        )
        .order_by(audit_table.c.seq.desc())
        .limit(limit)
    )
    with gw.ledger.transaction() as conn:
        rows = conn.execute(query).mappings().all()
    found = [
        AccessEntry(
            seq=r["seq"],
            at=as_utc(r["at"]),
            action=r["action"],
            actor=r["actor"],
            counterparty=r["counterparty"],
            legal_basis=r["legal_basis"],
            message_id=r["message_id"],
            detail=r["detail"],
        )
        for r in rows
    ]
    return Disclosures(
        child_key=child_key,
        received=tuple(e for e in found if e.action in RECEIVED_ACTIONS),
        seen=tuple(e for e in found if e.action == READ),
        other=tuple(e for e in found if e.action not in RECEIVED_ACTIONS and e.action != READ),
    )
