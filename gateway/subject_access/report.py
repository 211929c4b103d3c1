"""The subject-access report of one child at one authority, from the ledger.

Everything is found through the child's key (UPN, else NHS number, else
name and date of birth; ``gateway.policy.child``), so nothing about
another child can appear: disclosures (what went to whom, when, on what
basis, which fields), what was received about the child and from whom,
every consent decision, every time a record was opened (handed to the
local system, acknowledged, read, or reported by the recipient in an
access notice), and recalls, corrections and withdrawals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from gateway.context import Gateway
from gateway.crossborder import consent_store, existence_asked
from gateway.crossborder.children import resolve_child
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import CafgwError, NotFoundError
from gateway.ledger import audit
from gateway.ledger.bodies import BODY, WITH_BODY
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import as_utc
from gateway.ledger.tables import (
    about_child,
    audit_subjects,
    history,
    message_bodies,
    messages,
)
from gateway.ledger.tables import audit as audit_table
from gateway.lifecycle.outcomes import outcomes_of
from gateway.model import AccessNotice, Child, LegalBasis, Notification
from gateway.policy.consent import LOCAL, RegisterEntry
from gateway.subject_access.fields import fields_of

DISCLOSING = (
    LegalBasis.CONSENT.value,
    LegalBasis.SAFEGUARDING.value,
    LegalBasis.CONSENT_WITHDRAWAL.value,
)
NOT_LEFT = {Status.HELD_LOCAL.value, Status.REJECTED.value, Status.WITHDRAWN.value}
READ_ACTIONS = ("READ", "ACCESS")  # audit actions that record a person opening a record


@dataclass(frozen=True)
class Subject:
    given_name: str | None
    family_name: str | None
    date_of_birth: str | None
    identifiers: tuple[str, ...]


@dataclass(frozen=True)
class Disclosure:
    message_id: str
    to: str
    to_name: str
    what: str
    case_ref: str | None
    legal_basis: str
    purpose: str | None
    consent_ref: str | None
    approved_by: str | None
    status: str
    sent_at: datetime | None
    delivered_at: datetime | None
    fields: tuple[str, ...]


@dataclass(frozen=True)
class Received:
    message_id: str
    sender: str
    sender_name: str
    what: str
    legal_basis: str
    purpose: str | None
    received_at: datetime
    status: str
    fields: tuple[str, ...]


@dataclass(frozen=True)
class NotShared:
    message_id: str
    to: str
    what: str
    status: str
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class ConsentDecision:
    entered_at: datetime
    source: str
    action: str
    given_by: str | None
    role: str | None
    gillick_competent: bool
    recorded_at: str | None
    scopes: tuple[str, ...]
    named_las: tuple[str, ...]
    withdrawn: tuple[str, ...]


@dataclass(frozen=True)
class Access:
    at: datetime
    where: str
    how: str
    message_id: str


@dataclass(frozen=True)
class LifecycleEvent:
    at: datetime
    kind: str
    message_id: str
    counterparty: str
    detail: str


@dataclass(frozen=True)
class SubjectAccessReport:
    authority: str
    authority_name: str
    generated_at: datetime
    child_key: str
    subject: Subject
    disclosures: tuple[Disclosure, ...] = ()
    received: tuple[Received, ...] = ()
    not_shared: tuple[NotShared, ...] = ()
    consent: tuple[ConsentDecision, ...] = ()
    accesses: tuple[Access, ...] = ()
    lifecycle: tuple[LifecycleEvent, ...] = ()
    review: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        data: dict[str, Any] = plain(asdict(self))
        return data


def _name(gw: Gateway, code: str) -> str:
    return gw.settings.directory.get(code).name if code in gw.settings.directory else code


def _first(entries: Iterable[tuple[str, datetime]], status: Status) -> datetime | None:
    return next((at for st, at in entries if st == status.value), None)


def _what(env_type: str, body: Any) -> str:
    if isinstance(body, Notification):
        return f"Notification {body.type.value}"
    return env_type


def _parsed(gw: Gateway, data: bytes | None) -> Any:
    if data is None:
        return None
    limits = gw.settings.limits
    try:
        return element_to_envelope(
            xmlsafe.parse(data, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth)
        )
    except (CafgwError, ValueError):
        return None  # encrypted to the recipient, or unreadable: the ledger row still tells


def _subject(children: list[Child]) -> Subject:
    if not children:
        return Subject(None, None, None, ())
    c = children[-1]
    return Subject(
        c.given_name,
        c.family_name,
        c.date_of_birth.isoformat() if c.date_of_birth else None,
        tuple(f"{i.scheme} {i.value}" for i in c.identifiers if i.scheme in ("UPN", "NHS")),
    )


def _histories(
    conn: Connection, pks: list[int]
) -> dict[int, list[tuple[str, datetime, str | None]]]:
    out: dict[int, list[tuple[str, datetime, str | None]]] = {pk: [] for pk in pks}
    for start in range(0, len(pks), 500):
        for pk, status, at, reason in conn.execute(
            select(history.c.message_pk, history.c.status, history.c.at, history.c.reason)
            .where(history.c.message_pk.in_(pks[start : start + 500]))
            .order_by(history.c.id)
        ).all():
            out[pk].append((status, as_utc(at), reason))
    return out


def build(gw: Gateway, authority: str, ref: str, actor: str) -> SubjectAccessReport:
    """The report on the child ``ref`` (child key, UPN, NHS number or case ref) at
    ``authority``; audited as ``actor``'s read of that child (the API key's holder, or
    the person running ``cafgw report``), so the child's own disclosures report shows it."""
    gw.signer(authority)
    key = resolve_child(gw, authority, ref)
    with gw.ledger.transaction() as conn:
        # The existence queries asked about the child carry no child key: their threads
        # (the query, its answer) are the child's as an erasure of it takes them.
        asked = sorted(existence_asked.threads_about(conn, authority, key))
        found = {
            r.id: r._mapping
            for part in about_child(key, asked)
            for r in conn.execute(
                select(messages, BODY).where(messages.c.authority == authority, part)
            ).all()
        }
        rows = [found[pk] for pk in sorted(found)]
        decisions = consent_store.entries(conn, authority, key)
        if not rows and not decisions:
            raise NotFoundError(f"child {ref} not found")
        hist = _histories(conn, [int(r["id"]) for r in rows])
        report = _assemble(gw, conn, authority, key, rows, hist, decisions)
        audit.append(
            gw.ledger,
            [
                audit.AuditEvent(
                    actor=actor[:128],
                    action="SUBJECT_ACCESS",
                    authority=authority,
                    child_key=key,
                    detail=f"report of {len(report.disclosures)} disclosures, "
                    f"{len(report.received)} received, {len(report.consent)} consent decisions",
                )
            ],
            conn,
        )
    return report


