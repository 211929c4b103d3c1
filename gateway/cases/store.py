"""Reading and writing case threads (in the caller's transaction)."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, insert, select, update

from gateway.cases.tables import case_log, case_threads, service_agreements
from gateway.ledger.store import as_utc


@dataclass(frozen=True)
class LeadEntry:
    name: str
    la_code: str | None
    since: str | None
    child_views: str | None


@dataclass(frozen=True)
class LogEntry:
    at: datetime
    kind: str
    counterparty: str | None
    message_id: str | None
    detail: str | None


@dataclass(frozen=True)
class CaseThread:
    """One authority's copy of a case: its own case (``owner == authority``) or
    what another authority, the owner, said of its case."""

    authority: str
    correlation_id: str
    owner: str = ""
    case_ref: str | None = None
    child_key: str | None = None
    initiating_la: str | None = None
    residence_la: str | None = None
    governing_la: str | None = None
    governing_since: str | None = None
    inform_family: bool | None = None
    family_restricted_by: str | None = None
    plan_digest: str | None = None
    plan_consent_ref: str | None = None
    parties: tuple[str, ...] = ()
    leads: tuple[LeadEntry, ...] = ()
    log: tuple[LogEntry, ...] = field(default=())


def _thread(row: Any, log: tuple[LogEntry, ...] = ()) -> CaseThread:
    r = row._mapping
    return CaseThread(
        authority=r["authority"],
        correlation_id=r["correlation_id"],
        owner=r["owner"],
        case_ref=r["case_ref"],
        child_key=r["child_key"],
        initiating_la=r["initiating_la"],
        residence_la=r["residence_la"],
        governing_la=r["governing_la"],
        governing_since=r["governing_since"],
        inform_family=r["inform_family"],
        family_restricted_by=r["family_restricted_by"],
        plan_digest=r["plan_digest"],
        plan_consent_ref=r["plan_consent_ref"],
        parties=tuple(json.loads(r["parties"] or "[]")),
        leads=tuple(LeadEntry(**x) for x in json.loads(r["leads"] or "[]")),
        log=log,
    )


def get(
    conn: Connection, authority: str, correlation_id: str, with_log: bool = False
) -> CaseThread | None:
    row = conn.execute(
        select(case_threads).where(
            case_threads.c.authority == authority,
            case_threads.c.correlation_id == correlation_id,
        )
    ).first()
    if row is None:
        return None
    log: tuple[LogEntry, ...] = ()
    if with_log:
        log = tuple(
            LogEntry(as_utc(r.at), r.kind, r.counterparty, r.message_id, r.detail)
            for r in conn.execute(
                select(case_log)
                .where(
                    case_log.c.authority == authority,
                    case_log.c.correlation_id == correlation_id,
                )
                .order_by(case_log.c.id)
            ).all()
        )
    return _thread(row, log)


def find_by_case_ref(conn: Connection, authority: str, case_ref: str) -> CaseThread | None:
    """``authority``'s own case of that reference, else a copy it keeps of another's."""
    found = threads_where(conn, authority, case_threads.c.case_ref == case_ref)
    own = [t for t in found if t.owner == authority]
    return next(iter(own or found), None)


def threads_where(
    conn: Connection, authority: str, condition: ColumnElement[bool]
) -> list[CaseThread]:
    """``authority``'s threads matching ``condition`` (without their logs)."""
    rows = conn.execute(
        select(case_threads)
        .where(case_threads.c.authority == authority, condition)
        .order_by(case_threads.c.id)
    ).all()
    return [_thread(r) for r in rows]


def save(conn: Connection, thread: CaseThread, now: datetime) -> None:
    """Insert or update ``thread`` (its log is written with ``log``)."""
    values = {
        "owner": thread.owner or thread.authority,
        "case_ref": thread.case_ref,
        "child_key": thread.child_key,
        "initiating_la": thread.initiating_la,
        "residence_la": thread.residence_la,
        "governing_la": thread.governing_la,
        "governing_since": thread.governing_since,
        "inform_family": thread.inform_family,
        "family_restricted_by": thread.family_restricted_by,
        "plan_digest": thread.plan_digest,
        "plan_consent_ref": thread.plan_consent_ref,
        "parties": json.dumps(sorted(set(thread.parties))),
        "leads": json.dumps([x.__dict__ for x in thread.leads]),
        "updated_at": now,
    }
    done = conn.execute(
        update(case_threads)
        .where(
            case_threads.c.authority == thread.authority,
            case_threads.c.correlation_id == thread.correlation_id,
        )
        .values(**values)
    )
    if done.rowcount == 0:
        conn.execute(
            insert(case_threads).values(
                authority=thread.authority, correlation_id=thread.correlation_id, **values
            )
        )


def log(
    conn: Connection,
    authority: str,
    correlation_id: str,
    now: datetime,
    kind: str,
    *,
    counterparty: str | None = None,
    message_id: str | None = None,
    notice_key: str | None = None,
    detail: str | None = None,
) -> None:
    conn.execute(
        insert(case_log).values(
            authority=authority,
            correlation_id=correlation_id,
            at=now,
            kind=kind[:40],
            counterparty=counterparty,
            message_id=message_id,
            notice_key=notice_key,
            detail=detail,
        )
    )


def logged(conn: Connection, authority: str, kind: str, message_id: str) -> LogEntry | None:
    """The first log entry of ``kind`` about ``message_id``."""
    r = conn.execute(
        select(case_log)
        .where(
            case_log.c.authority == authority,
            case_log.c.kind == kind,
            case_log.c.message_id == message_id,
        )
        .order_by(case_log.c.id)
    ).first()
    if r is None:
        return None
    return LogEntry(as_utc(r.at), r.kind, r.counterparty, r.message_id, r.detail)


def notice_keys(conn: Connection, authority: str, correlation_id: str) -> set[str]:
    """Notices already sent on this thread (so a re-submission does not repeat them)."""
    rows = conn.execute(
        select(case_log.c.notice_key).where(
            case_log.c.authority == authority,
            case_log.c.correlation_id == correlation_id,
            case_log.c.notice_key.is_not(None),
        )
    ).all()
    return {r[0] for r in rows}


def practitioner_key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return " ".join("".join(c for c in decomposed if c.isalnum() or c.isspace()).split())


def add_agreement(
    conn: Connection,
    authority: str,
    practitioner: str,
    delivery_la: str,
    line_manager: str,
    coordinator: str,
    now: datetime,
) -> None:
    """Record a prior agreement for ``practitioner`` to deliver in ``delivery_la``."""
    key = practitioner_key(practitioner)
    exists = conn.execute(
        select(service_agreements.c.id).where(
            service_agreements.c.authority == authority,
            service_agreements.c.practitioner_key == key,
            service_agreements.c.delivery_la == delivery_la,
        )
    ).first()
    if exists is None:
        conn.execute(
            insert(service_agreements).values(
                authority=authority,
                practitioner_key=key,
                practitioner=practitioner,
                delivery_la=delivery_la,
                line_manager=line_manager,
                coordinator=coordinator,
                recorded_at=now,
            )
        )


def agreements(conn: Connection, authority: str) -> set[tuple[str, str]]:
    """(practitioner key, delivery LA) pairs with a recorded prior agreement."""
    rows = conn.execute(
        select(service_agreements.c.practitioner_key, service_agreements.c.delivery_la).where(
            service_agreements.c.authority == authority
        )
    ).all()
    return {(r[0], r[1]) for r in rows}
