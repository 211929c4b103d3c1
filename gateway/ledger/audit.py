"""Append-only, hash-chained audit log of disclosures and overrides.

Each entry's hash is SHA-256 over its canonical JSON content and the
previous entry's hash; ``verify`` recomputes the chain and reports every
entry that was altered, inserted or deleted. A chain alone cannot show that
its newest entries were cut off, so ``verify`` also checks that every
outbound message carrying personal data has its DISCLOSURE entry, and can
compare the head with one recorded elsewhere (``cafgw audit head``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, func, insert, select

from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger, as_utc
from gateway.ledger.tables import audit, messages

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    action: str  # DISCLOSURE, SAFEGUARDING_OVERRIDE, REPLAY, CONSENT_WITHDRAWAL, ...
    authority: str
    counterparty: str | None = None
    legal_basis: str | None = None
    message_id: str | None = None
    digest: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    event: AuditEvent
    prev_hash: str
    hash: str


def _entry_hash(seq: int, at: datetime, event: AuditEvent, prev_hash: str) -> str:
    content = json.dumps(
        {
            "seq": seq,
            "at": as_utc(at).isoformat(),
            "actor": event.actor,
            "action": event.action,
            "authority": event.authority,
            "counterparty": event.counterparty,
            "legal_basis": event.legal_basis,
            "message_id": event.message_id,
            "digest": event.digest,
            "detail": event.detail,
            "prev": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def append(ledger: Ledger, events: list[AuditEvent], conn: Connection) -> None:
    """Append events in the caller's transaction (so they commit with what they record)."""
    if not events:
        return
    if conn.dialect.name == "postgresql":
        # Serialise appenders so two processes never fork the chain.
        conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
    last = conn.execute(
        select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
    ).first()
    seq, prev = (int(last[0]), str(last[1])) if last else (0, GENESIS)
    now = ledger.clock()
    rows = []
    for event in events:
        seq += 1
        digest = _entry_hash(seq, now, event, prev)
        rows.append(
            {
                "seq": seq,
                "at": now,
                "actor": event.actor,
                "action": event.action,
                "authority": event.authority,
                "counterparty": event.counterparty,
                "legal_basis": event.legal_basis,
                "message_id": event.message_id,
                "digest": event.digest,
                "detail": event.detail,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    conn.execute(insert(audit), rows)


def entries(ledger: Ledger, authority: str | None = None, limit: int = 1000) -> list[AuditEntry]:
    query = select(audit).order_by(audit.c.seq).limit(limit)
    if authority is not None:
        query = query.where(audit.c.authority == authority)
    with ledger.transaction() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        AuditEntry(
            seq=r["seq"],
            at=as_utc(r["at"]),
            event=AuditEvent(
                r["actor"],
                r["action"],
                r["authority"],
                r["counterparty"],
                r["legal_basis"],
                r["message_id"],
                r["digest"],
                r["detail"],
            ),
            prev_hash=r["prev_hash"],
            hash=r["hash"],
        )
        for r in rows
    ]


def head(ledger: Ledger) -> tuple[int, str] | None:
    """The newest entry's (seq, hash), to keep outside the database as an anchor."""
    with ledger.transaction() as conn:
        last = conn.execute(
            select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
        ).first()
    return (int(last[0]), str(last[1])) if last else None


def verify(ledger: Ledger, expect_head: tuple[int, str] | None = None) -> list[str]:
    """Problems found in the chain (empty when intact).

    ``expect_head`` is an anchor from ``head`` taken earlier: that entry must
    still be there with that hash, which catches entries cut off the end.
    """
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    with ledger.transaction() as conn:
        total = conn.execute(select(func.count()).select_from(audit)).scalar_one()
    chain = entries(ledger, limit=max(int(total), 1))
    for entry in chain:
        if entry.seq != expected_seq:
            problems.append(f"audit entry {expected_seq} is missing (next is {entry.seq})")
        if entry.prev_hash != prev:
            problems.append(
                f"audit entry {entry.seq}: previous hash does not match entry {entry.seq - 1}"
            )
        if _entry_hash(entry.seq, entry.at, entry.event, entry.prev_hash) != entry.hash:
            problems.append(f"audit entry {entry.seq}: content altered (hash mismatch)")
        prev = entry.hash
        expected_seq = entry.seq + 1
    if expect_head is not None:
        seq, digest = expect_head
        found = next((e for e in chain if e.seq == seq), None)
        if found is None:
            problems.append(f"audit entry {seq} (the recorded head) is missing: entries were cut")
        elif found.hash != digest:
            problems.append(f"audit entry {seq} (the recorded head) has another hash")
    problems.extend(_unaudited_disclosures(ledger, chain))
    return problems


def _unaudited_disclosures(ledger: Ledger, chain: list[AuditEntry]) -> list[str]:
    """Outbound messages with personal data whose DISCLOSURE entry is gone.

    A HELD_LOCAL message never left (it waits for consent, unsent): it has a
    body and a recipient but disclosed nothing, so it needs no entry. When it
    is released it becomes SIGNED and gets its DISCLOSURE entry then.
    """
    audited = {
        (e.event.message_id, e.event.digest) for e in chain if e.event.action == "DISCLOSURE"
    }
    query = select(messages.c.message_id, messages.c.digest, messages.c.authority).where(
        and_(
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.legal_basis != "NO_PERSONAL_DATA",
            messages.c.recipient != messages.c.authority,
            messages.c.body.is_not(None),
            messages.c.status != Status.HELD_LOCAL.value,
        )
    )
    with ledger.transaction() as conn:
        rows = conn.execute(query).all()
    return [
        f"message {r.message_id} from {r.authority} disclosed personal data but has no "
        "DISCLOSURE audit entry (entry deleted?)"
        for r in rows
        if (r.message_id, r.digest) not in audited
    ]
