"""Escalations: the record of a dispute notice addressed to a person.

A notice received on ``caf.escalation.<code>`` (or ``caf.escalation.regional``)
goes through the one receiving pipeline like every message; the dispute
feature's applier (``disputes.receive``) then records it here, addressed to
the right person: the authority's CAF coordinator, the regional group, or
the line manager of the party of that authority as recorded on the dispute
(parties may be school or NHS staff).

Delivery to that person goes through the authority's connector
(``disputes.handover``: webhook or file drop where ``authorities.yaml`` says
so), and every escalation can be pulled (``GET /v1/escalations`` + ``POST
/v1/escalations/{id}/ack``). An escalation not acknowledged by its deadline
is offered again, up to a budget; then it is OVERDUE, which the dashboard
shows. A resolved dispute's open escalations are CLOSED: nothing is left
open, or re-sent, on a closed dispute.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, and_, insert, select, update

from gateway.disputes import ladder
from gateway.disputes.tables import escalations
from gateway.ledger.store import Ledger, as_utc
from gateway.model import Dispute, DisputeStage
from gateway.settings import Settings
from gateway.transport.topology import REGIONAL

log = logging.getLogger(__name__)


class EscalationStatus(StrEnum):
    PENDING = "PENDING"  # recorded; not yet taken by the local system
    DELIVERED = "DELIVERED"  # handed to the local system (pulled or pushed)
    ACKNOWLEDGED = "ACKNOWLEDGED"  # the person addressed has it
    OVERDUE = "OVERDUE"  # re-sent its whole budget without acknowledgement
    CLOSED = "CLOSED"  # the dispute was resolved before anyone acknowledged


OPEN_STATUSES = (EscalationStatus.PENDING, EscalationStatus.DELIVERED, EscalationStatus.OVERDUE)


@dataclass(frozen=True)
class Addressee:
    role: str  # COORDINATOR, REGIONAL_GROUP, LINE_MANAGER, PRACTITIONER
    name: str
    email: str | None


@dataclass(frozen=True)
class EscalationView:
    """One escalation for an authority's (or the regional group's) person."""

    escalation_id: str
    authority: str
    sender: str
    dispute_id: str
    stage: DisputeStage
    kind: str  # ESCALATION, RESOLUTION, or UPDATE (for the regional group)
    addressee: Addressee
    status: EscalationStatus
    attempts: int
    received_at: datetime
    ack_due_at: datetime
    acked_at: datetime | None
    acked_by: str | None
    content: bytes  # the signed Dispute envelope as received


def addressee_for(settings: Settings, owner: str, body: Dispute) -> Addressee:
    """Who at ``owner`` (an LA code or ``regional``) the notice is for."""
    directory = settings.directory
    if owner == REGIONAL:
        group = directory.regional_group
        return Addressee("REGIONAL_GROUP", group.name, group.email)
    party = body.raised_by if body.raised_by.la_code == owner else body.against
    if body.stage is DisputeStage.LINE_MANAGERS:
        lm = party.line_manager
        return Addressee("LINE_MANAGER", lm.name, lm.email)
    if body.stage is DisputeStage.PRACTITIONERS:
        return Addressee("PRACTITIONER", party.name, None)
    coordinator = directory.get(owner).coordinator
    return Addressee("COORDINATOR", coordinator.name, coordinator.email)


def close_for_dispute(conn: Connection, authority: str, dispute_id: str) -> None:
    """A resolved dispute's outstanding escalations need no acknowledgement any more."""
    conn.execute(
        update(escalations)
        .where(
            and_(
                escalations.c.authority == authority,
                escalations.c.dispute_id == dispute_id,
                escalations.c.kind == "ESCALATION",
                escalations.c.status.in_([s.value for s in OPEN_STATUSES]),
            )
        )
        .values(status=EscalationStatus.CLOSED.value)
    )


