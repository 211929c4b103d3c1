"""The consent register: every consent decision about a child, with history.

Keyed on the stable child key (``child.child_key``: UPN, else NHS number,
else name + date of birth; never the postcode). Entries come from local
submissions (source ``LOCAL``) and from received ConsentChange messages
(source = the sending LA). Nothing is overwritten: the register is the
history, and the consent in force is computed from it when a message is
about to be sent. A Gillick-competent child's own decision prevails over
a parent's; both stay recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
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
    insert,
    select,
)

from gateway.ledger.store import as_utc
from gateway.ledger.tables import metadata
from gateway.model import (
    ConsentAction,
    ConsentRecord,
    ConsentRole,
    ConsentScope,
    Withdrawal,
)

LOCAL = "LOCAL"

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


@dataclass(frozen=True)
class RegisterEntry:
    """One recorded consent decision."""

    entry_id: int
    case_ref: str | None
    source: str
    message_id: str | None
    action: ConsentAction
    consent: ConsentRecord
    entered_at: datetime

    @property
    def by_competent_child(self) -> bool:
        return self.consent.role == ConsentRole.CHILD and self.consent.gillick_competent

    def fingerprint(self) -> str:
        return _fingerprint(self.action, self.consent)


@dataclass(frozen=True)
class Effective:
    """The consent in force for a child, and the entry it comes from."""

    entry: RegisterEntry | None

    @property
    def given(self) -> bool:
        if self.entry is None:
            return False
        consent = self.entry.consent
        if self.entry.action == ConsentAction.REFUSED:
            return False
        if self.entry.action == ConsentAction.WITHDRAWN and not consent.withdrawn:
            return False  # a whole withdrawal
        return consent.given

    def active_scopes(self) -> frozenset[ConsentScope]:
        if not self.given or self.entry is None:
            return frozenset()
        return self.entry.consent.active_scopes()

    def withdrawn_scopes(self) -> frozenset[ConsentScope]:
        if self.entry is None:
            return frozenset()
        if not self.given:
            return frozenset(self.entry.consent.scopes) | {
                w.scope for w in self.entry.consent.withdrawn
            }
        return frozenset(w.scope for w in self.entry.consent.withdrawn)

    @property
    def named_las(self) -> tuple[str, ...]:
        return self.entry.consent.named_las if self.entry else ()

    def reference(self, authority: str) -> str | None:
        """A reference to this consent, for the Header's ConsentRef."""
        if self.entry is None:
            return None
        consent = self.entry.consent
        when = (
            consent.recorded_at.isoformat()
            if consent.recorded_at
            else f"entry{self.entry.entry_id}"
        )
        case = self.entry.case_ref or "case"
        return f"{authority}/{case}/consent/{when}"


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _fingerprint(action: ConsentAction, c: ConsentRecord) -> str:
    return json.dumps(
        [
            action.value,
            c.given,
            c.given_by,
            c.role.value if c.role else None,
            c.gillick_competent,
            _iso(c.recorded_at),
            sorted(s.value for s in c.scopes),
            sorted(c.named_las),
            sorted((w.scope.value, _iso(w.at), w.by) for w in c.withdrawn),
        ],
        sort_keys=True,
    )


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


def entries(conn: Connection, authority: str, child_key: str) -> list[RegisterEntry]:
    """The register's history for one child at one authority, oldest first."""
    rows = conn.execute(
        select(consent_register)
        .where(
            consent_register.c.authority == authority,
            consent_register.c.child_key == child_key,
        )
        .order_by(consent_register.c.id)
    ).all()
    return [_entry(r) for r in rows]


def effective(history: Sequence[RegisterEntry]) -> Effective:
    """The consent in force: the latest decision of a Gillick-competent child, if
    any, else the latest decision of anyone (a parent or carer)."""
    child_own = [e for e in history if e.by_competent_child]
    if child_own:
        return Effective(child_own[-1])
    return Effective(history[-1] if history else None)


@dataclass(frozen=True)
class Registered:
    """What recording a consent changed."""

    before: Effective
    after: Effective
    added: bool

    @property
    def newly_withdrawn(self) -> frozenset[ConsentScope]:
        """Scopes that were in force before and are not now (whole or partial withdrawal)."""
        return self.before.active_scopes() - self.after.active_scopes()

    @property
    def las_no_longer_named(self) -> frozenset[str]:
        before, after = set(self.before.named_las), set(self.after.named_las)
        if not after or not before:
            return frozenset()
        return frozenset(before - after)


def record(
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
) -> Registered:
    """Add a decision to the register (unless it repeats the source's last one)."""
    history = entries(conn, authority, child_key)
    before = effective(history)
    same_source = [e for e in history if e.source == source]
    if same_source and same_source[-1].fingerprint() == _fingerprint(action, consent):
        return Registered(before, before, added=False)
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
    after = effective(entries(conn, authority, child_key))
    return Registered(before, after, added=True)


def action_of(consent: ConsentRecord) -> ConsentAction:
    """The action a local record's consent amounts to."""
    if not consent.given:
        return ConsentAction.REFUSED
    if consent.withdrawn:
        return ConsentAction.WITHDRAWN
    return ConsentAction.GIVEN