def _assemble(
    gw: Gateway,
    conn: Connection,
    authority: str,
    key: str,
    rows: list[Any],
    hist: dict[int, list[tuple[str, datetime, str | None]]],
    decisions: list[RegisterEntry],
) -> SubjectAccessReport:
    limits = gw.settings.limits
    children: list[Child] = []
    disclosures: list[Disclosure] = []
    received: list[Received] = []
    not_shared: list[NotShared] = []
    accesses: list[Access] = []
    lifecycle: list[LifecycleEvent] = []
    review: list[str] = []
    sent_ids: dict[str, str] = {}
    for r in rows:
        body = bytes(r["body"]) if r["body"] is not None else None
        env = _parsed(gw, body)
        child = getattr(env.body, "child", None) if env is not None else None
        if child is not None:
            children.append(child)
        what = _what(r["message_type"], env.body if env is not None else None)
        entries = [(s, at) for s, at, _ in hist[int(r["id"])]]
        for status, at, reason in hist[int(r["id"])]:
            if status in (Status.WITHDRAWN.value, Status.RECALLED.value, Status.SUPERSEDED.value):
                lifecycle.append(
                    LifecycleEvent(at, status, r["message_id"], r["recipient"], reason or "")
                )
        if r["direction"] == Direction.OUTBOUND.value:
            if r["recipient"] == authority:
                continue
            if r["status"] in NOT_LEFT or r["legal_basis"] not in DISCLOSING:
                if r["status"] in NOT_LEFT:
                    not_shared.append(
                        NotShared(
                            r["message_id"], r["recipient"], what, r["status"], r["reason"],
                            as_utc(r["updated_at"]),
                        )
                    )  # fmt: skip
                continue
            header = env.header if env is not None else None
            approver = header.safeguarding.approver if header and header.safeguarding else None
            if r["legal_basis"] == LegalBasis.SAFEGUARDING.value:
                review.append(
                    f"{r['message_id']} went to {r['recipient']} on the safeguarding basis "
                    f"(approved by {approver or 'see the audit log'}): before release, decide "
                    "whether telling the family would expose the child to further risk"
                )
            sent_ids[r["message_id"]] = r["recipient"]
            disclosures.append(
                Disclosure(
                    message_id=r["message_id"],
                    to=r["recipient"],
                    to_name=_name(gw, r["recipient"]),
                    what=what,
                    case_ref=r["case_ref"],
                    legal_basis=r["legal_basis"],
                    purpose=r["purpose"],
                    consent_ref=header.consent_ref if header else None,
                    approved_by=approver,
                    status=r["status"],
                    sent_at=_first(entries, Status.SENT),
                    delivered_at=_first(entries, Status.DELIVERED),
                    fields=fields_of(body, limits),
                )
            )
        else:
            received.append(
                Received(
                    message_id=r["message_id"],
                    sender=r["sender"],
                    sender_name=_name(gw, r["sender"]),
                    what=what,
                    legal_basis=r["legal_basis"],
                    purpose=r["purpose"],
                    received_at=as_utc(r["created_at"]),
                    status=r["status"],
                    fields=fields_of(body, limits),
                )
            )
            for status, at, reason in hist[int(r["id"])]:
                if status in (Status.DELIVERED_LOCAL.value, Status.ACKNOWLEDGED.value):
                    accesses.append(
                        Access(at, _name(gw, authority), reason or status, r["message_id"])
                    )
    accesses += _reads(gw, conn, authority, key, [r["message_id"] for r in rows])
    accesses += _notified_reads(gw, conn, authority, sent_ids)
    for outcome in (o for m in sent_ids for o in outcomes_of(conn, authority, m)):
        lifecycle.append(
            LifecycleEvent(
                outcome.requested_at,
                outcome.kind,
                outcome.original_id,
                outcome.recipient,
                f"{outcome.reason}: {outcome.describe()}",
            )
        )
    return SubjectAccessReport(
        authority=authority,
        authority_name=_name(gw, authority),
        generated_at=gw.clock(),
        child_key=key,
        subject=_subject(children),
        disclosures=tuple(disclosures),
        received=tuple(received),
        not_shared=tuple(not_shared),
        consent=tuple(_decision(gw, authority, e) for e in decisions),
        accesses=tuple(sorted(accesses, key=lambda a: a.at)),
        lifecycle=tuple(sorted(lifecycle, key=lambda e: e.at)),
        review=tuple(review),
        notes=(
            "Messages erased under the retention schedule or on request are no longer "
            "linked to the child and are not listed.",
            "Reads at another authority appear when that authority reports them "
            "(access notices); reads by people at this authority appear where the "
            "gateway records them.",
        ),
    )


