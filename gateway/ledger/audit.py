"""Append-only, hash-chained audit log of disclosures, reads and overrides.

Each entry's hash covers its canonical JSON content and the previous
entry's hash. With an audit key (``gateway.ledger.audit_key``) the hash is
an HMAC-SHA256 under that key, so someone who can write the database but
cannot read the key file cannot recompute a rewritten chain. A chain kept
before the key existed stays plain up to an ``AUDIT_KEYED`` entry; every
entry from there on is keyed. ``gateway.ledger.audit_verify`` checks the
chain; ``gateway.ledger.audit_anchor`` checks it against the heads peers hold.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, func, insert, select

from gateway.errors import LedgerError
from gateway.ledger.sqlite_writer import begin_writing
from gateway.ledger.store import Ledger, as_utc
from gateway.ledger.tables import audit, audit_subjects

if TYPE_CHECKING:
    from gateway.ledger.audit_anchor import Anchor

GENESIS = "0" * 64
KEYED_ACTION = "AUDIT_KEYED"


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    action: str  # DISCLOSURE, READ, SAFEGUARDING_OVERRIDE, REPLAY, CONSENT_WITHDRAWAL, ...
    authority: str
    counterparty: str | None = None
    legal_basis: str | None = None
    message_id: str | None = None
    digest: str | None = None
    detail: str | None = None
    child_key: str | None = None  # the child the entry is about, when there is one


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    event: AuditEvent
    prev_hash: str
    hash: str


def _content(seq: int, at: datetime, event: AuditEvent, prev_hash: str) -> bytes:
    fields: dict[str, object] = {
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
    }
    if event.child_key is not None:
        # Only when present, so that entries written before the field existed
        # keep their hashes.
        fields["child"] = event.child_key
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _entry_hash(
    seq: int, at: datetime, event: AuditEvent, prev_hash: str, key: bytes | None = None
) -> str:
    """SHA-256 of the entry's content, or HMAC-SHA256 under ``key``."""
    data = _content(seq, at, event, prev_hash)
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def hashes_as(entry: AuditEntry, key: bytes | None) -> bool:
    """True when ``entry``'s hash is the one ``key`` (None: plain SHA-256) gives."""
    expected = _entry_hash(entry.seq, entry.at, entry.event, entry.prev_hash, key)
    return hmac.compare_digest(expected, entry.hash)


def _last(conn: Connection) -> AuditEntry | None:
    row = (
        conn.execute(
            select(audit, audit_subjects.c.child_key)
            .outerjoin(audit_subjects, audit_subjects.c.seq == audit.c.seq)
            .order_by(audit.c.seq.desc())
            .limit(1)
        )
        .mappings()
        .first()
    )
    return None if row is None else _entry(row)


def append(ledger: Ledger, events: list[AuditEvent], conn: Connection) -> None:
    """Append events in the caller's transaction (so they commit with what they record).

    The entries go in at the end of the transaction (``LedgerCore.before_commit``),
    all of its events at once: the chain's lock (PostgreSQL: ``LOCK TABLE
    audit_log``, so that two processes never fork the chain) is then held
    from there to the commit only, not through the signing and recording
    before it, and replicas accepting records at once are not serialised.
    On a connection outside ``Ledger.transaction()`` they go in at once.

    With an audit key, the first append after the key appeared writes an
    ``AUDIT_KEYED`` entry first. Without one, appending after a keyed entry
    is refused: plain entries after keyed ones would read as a rewrite.
    """
    if not events:
        return
    pending = _PENDING.get(conn)
    if pending is not None:
        pending.extend(events)
        return
    if ledger.before_commit(conn, functools.partial(_flush, ledger)):
        _PENDING[conn] = list(events)
        return
    _write(ledger, events, conn)


# Events appended in a transaction, written just before it commits.
_PENDING: WeakKeyDictionary[Connection, list[AuditEvent]] = WeakKeyDictionary()


def _flush(ledger: Ledger, conn: Connection) -> None:
    _write(ledger, _PENDING.pop(conn, []), conn)