def record(
    conn: Connection,
    settings: Settings,
    owner: str,
    *,
    escalation_id: str,
    sender: str,
    body: Dispute,
    content: bytes,
    now: datetime,
    closed: bool,
) -> bool:
    """Record one notice for ``owner``'s person; False if it was already recorded.

    ``closed``: the dispute is already resolved in ``owner``'s copy, so an
    escalation notice that arrives late is recorded CLOSED (nothing to act on,
    nothing to re-send); a resolution notice is always recorded open, to be read.
    """
    seen = conn.execute(
        select(escalations.c.id).where(
            and_(escalations.c.authority == owner, escalations.c.escalation_id == escalation_id)
        )
    ).first()
    if seen is not None:
        return False
    person = addressee_for(settings, owner, body)
    kind = _kind(owner, body)
    _close_earlier(conn, owner, body)
    status = (
        EscalationStatus.CLOSED if closed and kind == "ESCALATION" else EscalationStatus.PENDING
    )
    conn.execute(
        insert(escalations).values(
            authority=owner,
            escalation_id=escalation_id,
            sender=sender,
            dispute_id=body.dispute_id,
            stage=body.stage.value,
            kind=kind,
            addressee_role=person.role,
            addressee_name=person.name[:500],
            addressee_email=person.email,
            body=content,
            status=status.value,
            attempts=1,
            received_at=now,
            ack_due_at=now + timedelta(seconds=settings.disputes.ack_deadline_s),
        )
    )
    return status is EscalationStatus.PENDING


def _kind(owner: str, body: Dispute) -> str:
    """RESOLUTION; ESCALATION when the stage addresses ``owner``'s people; else UPDATE
    (the regional group told that a dispute it handled has moved on)."""
    if body.resolved:
        return "RESOLUTION"
    if owner == REGIONAL and body.stage is not DisputeStage.REGIONAL_GROUP:
        return "UPDATE"
    return "ESCALATION"


def _close_earlier(conn: Connection, owner: str, body: Dispute) -> None:
    """Escalations of an earlier stage are superseded once the dispute has moved on."""
    later = ladder.rank(body.stage)
    earlier = [s.value for s in ladder.LADDER if ladder.rank(s) < later]
    if body.resolved:
        close_for_dispute(conn, owner, body.dispute_id)
        return
    conn.execute(
        update(escalations)
        .where(
            and_(
                escalations.c.authority == owner,
                escalations.c.dispute_id == body.dispute_id,
                escalations.c.kind == "ESCALATION",
                escalations.c.stage.in_(earlier),
                escalations.c.status.in_([s.value for s in OPEN_STATUSES]),
            )
        )
        .values(status=EscalationStatus.CLOSED.value)
    )


def _view(row: object) -> EscalationView:
    m = row._mapping  # type: ignore[attr-defined]
    return EscalationView(
        escalation_id=m["escalation_id"],
        authority=m["authority"],
        sender=m["sender"],
        dispute_id=m["dispute_id"],
        stage=DisputeStage(m["stage"]),
        kind=m["kind"],
        addressee=Addressee(m["addressee_role"], m["addressee_name"], m["addressee_email"]),
        status=EscalationStatus(m["status"]),
        attempts=int(m["attempts"]),
        received_at=as_utc(m["received_at"]),
        ack_due_at=as_utc(m["ack_due_at"]),
        acked_at=as_utc(m["acked_at"]) if m["acked_at"] is not None else None,
        acked_by=m["acked_by"],
        content=bytes(m["body"]),
    )


def view_of_id(ledger: Ledger, authority: str, escalation_id: str) -> EscalationView:
    with ledger.transaction() as conn:
        row = conn.execute(
            select(escalations).where(
                and_(
                    escalations.c.authority == authority,
                    escalations.c.escalation_id == escalation_id,
                )
            )
        ).one()
    return _view(row)


def for_dispute(ledger: Ledger, authority: str, dispute_id: str) -> list[EscalationView]:
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(escalations)
            .where(
                and_(escalations.c.authority == authority, escalations.c.dispute_id == dispute_id)
            )
            .order_by(escalations.c.id)
        ).all()
    return [_view(r) for r in rows]