def _decision(gw: Gateway, authority: str, e: RegisterEntry) -> ConsentDecision:
    c = e.consent
    return ConsentDecision(
        entered_at=e.entered_at,
        source=_name(gw, authority) if e.source == LOCAL else _name(gw, e.source),
        action=e.action.value,
        given_by=c.given_by,
        role=c.role.value if c.role else None,
        gillick_competent=c.gillick_competent,
        recorded_at=c.recorded_at.isoformat() if c.recorded_at else None,
        scopes=tuple(s.value for s in c.scopes),
        named_las=c.named_las,
        withdrawn=tuple(w.scope.value for w in c.withdrawn),
    )


def _reads(gw: Gateway, conn: Connection, authority: str, key: str, ids: list[str]) -> list[Access]:
    """Reads of the child's records by people here, where the audit log records them:
    entries about the child (its key) or one of its messages."""
    found: dict[int, Access] = {}
    query = (
        select(
            audit_table.c.seq,
            audit_table.c.at,
            audit_table.c.action,
            audit_table.c.actor,
            audit_table.c.message_id,
            audit_table.c.detail,
        )
        .select_from(
            audit_table.outerjoin(audit_subjects, audit_subjects.c.seq == audit_table.c.seq)
        )
        .where(audit_table.c.authority == authority)
    )
    # The entries about the child, then those about each chunk of its messages: each
    # found by its index (the subjects' child key, the log's message id), where one OR
    # of them read the whole audit log (issue 14).
    parts = [audit_subjects.c.child_key == key] + [
        audit_table.c.message_id.in_(ids[i : i + 500]) for i in range(0, len(ids), 500)
    ]
    for part in parts:
        for seq, at, action, actor, message_id, detail in conn.execute(query.where(part)):
            if any(word in action for word in READ_ACTIONS):
                what = f"{action} by {actor}" + (f" ({detail})" if detail else "")
                found[int(seq)] = Access(as_utc(at), _name(gw, authority), what, message_id or "")
    return [found[seq] for seq in sorted(found)]


def _notified_reads(
    gw: Gateway, conn: Connection, authority: str, sent: dict[str, str]
) -> list[Access]:
    """Reads reported by the recipients of the child's records (AccessNotice)."""
    if not sent:
        return []
    rows = conn.execute(
        select(messages.c.sender, message_bodies.c.body)
        .select_from(WITH_BODY)
        .where(
            messages.c.authority == authority,
            messages.c.direction == Direction.INBOUND.value,
            messages.c.message_type == "AccessNotice",
            messages.c.sender.in_(sorted(set(sent.values()))),
        )
    ).all()
    found = []
    for sender, body in rows:
        env = _parsed(gw, bytes(body))
        if env is None or not isinstance(env.body, AccessNotice):
            continue
        for event in env.body.events:
            if sent.get(event.message_id) == sender:
                how = event.kind.value + (f" by {event.by}" if event.by else "")
                found.append(Access(event.at, _name(gw, sender), how, event.message_id))
    return found
