"""Reading and writing dispute state in the ledger (SQLAlchemy Core).

Every function takes the connection of the caller's transaction, so a
stage change, its history event, the signed message and the escalation
notices commit together or not at all. Stage changes are conditional
updates (``WHERE stage = :old``): of two gateway processes on one ledger,
exactly one wins.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.disputes import ladder
from gateway.disputes.tables import dispute_events, disputes
from gateway.errors import PolicyRefusal
from gateway.ledger.store import as_utc
from gateway.model import (
    Dispute,
    DisputeAction,
    DisputeEvent,
    DisputeParty,
    DisputeStage,
    LineManager,
)


@dataclass(frozen=True)
class StoredDispute:
    """One authority's copy of a dispute, with its merged history (oldest first)."""

    pk: int
    authority: str
    dispute: Dispute
    owner: str
    counterpart: str
    correlation_id: str
    legal_basis: str
    consent_ref: str | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class MergeResult:
    pk: int
    created: bool
    advanced: bool
    resolved_now: bool


def utc(value: datetime | None) -> datetime | None:
    """UTC, because SQLite stores datetimes without their offset."""
    return value.astimezone(UTC) if value is not None else None


def party_json(party: DisputeParty) -> str:
    return json.dumps(
        {
            "name": party.name,
            "la_code": party.la_code,
            "role": party.role,
            "organisation": party.organisation,
            "line_manager": {
                "name": party.line_manager.name,
                "email": party.line_manager.email,
                "role": party.line_manager.role,
            },
        },
        sort_keys=True,
    )


def party_from_json(text: str) -> DisputeParty:
    raw = json.loads(text)
    lm = raw["line_manager"]
    return DisputeParty(
        name=raw["name"],
        la_code=raw["la_code"],
        role=raw.get("role"),
        organisation=raw.get("organisation"),
        line_manager=LineManager(name=lm["name"], email=lm.get("email"), role=lm.get("role")),
    )


def event_key(event: DisputeEvent) -> str:
    """Identity of a history event, the same on both gateways."""
    at = event.at.astimezone(UTC).replace(microsecond=0).isoformat()
    content = "\x1f".join((at, event.action.value, event.by, event.stage.value, event.text or ""))
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _events(conn: Connection, pk: int) -> tuple[DisputeEvent, ...]:
    rows = conn.execute(
        select(dispute_events)
        .where(dispute_events.c.dispute_pk == pk)
        .order_by(dispute_events.c.at, dispute_events.c.id)
    ).all()
    return tuple(
        DisputeEvent(
            at=as_utc(r.at),
            action=DisputeAction(r.action),
            by=r.by,
            stage=DisputeStage(r.stage),
            text=r.text,
        )
        for r in rows
    )


def _to_stored(conn: Connection, row: object) -> StoredDispute:
    r: object = row
    pk = int(r.id)  # type: ignore[attr-defined]
    get = r._mapping  # type: ignore[attr-defined]
    deadline = get["deadline"]
    body = Dispute(
        dispute_id=get["dispute_id"],
        case_ref=get["case_ref"],
        subject=get["subject"],
        asked=get["asked"],
        raised_by=party_from_json(get["raised_by"]),
        against=party_from_json(get["against"]),
        stage=DisputeStage(get["stage"]),
        deadline=as_utc(deadline) if deadline is not None else None,
        history=_events(conn, pk),
        outcome=get["outcome"],
        interim_arrangement=get["interim_arrangement"],
        resolved=bool(get["resolved"]),
    )
    resolved_at = get["resolved_at"]
    return StoredDispute(
        pk=pk,
        authority=get["authority"],
        dispute=body,
        owner=get["owner"],
        counterpart=get["counterpart"],
        correlation_id=get["correlation_id"],
        legal_basis=get["legal_basis"],
        consent_ref=get["consent_ref"],
        created_at=as_utc(get["created_at"]),
        updated_at=as_utc(get["updated_at"]),
        resolved_at=as_utc(resolved_at) if resolved_at is not None else None,
    )


def load(
    conn: Connection, authority: str, dispute_id: str, *, lock: bool = False
) -> StoredDispute | None:
    """``authority``'s copy of the dispute, or None; ``lock`` holds its row (PostgreSQL)."""
    query = select(disputes).where(
        and_(disputes.c.authority == authority, disputes.c.dispute_id == dispute_id)
    )
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return _to_stored(conn, row) if row is not None else None