def overdue_counts(ledger: Ledger, authorities: Sequence[str]) -> dict[tuple[str, str], int]:
    """(authority, dispute id) -> how many of its escalations there are overdue."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(escalations.c.authority, escalations.c.dispute_id).where(
                and_(
                    escalations.c.authority.in_(list(authorities)),
                    escalations.c.status == EscalationStatus.OVERDUE.value,
                )
            )
        ).all()
    counts: dict[tuple[str, str], int] = {}
    for r in rows:
        counts[(r.authority, r.dispute_id)] = counts.get((r.authority, r.dispute_id), 0) + 1
    return counts


def pull(ledger: Ledger, authority: str, limit: int = 100) -> list[EscalationView]:
    """Unacknowledged escalations for ``authority``; PENDING ones become DELIVERED."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(escalations)
            .where(
                and_(
                    escalations.c.authority == authority,
                    escalations.c.status.in_([s.value for s in OPEN_STATUSES]),
                )
            )
            .order_by(escalations.c.id)
            .limit(limit)
        ).all()
        fresh = [r.id for r in rows if r.status == EscalationStatus.PENDING.value]
        if fresh:
            conn.execute(
                update(escalations)
                .where(
                    and_(
                        escalations.c.id.in_(fresh),
                        escalations.c.status == EscalationStatus.PENDING.value,
                    )
                )
                .values(status=EscalationStatus.DELIVERED.value)
            )
    views = [_view(r) for r in rows]
    return [
        v
        if v.status is not EscalationStatus.PENDING
        else replace(v, status=EscalationStatus.DELIVERED)
        for v in views
    ]


def mark_delivered(ledger: Ledger, authority: str, escalation_id: str) -> None:
    """A push connector handed the escalation over (PENDING -> DELIVERED)."""
    with ledger.transaction() as conn:
        conn.execute(
            update(escalations)
            .where(
                and_(
                    escalations.c.authority == authority,
                    escalations.c.escalation_id == escalation_id,
                    escalations.c.status == EscalationStatus.PENDING.value,
                )
            )
            .values(status=EscalationStatus.DELIVERED.value)
        )


def acknowledge(
    ledger: Ledger, authority: str, escalation_id: str, by: str, now: datetime
) -> EscalationView | None:
    """The person addressed has the escalation; None if ``authority`` has no such one."""
    with ledger.transaction() as conn:
        row = conn.execute(
            select(escalations).where(
                and_(
                    escalations.c.authority == authority,
                    escalations.c.escalation_id == escalation_id,
                )
            )
        ).first()
        if row is None:
            return None
        # Conditional: of two acknowledgements at once, the first one's who and when stay.
        conn.execute(
            update(escalations)
            .where(
                escalations.c.id == row.id,
                escalations.c.status != EscalationStatus.ACKNOWLEDGED.value,
            )
            .values(status=EscalationStatus.ACKNOWLEDGED.value, acked_at=now, acked_by=by[:500])
        )
    return view_of_id(ledger, authority, escalation_id)


@dataclass(frozen=True)
class Due:
    pk: int
    authority: str
    escalation_id: str
    attempts: int


def due(ledger: Ledger, owners: Sequence[str], now: datetime, limit: int) -> list[Due]:
    """Open, unacknowledged escalations of ``owners`` whose acknowledgement deadline passed."""
    with ledger.transaction() as conn:
        rows = conn.execute(
            select(
                escalations.c.id,
                escalations.c.authority,
                escalations.c.escalation_id,
                escalations.c.attempts,
            )
            .where(
                and_(
                    escalations.c.authority.in_(list(owners)),
                    escalations.c.status.in_(
                        [EscalationStatus.PENDING.value, EscalationStatus.DELIVERED.value]
                    ),
                    escalations.c.ack_due_at <= now,
                )
            )
            .limit(limit)
        ).all()
    return [Due(int(r.id), r.authority, r.escalation_id, int(r.attempts)) for r in rows]


def offer_again(ledger: Ledger, item: Due, values: dict[str, object]) -> bool:
    """Move one due escalation (re-offered or OVERDUE) unless someone else did first."""
    with ledger.transaction() as conn:
        won = conn.execute(
            update(escalations)
            .where(
                and_(
                    escalations.c.id == item.pk,
                    escalations.c.attempts == item.attempts,
                    escalations.c.status.in_(
                        [EscalationStatus.PENDING.value, EscalationStatus.DELIVERED.value]
                    ),
                )
            )
            .values(**values)
        ).rowcount
    return bool(won == 1)