def _write(ledger: Ledger, events: list[AuditEvent], conn: Connection) -> None:
    if not events:
        return
    if conn.dialect.name == "postgresql":
        # Serialise appenders so two processes never fork the chain.
        conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
    elif conn.dialect.name == "sqlite":
        # The head is read under the write lock: read before the transaction's
        # first write, it could be stale once the INSERT took the writer's turn
        # (another appender committed the same seq in between; an inbox read
        # then answered 503, "UNIQUE constraint failed: audit_log.seq").
        begin_writing(conn)
    last = _last(conn)
    key = ledger.audit_key
    if last is not None and not hashes_as(last, key):
        if key is None:
            raise LedgerError(
                f"audit entry {last.seq} is keyed (or altered): this process has no audit "
                "key; open the ledger with the gateway's keys_dir (audit-chain.key)"
            )
        if hashes_as(last, None):
            events = [keyed_marker(events[0].authority, key), *events]
    seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
    now = ledger.clock()
    rows = []
    subjects = []
    for event in events:
        seq += 1
        digest = _entry_hash(seq, now, event, prev, key)
        rows.append(
            {
                "seq": seq,
                "at": now,
                "actor": event.actor[:128],
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
        if event.child_key is not None:
            subjects.append({"seq": seq, "child_key": event.child_key})
        prev = digest
    conn.execute(insert(audit), rows)
    if subjects:
        conn.execute(insert(audit_subjects), subjects)


def keyed_marker(authority: str, key: bytes) -> AuditEvent:
    """The entry that starts the keyed part of a chain (names the key by fingerprint)."""
    fingerprint = hashlib.sha256(key).hexdigest()[:16]
    return AuditEvent(
        actor="gateway",
        action=KEYED_ACTION,
        authority=authority,
        detail=f"entries from here on are HMAC-SHA256 under audit key sha256:{fingerprint}",
    )


def _entry(r: object) -> AuditEntry:
    row = dict(r)  # type: ignore[call-overload]
    return AuditEntry(
        seq=row["seq"],
        at=as_utc(row["at"]),
        event=AuditEvent(
            row["actor"],
            row["action"],
            row["authority"],
            row["counterparty"],
            row["legal_basis"],
            row["message_id"],
            row["digest"],
            row["detail"],
            row.get("child_key"),
        ),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def entries(
    ledger: Ledger,
    authority: str | None = None,
    limit: int = 1000,
    *,
    after_seq: int = 0,
) -> list[AuditEntry]:
    """Entries in order of ``seq`` (after ``after_seq``), at most ``limit``."""
    query = (
        select(audit, audit_subjects.c.child_key)
        .outerjoin(audit_subjects, audit_subjects.c.seq == audit.c.seq)
        .where(audit.c.seq > after_seq)
        .order_by(audit.c.seq)
        .limit(limit)
    )
    if authority is not None:
        query = query.where(audit.c.authority == authority)
    with ledger.transaction() as conn:
        rows = conn.execute(query).mappings().all()
    return [_entry(r) for r in rows]


def count(ledger: Ledger) -> int:
    with ledger.transaction() as conn:
        return int(conn.execute(select(func.count()).select_from(audit)).scalar_one())


def entry_at(ledger: Ledger, seq: int) -> AuditEntry | None:
    """The entry with sequence number ``seq``, if it is there."""
    found = entries(ledger, limit=1, after_seq=seq - 1)
    return found[0] if found and found[0].seq == seq else None


def head(ledger: Ledger) -> tuple[int, str] | None:
    """The newest entry's (seq, hash), to keep outside the database as an anchor."""
    with ledger.transaction() as conn:
        last = conn.execute(
            select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)
        ).first()
    return (int(last[0]), str(last[1])) if last else None


def verify(
    ledger: Ledger,
    expect_head: tuple[int, str] | None = None,
    peer_heads: Sequence[Anchor] = (),
) -> list[str]:
    """Problems found in the chain (empty when intact); see ``audit_verify.verify``.

    Then every head of this chain a peer gave back, and ``peer_heads`` (read
    from a peer's ``cafgw audit heads`` export), must still be in it
    (``audit_anchor.mismatches``).
    """
    # Both build on this module.
    from gateway.ledger import audit_anchor, audit_verify  # noqa: PLC0415

    problems = audit_verify.verify(ledger, expect_head)
    held = [*audit_anchor.anchors(ledger), *peer_heads]
    problems.extend(str(m) for m in audit_anchor.mismatches(ledger, held))
    return problems