def load_many(
    conn: Connection,
    authorities: Sequence[str] | None,
    *,
    stage: DisputeStage | None = None,
    resolved: bool | None = None,
    involving: str | None = None,
    limit: int = 500,
) -> list[StoredDispute]:
    """Copies held for ``authorities`` (None: every copy), newest first."""
    query = select(disputes)
    if authorities is not None:
        query = query.where(disputes.c.authority.in_(list(authorities)))
    if stage is not None:
        query = query.where(disputes.c.stage == stage.value)
    if resolved is not None:
        query = query.where(disputes.c.resolved == resolved)
    if involving is not None:
        query = query.where((disputes.c.owner == involving) | (disputes.c.counterpart == involving))
    rows = conn.execute(query.order_by(disputes.c.updated_at.desc()).limit(limit)).all()
    return [_to_stored(conn, r) for r in rows]


def insert_dispute(
    conn: Connection,
    authority: str,
    body: Dispute,
    *,
    correlation_id: str,
    legal_basis: str,
    consent_ref: str | None,
    source: str,
    now: datetime,
) -> int:
    """A new copy of a dispute with its history; returns its primary key."""
    result = conn.execute(
        insert(disputes).values(
            authority=authority,
            dispute_id=body.dispute_id,
            owner=body.raised_by.la_code,
            counterpart=body.against.la_code,
            case_ref=body.case_ref,
            correlation_id=correlation_id,
            subject=body.subject,
            asked=body.asked,
            raised_by=party_json(body.raised_by),
            against=party_json(body.against),
            stage=body.stage.value,
            deadline=None if body.resolved else utc(body.deadline),
            resolved=body.resolved,
            outcome=body.outcome,
            interim_arrangement=body.interim_arrangement,
            legal_basis=legal_basis,
            consent_ref=consent_ref,
            created_at=now,
            updated_at=now,
            resolved_at=now if body.resolved else None,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    pk = int(key[0])
    add_events(conn, pk, body.history, source)
    return pk


def add_events(conn: Connection, pk: int, events: Iterable[DisputeEvent], source: str) -> int:
    """Insert the events this copy does not hold yet; returns how many were new."""
    known = set(
        conn.execute(
            select(dispute_events.c.event_key).where(dispute_events.c.dispute_pk == pk)
        ).scalars()
    )
    rows = []
    for event in events:
        key = event_key(event)
        if key in known:
            continue
        known.add(key)
        rows.append(
            {
                "dispute_pk": pk,
                "event_key": key,
                "at": utc(event.at),
                "action": event.action.value,
                "by": event.by[:500],
                "stage": event.stage.value,
                "text": event.text,
                "source": source,
            }
        )
    if rows:
        # Another transaction may add the same event meanwhile (the inbox and the
        # escalation queue carry the same history): the first one stays.
        conn.execute(_insert_ignoring_duplicates(conn), rows)
    return len(rows)


def _insert_ignoring_duplicates(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return pg_insert(dispute_events).on_conflict_do_nothing(constraint="uq_dispute_event")
    if conn.dialect.name == "sqlite":
        return sqlite_insert(dispute_events).on_conflict_do_nothing()
    return insert(dispute_events)


def merge(
    conn: Connection,
    authority: str,
    incoming: Dispute,
    *,
    correlation_id: str,
    legal_basis: str,
    consent_ref: str | None,
    source: str,
    now: datetime,
) -> MergeResult:
    """Fold a signed snapshot into ``authority``'s copy: stages only climb, a
    resolution is final, history is the union. Parties may never change."""
    current = load(conn, authority, incoming.dispute_id, lock=True)
    if current is None:
        pk = insert_dispute(
            conn,
            authority,
            incoming,
            correlation_id=correlation_id,
            legal_basis=legal_basis,
            consent_ref=consent_ref,
            source=source,
            now=now,
        )
        return MergeResult(pk, True, False, incoming.resolved)
    mine = current.dispute
    if (party_json(mine.raised_by), party_json(mine.against)) != (
        party_json(incoming.raised_by),
        party_json(incoming.against),
    ):
        raise PolicyRefusal(
            "dispute.parties-changed",
            f"dispute {incoming.dispute_id}: a message may not change the parties "
            "or their line managers",
        )
    values: dict[str, object] = {}
    advanced = ladder.rank(incoming.stage) > ladder.rank(mine.stage)
    if advanced:
        # Conditional, so a concurrent merge of an older snapshot never lowers the stage.
        lower = [s.value for s in ladder.LADDER if ladder.rank(s) < ladder.rank(incoming.stage)]
        climb: dict[str, object] = {"stage": incoming.stage.value, "updated_at": now}
        if not mine.resolved:
            climb["deadline"] = utc(incoming.deadline)
        conditions = [disputes.c.id == current.pk, disputes.c.stage.in_(lower)]
        if "deadline" in climb:
            conditions.append(disputes.c.resolved.is_(False))
        conn.execute(update(disputes).where(and_(*conditions)).values(**climb))
    resolved_now = incoming.resolved and not mine.resolved
    if resolved_now:
        values.update(
            resolved=True,
            deadline=None,
            outcome=incoming.outcome,
            interim_arrangement=incoming.interim_arrangement,
            resolved_at=now,
        )
    elif mine.resolved and incoming.resolved and _resolved_first(incoming, mine):
        # Both parties resolved before hearing of each other: the earlier resolution
        # stands on both sides (both apply this same rule), the later stays in history.
        values.update(outcome=incoming.outcome, interim_arrangement=incoming.interim_arrangement)
    elif (
        not mine.resolved
        and incoming.interim_arrangement
        and incoming.interim_arrangement != mine.interim_arrangement
    ):
        values["interim_arrangement"] = incoming.interim_arrangement
    added = add_events(conn, current.pk, incoming.history, source)
    if values or added:
        values["updated_at"] = now
        conn.execute(update(disputes).where(disputes.c.id == current.pk).values(**values))
    return MergeResult(current.pk, False, advanced, resolved_now)


def _resolution(body: Dispute) -> tuple[datetime, str]:
    times = [utc(e.at) for e in body.history if e.action is DisputeAction.RESOLVED]
    first = min((t for t in times if t is not None), default=datetime.max.replace(tzinfo=UTC))
    return first, body.outcome or ""


def _resolved_first(a: Dispute, b: Dispute) -> bool:
    """True when ``a``'s resolution precedes ``b``'s (ties broken by the outcome text)."""
    return a.outcome != b.outcome and _resolution(a) < _resolution(b)


def advance(
    conn: Connection,
    pk: int,
    old: DisputeStage,
    new: DisputeStage,
    deadline: datetime,
    now: datetime,
    *,
    only_if_due: bool,
) -> bool:
    """Move an open dispute from ``old`` to ``new``; False if someone else moved it first."""
    conditions = [
        disputes.c.id == pk,
        disputes.c.stage == old.value,
        disputes.c.resolved.is_(False),
    ]
    if only_if_due:
        conditions.append(disputes.c.deadline <= now)
    result = conn.execute(
        update(disputes)
        .where(and_(*conditions))
        .values(stage=new.value, deadline=utc(deadline), updated_at=now)
    )
    return result.rowcount == 1


def mark_resolved(
    conn: Connection, pk: int, outcome: str, interim: str | None, now: datetime
) -> bool:
    """Resolve an open dispute and stop its clock; False if it was already resolved."""
    result = conn.execute(
        update(disputes)
        .where(and_(disputes.c.id == pk, disputes.c.resolved.is_(False)))
        .values(
            resolved=True,
            deadline=None,
            outcome=outcome,
            interim_arrangement=interim,
            resolved_at=now,
            updated_at=now,
        )
    )
    return result.rowcount == 1


def touch(conn: Connection, pk: int, now: datetime) -> None:
    conn.execute(update(disputes).where(disputes.c.id == pk).values(updated_at=now))


def due(
    conn: Connection, owners: Sequence[str], now: datetime, limit: int = 100
) -> list[tuple[int, str, str, DisputeStage]]:
    """Open disputes whose owner's copy has a passed deadline below the top stage."""
    rows = conn.execute(
        select(disputes.c.id, disputes.c.authority, disputes.c.dispute_id, disputes.c.stage)
        .where(
            and_(
                disputes.c.authority.in_(list(owners)),
                disputes.c.authority == disputes.c.owner,
                disputes.c.resolved.is_(False),
                disputes.c.deadline <= now,
                disputes.c.stage != ladder.FINAL.value,
            )
        )
        .order_by(disputes.c.deadline)
        .limit(limit)
    ).all()
    return [(int(r.id), r.authority, r.dispute_id, DisputeStage(r.stage)) for r in rows]
