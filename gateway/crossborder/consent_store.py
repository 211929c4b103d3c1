"""The consent register's store: every consent decision about a child, with history.

Keyed on the stable child key (``policy.child.child_key``: UPN, else NHS
number, else name + date of birth; never the postcode). Entries come from
the authority's own submissions (source ``LOCAL``) and from received
messages (source = the sending LA: that LA's statement). Nothing is
overwritten; which decision is in force, and whose decisions count, is
``gateway.policy.consent``'s to say.
"""

from __future__ import annotations

import json
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
)

from gateway.crossborder.tables import metadata
from gateway.ledger.store import as_utc
from gateway.model import (
    ConsentAction,
    ConsentRecord,
    ConsentRole,
    ConsentScope,
    Withdrawal,
)
from gateway.policy.consent import RegisterEntry, is_repeat

consent_register = Table(
    "consent_register",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority", String(3), nullable=False),
    Column("child_key", String(64), nullable=False),
    Column("case_ref", String(64)),
    Column("source", String(16), nullable=False),
    Column("message_id", String(64)),
    Column("action", String(16), nullable=False),
    Column("given", Boolean, nullable=False),
    Column("given_by", String(200)),
    Column("role", String(16)),
    Column("role_text", String(200)),
    Column("gillick", Boolean, nullable=False, default=False),
    Column("recorded_at", String(40)),
    Column("scopes", Text, nullable=False),
    Column("named_las", Text, nullable=False),
    Column("withdrawn", Text, nullable=False),
    Column("entered_at", DateTime(timezone=True), nullable=False),
)
Index("ix_consent_child", consent_register.c.authority, consent_register.c.child_key)


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_when(text: str | None) -> datetime | date | None:
    if not text:
        return None
    if "T" in text:
        return datetime.fromisoformat(text)
    return date.fromisoformat(text)


def _entry(row: object) -> RegisterEntry:
    r = row._mapping  # type: ignore[attr-defined]
    withdrawn = tuple(
        Withdrawal(ConsentScope(w["scope"]), _parse_when(w.get("at")), w.get("by"))  # type: ignore[arg-type]
        for w in json.loads(r["withdrawn"])
    )
    consent = ConsentRecord(
        given=bool(r["given"]),
        given_by=r["given_by"],
        role=ConsentRole(r["role"]) if r["role"] else None,
        role_text=r["role_text"],
        gillick_competent=bool(r["gillick"]),
        recorded_at=_parse_when(r["recorded_at"]),
        scopes=tuple(ConsentScope(s) for s in json.loads(r["scopes"])),
        named_las=tuple(json.loads(r["named_las"])),
        withdrawn=withdrawn,
    )
    return RegisterEntry(
        entry_id=int(r["id"]),
        case_ref=r["case_ref"],
        source=r["source"],
        message_id=r["message_id"],
        action=ConsentAction(r["action"]),
        consent=consent,
        entered_at=as_utc(r["entered_at"]),
    )


_ENTRIES = (
    select(consent_register)
    .where(
        consent_register.c.authority == bindparam("authority"),
        consent_register.c.child_key == bindparam("child_key"),
    )
    .order_by(consent_register.c.id)
)


def entries(conn: Connection, authority: str, child_key: str) -> list[RegisterEntry]:
    """The register's history for one child at one authority (every source), oldest first."""
    rows = conn.execute(_ENTRIES, {"authority": authority, "child_key": child_key}).all()
    return [_entry(r) for r in rows]


def add(
    conn: Connection,
    *,
    authority: str,
    child_key: str,
    case_ref: str | None,
    consent: ConsentRecord,
    action: ConsentAction,
    source: str,
    now: datetime,
    message_id: str | None = None,
) -> bool:
    """Add a decision to the register, unless ``source`` already recorded exactly it."""
    if is_repeat(entries(conn, authority, child_key), source, action, consent):
        return False
    conn.execute(
        insert(consent_register).values(
            authority=authority,
            child_key=child_key,
            case_ref=case_ref,
            source=source[:16],
            message_id=message_id,
            action=action.value,
            given=consent.given,
            given_by=consent.given_by,
            role=consent.role.value if consent.role else None,
            role_text=consent.role_text,
            gillick=consent.gillick_competent,
            recorded_at=_iso(consent.recorded_at),
            scopes=json.dumps([s.value for s in consent.scopes]),
            named_las=json.dumps(list(consent.named_las)),
            withdrawn=json.dumps(
                [{"scope": w.scope.value, "at": _iso(w.at), "by": w.by} for w in consent.withdrawn]
            ),
            entered_at=now,
        )
    )
    return True
