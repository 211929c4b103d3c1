"""Reading and writing case threads (in the caller's transaction)."""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, insert, or_, select, update

from gateway.cases.tables import case_log, case_threads, service_agreements
from gateway.ledger.deferred import DeferredInserts
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


# Statements of the accepting transaction's hot path, built once with bound
# parameters: SQLAlchemy then finds them in its compiled cache without
# rebuilding or re-keying them for every record (docs/performance.md).
_THREAD = select(case_threads).where(
    case_threads.c.authority == bindparam("authority"),
    case_threads.c.correlation_id == bindparam("correlation_id"),
)
_UPDATE_THREAD = update(case_threads).where(
    case_threads.c.authority == bindparam("k_authority"),
    case_threads.c.correlation_id == bindparam("k_correlation_id"),
)
_INSERT_THREAD = insert(case_threads)
# Case-log lines wait for the end of the transaction and go in together
# (``gateway.ledger.deferred``): every read of the log here writes them first.
_LOG_LINES = DeferredInserts(case_log)
_NOTICE_KEYS = select(case_log.c.notice_key).where(
    case_log.c.authority == bindparam("authority"),
    case_log.c.correlation_id == bindparam("correlation_id"),
    case_log.c.notice_key.is_not(None),
)
# A thread by its id or by a case reference (``identity.threads_named``). Each
# side of the OR names the authority, so that SQLite reads each side from its
# own index (the unique key, the case reference index) and unions them; with the
# authority outside the OR it read every thread of the authority instead, and a
# received message cost more with every case the receiver held (issue 14).
_NAMED = (
    select(case_threads)
    .where(
        or_(
            and_(
                case_threads.c.authority == bindparam("authority"),
                case_threads.c.correlation_id == bindparam("correlation_id"),
            ),
            and_(
                case_threads.c.authority == bindparam("authority"),
                case_threads.c.case_ref.in_(bindparam("refs", expanding=True)),
            ),
        )
    )
    .order_by(case_threads.c.id)
)
_AGREEMENTS = select(service_agreements.c.practitioner_key, service_agreements.c.delivery_la).where(
    service_agreements.c.authority == bindparam("authority"),
    service_agreements.c.practitioner_key.in_(bindparam("keys", expanding=True)),
)


def get(
    conn: Connection, authority: str, correlation_id: str, with_log: bool = False
) -> CaseThread | None:
    row = conn.execute(_THREAD, {"authority": authority, "correlation_id": correlation_id}).first()
    if row is None:
        return None
    log: tuple[LogEntry, ...] = ()
    if with_log:
        flush_log(conn)
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


def threads_named(
    conn: Connection, authority: str, correlation_id: str, refs: list[str]
) -> list[CaseThread]:
    """``authority``'s threads of that id, or of any of those case references."""
    rows = conn.execute(
        _NAMED, {"authority": authority, "correlation_id": correlation_id, "refs": refs}
    ).all()
    return [_thread(r) for r in rows]


def save(conn: Connection, thread: CaseThread, now: datetime, new: bool = False) -> None:
    """Insert or update ``thread`` (its log is written with ``log``).

    ``new``: the caller read, in this transaction, that the thread does not
    exist yet; the insert is then tried first (a thread inserted meanwhile by
    another replica makes it fail on the unique key, like the update-then-
    insert it replaces)."""
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
    if not new:
        done = conn.execute(
            _UPDATE_THREAD,
            {"k_authority": thread.authority, "k_correlation_id": thread.correlation_id, **values},
        )
        if done.rowcount != 0:
            return
    conn.execute(
        _INSERT_THREAD,
        {"authority": thread.authority, "correlation_id": thread.correlation_id, **values},
    )


@dataclass(frozen=True)
class NewLogLine:
    """One line for a case thread's log, written with ``log_all``."""

    authority: str
    correlation_id: str
    at: datetime
    kind: str
    counterparty: str | None = None
    message_id: str | None = None
    notice_key: str | None = None
    detail: str | None = None


def log_all(conn: Connection, lines: list[NewLogLine]) -> None:
    """Append ``lines`` to their threads' logs, in order.

    Written with the transaction's other lines in one statement, just before
    it commits (or before the log is next read in it)."""
    _LOG_LINES.add(
        conn,
        [
            {
                "authority": x.authority,
                "correlation_id": x.correlation_id,
                "at": x.at,
                "kind": x.kind[:40],
                "counterparty": x.counterparty,
                "message_id": x.message_id,
                "notice_key": x.notice_key,
                "detail": x.detail,
            }
            for x in lines
        ],
    )


def flush_log(conn: Connection) -> None:
    """Write the log lines pending on ``conn`` (before any other statement on the log)."""
    _LOG_LINES.flush(conn)


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
    log_all(
        conn,
        [
            NewLogLine(
                authority, correlation_id, now, kind, counterparty, message_id, notice_key, detail
            )
        ],
    )


def logged(
    conn: Connection, authority: str, correlation_id: str, kind: str, message_id: str
) -> LogEntry | None:
    """The first log entry of ``kind`` about ``message_id`` on the thread ``correlation_id``
    (found by the thread's index: by the kind and message alone, every log line of the
    authority was read)."""
    flush_log(conn)
    r = conn.execute(
        select(case_log)
        .where(
            case_log.c.authority == authority,
            case_log.c.correlation_id == correlation_id,
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
    flush_log(conn)
    rows = conn.execute(
        _NOTICE_KEYS, {"authority": authority, "correlation_id": correlation_id}
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


def agreements_among(
    conn: Connection, authority: str, asked: frozenset[tuple[str, str]]
) -> frozenset[tuple[str, str]]:
    """Which of the (practitioner key, delivery LA) pairs ``asked`` have a recorded
    prior agreement (none read when none is asked: most records have no action
    delivered out of area)."""
    if not asked:
        return frozenset()
    keys = sorted({key for key, _ in asked})
    rows = conn.execute(_AGREEMENTS, {"authority": authority, "keys": keys}).all()
    return frozenset((r[0], r[1]) for r in rows) & asked
