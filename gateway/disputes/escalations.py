"""The receiving side of escalation: from an escalation queue to the people addressed.

A notice taken from ``caf.escalation.<code>`` (or ``caf.escalation.regional``)
is verified like any message (signature of a pinned party, schema, routing
key naming the signed sender, created-at window), recorded as an escalation
addressed to the right person, and only then acknowledged to the broker.
Who is addressed follows the stage: the authority's CAF coordinator, the
regional group, or the line manager of the party of that authority as
recorded on the dispute (parties may be school or NHS staff).

Delivery to that person goes through the authority's connector: webhook or
file drop through ``gateway.connectors`` where ``authorities.yaml`` says so,
otherwise pull (``GET /v1/escalations`` + ``POST /v1/escalations/{id}/ack``,
which works for every authority). An
escalation not acknowledged by its deadline is offered again (the connector
is called again), up to a budget; then it is OVERDUE, which the dashboard
shows (``service.open_disputes``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import Connection, and_, insert, select, update

from gateway.context import Gateway
from gateway.disputes import store
from gateway.disputes.messages import parties
from gateway.disputes.tables import escalations
from gateway.envelope.codec import element_to_envelope
from gateway.errors import CafgwError, LedgerError, PolicyRefusal
from gateway.ledger.store import as_utc
from gateway.model import Dispute, DisputeStage, Envelope, MessageType
from gateway.transport.base import Delivery, Disposition, Verdict
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
    kind: str  # ESCALATION or RESOLUTION
    addressee: Addressee
    status: EscalationStatus
    attempts: int
    received_at: datetime
    ack_due_at: datetime
    acked_at: datetime | None
    acked_by: str | None
    content: bytes  # the signed Dispute envelope as received


def addressee_for(gw: Gateway, owner: str, body: Dispute) -> Addressee:
    """Who at ``owner`` (an LA code or ``regional``) the notice is for."""
    directory = gw.settings.directory
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


def _queue_owner(queue: str) -> str:
    return queue.rsplit(".", 1)[-1]


def _check(gw: Gateway, owner: str, delivery: Delivery) -> tuple[Envelope, bytes]:
    """The verified notice and its signed bytes, or CafgwError saying why it must be parked."""
    verified = gw.verifier.verify(delivery.body)
    gw.schema.validate(verified.root, verified.message_id)
    env = element_to_envelope(verified.root)
    header = env.header
    if header.message_type is not MessageType.DISPUTE or not isinstance(env.body, Dispute):
        raise PolicyRefusal("escalation.type", f"a {header.message_type} is not a dispute notice")
    body = env.body
    both = parties(body)
    if header.sender not in both:
        raise PolicyRefusal(
            "escalation.sender", f"sender {header.sender} is not a party to {body.dispute_id}"
        )
    if owner != REGIONAL and (owner not in both or header.recipient != owner):
        raise PolicyRefusal(
            "escalation.recipient",
            f"notice for {header.recipient} about a dispute of {both} reached the queue of {owner}",
        )
    if owner == REGIONAL and header.recipient not in both:
        raise PolicyRefusal("escalation.recipient", f"recipient {header.recipient} is not a party")
    expected = f"{owner}.{MessageType.DISPUTE.value}.{header.sender}"
    if delivery.routing_key != expected:
        raise PolicyRefusal(
            "escalation.routing",
            f"routing key {delivery.routing_key!r} does not match the signed sender "
            f"(expected {expected!r})",
        )
    now = gw.clock()
    limits = gw.settings.limits
    if header.created_at > now + timedelta(seconds=limits.future_skew_s) or (
        header.created_at < now - timedelta(seconds=limits.max_age_s)
    ):
        raise PolicyRefusal(
            "escalation.window", f"created-at {header.created_at.isoformat()} is outside the window"
        )
    return env, verified.signed_bytes


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


def _record(gw: Gateway, owner: str, env: Envelope, raw: bytes, conn: Connection) -> bool:
    """Record one verified notice; False if it was already recorded (a re-delivery)."""
    header = env.header
    assert isinstance(env.body, Dispute)
    body = env.body
    seen = conn.execute(
        select(escalations.c.id).where(
            and_(escalations.c.authority == owner, escalations.c.escalation_id == header.message_id)
        )
    ).first()
    if seen is not None:
        return False
    now = gw.clock()
    merged = store.merge(
        conn,
        owner,
        body,
        correlation_id=header.correlation_id,
        legal_basis=header.legal_basis.value,
        consent_ref=header.consent_ref,
        source=header.sender,
        now=now,
    )
    if merged.resolved_now:
        close_for_dispute(conn, owner, body.dispute_id)
    person = addressee_for(gw, owner, body)
    conn.execute(
        insert(escalations).values(
            authority=owner,
            escalation_id=header.message_id,
            sender=header.sender,
            dispute_id=body.dispute_id,
            stage=body.stage.value,
            kind="RESOLUTION" if body.resolved else "ESCALATION",
            addressee_role=person.role,
            addressee_name=person.name[:500],
            addressee_email=person.email,
            body=raw,
            status=EscalationStatus.PENDING.value,
            attempts=1,
            received_at=now,
            ack_due_at=now + timedelta(seconds=gw.settings.disputes.ack_deadline_s),
        )
    )
    return True


def handle_batch(gw: Gateway, deliveries: Sequence[Delivery]) -> list[Disposition]:
    """Record a batch from escalation queues; acknowledge only what is recorded."""
    out: list[Disposition] = []
    for delivery in deliveries:
        owner = _queue_owner(delivery.queue)
        try:
            env, signed = _check(gw, owner, delivery)
        except CafgwError as exc:
            log.warning(
                "escalation notice %s on %s parked: %s", delivery.message_id, delivery.queue, exc
            )
            out.append(Disposition(Verdict.PARK, str(exc)[:500]))
            continue
        try:
            with gw.ledger.transaction() as conn:
                fresh = _record(gw, owner, env, signed, conn)
        except PolicyRefusal as exc:
            out.append(Disposition(Verdict.PARK, str(exc)[:500]))
            continue
        except LedgerError as exc:
            log.error("ledger failed recording escalation %s: %s", delivery.message_id, exc)
            out.append(Disposition(Verdict.RETRY, f"ledger: {exc}"[:500]))
            continue
        if fresh:
            connector_for(gw, owner).deliver(view_of_id(gw, owner, env.header.message_id))
        out.append(Disposition(Verdict.ACK))
    return out


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


def view_of_id(gw: Gateway, authority: str, escalation_id: str) -> EscalationView:
    with gw.ledger.transaction() as conn:
        row = conn.execute(
            select(escalations).where(
                and_(
                    escalations.c.authority == authority,
                    escalations.c.escalation_id == escalation_id,
                )
            )
        ).one()
    return _view(row)


def for_dispute(gw: Gateway, authority: str, dispute_id: str) -> list[EscalationView]:
    with gw.ledger.transaction() as conn:
        rows = conn.execute(
            select(escalations)
            .where(
                and_(escalations.c.authority == authority, escalations.c.dispute_id == dispute_id)
            )
            .order_by(escalations.c.id)
        ).all()
    return [_view(r) for r in rows]


def overdue_counts(gw: Gateway, authorities: Sequence[str]) -> dict[tuple[str, str], int]:
    """(authority, dispute id) -> how many of its escalations there are overdue."""
    with gw.ledger.transaction() as conn:
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


def pull(gw: Gateway, authority: str, limit: int = 100) -> list[EscalationView]:
    """Unacknowledged escalations for ``authority``; PENDING ones become DELIVERED."""
    with gw.ledger.transaction() as conn:
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
        else _with_status(v, EscalationStatus.DELIVERED)
        for v in views
    ]


def _with_status(view: EscalationView, status: EscalationStatus) -> EscalationView:
    return replace(view, status=status)


def acknowledge(gw: Gateway, authority: str, escalation_id: str, by: str) -> EscalationView | None:
    """The person addressed has the escalation; None if ``authority`` has no such one."""
    now = gw.clock()
    with gw.ledger.transaction() as conn:
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
        if row.status != EscalationStatus.ACKNOWLEDGED.value:
            conn.execute(
                update(escalations)
                .where(escalations.c.id == row.id)
                .values(status=EscalationStatus.ACKNOWLEDGED.value, acked_at=now, acked_by=by[:500])
            )
    return view_of_id(gw, authority, escalation_id)


def resend_due(gw: Gateway, now: datetime | None = None, limit: int = 200) -> int:
    """Offer unacknowledged escalations again, or mark them OVERDUE after the budget."""
    now = now or gw.clock()
    settings = gw.settings.disputes
    owners = list(gw.hosted) + ([REGIONAL] if settings.consume_regional else [])
    changed = 0
    with gw.ledger.transaction() as conn:
        rows = conn.execute(
            select(
                escalations.c.id,
                escalations.c.authority,
                escalations.c.escalation_id,
                escalations.c.attempts,
            )
            .where(
                and_(
                    escalations.c.authority.in_(owners),
                    escalations.c.status.in_(
                        [EscalationStatus.PENDING.value, EscalationStatus.DELIVERED.value]
                    ),
                    escalations.c.ack_due_at <= now,
                )
            )
            .limit(limit)
        ).all()
    resent: list[tuple[str, str]] = []
    for row in rows:
        over_budget = row.attempts > settings.resend_budget
        values: dict[str, object] = (
            {"status": EscalationStatus.OVERDUE.value}
            if over_budget
            else {
                "status": EscalationStatus.PENDING.value,
                "attempts": row.attempts + 1,
                "ack_due_at": now + timedelta(seconds=settings.ack_deadline_s),
            }
        )
        with gw.ledger.transaction() as conn:
            won = conn.execute(
                update(escalations)
                .where(
                    and_(
                        escalations.c.id == row.id,
                        escalations.c.attempts == row.attempts,
                        escalations.c.status.in_(
                            [EscalationStatus.PENDING.value, EscalationStatus.DELIVERED.value]
                        ),
                    )
                )
                .values(**values)
            ).rowcount
        if won == 1:
            changed += 1
            if over_budget:
                log.warning(
                    "escalation %s for %s is overdue: not acknowledged after %d attempts",
                    row.escalation_id,
                    row.authority,
                    row.attempts,
                )
            else:
                resent.append((row.authority, row.escalation_id))
    for authority, escalation_id in resent:
        connector_for(gw, authority).deliver(view_of_id(gw, authority, escalation_id))
    return changed


class EscalationConnector(Protocol):
    def deliver(self, escalation: EscalationView) -> None:
        """Hand the escalation to the authority's local system (or leave it to be pulled)."""


class PullDelivery:
    """Delivery by pull: the local system asks ``GET /v1/escalations``; nothing to push."""

    def deliver(self, escalation: EscalationView) -> None:
        """Nothing to do: the escalation waits in the ledger until pulled and acknowledged."""


@dataclass(frozen=True)
class PushDelivery:
    """Delivery through the authority's webhook or file-drop connector (``gateway.connectors``).

    A connector that took or placed the escalation marks it DELIVERED; one that
    failed leaves it PENDING: it is offered again at its acknowledgement
    deadline, and in any case it can still be pulled.
    """

    gw: Gateway

    def deliver(self, escalation: EscalationView) -> None:
        from gateway.connectors import base, registry  # noqa: PLC0415 - optional feature

        try:
            connector = registry.connector_for(self.gw.settings, escalation.authority)
        except CafgwError as exc:
            log.warning("escalation %s: connector unusable: %s", escalation.escalation_id, exc)
            return
        try:
            handed = connector.deliver(
                base.LocalMessage(
                    pk=0,
                    message_id=escalation.escalation_id,
                    authority=escalation.authority,
                    sender=escalation.sender,
                    message_type=MessageType.DISPUTE.value,
                    body=escalation.content,
                    attempts=escalation.attempts - 1,
                )
            )
            if handed.outcome is base.Outcome.PLACED:
                connector.publish([escalation.escalation_id])
        except CafgwError as exc:
            log.warning("escalation %s: hand-over failed: %s", escalation.escalation_id, exc)
            return
        finally:
            connector.close()
        if handed.outcome in (base.Outcome.TAKEN, base.Outcome.PLACED):
            with self.gw.ledger.transaction() as conn:
                conn.execute(
                    update(escalations)
                    .where(
                        and_(
                            escalations.c.authority == escalation.authority,
                            escalations.c.escalation_id == escalation.escalation_id,
                            escalations.c.status == EscalationStatus.PENDING.value,
                        )
                    )
                    .values(status=EscalationStatus.DELIVERED.value)
                )
        else:
            log.warning(
                "escalation %s not handed over (%s): %s",
                escalation.escalation_id,
                handed.outcome.value,
                handed.reason or "no reason given",
            )


def connector_for(gw: Gateway, authority: str) -> EscalationConnector:
    """How escalations reach ``authority``'s people: its connector in authorities.yaml
    (webhook or file drop through ``gateway.connectors``), else pull. The regional
    group always pulls. Whatever the connector, an escalation can also be pulled."""
    if authority != REGIONAL and gw.settings.directory.get(authority).connector.kind in (
        "webhook",
        "file",
    ):
        return PushDelivery(gw)
    return PullDelivery()
