"""Publishing the dispute notice outbox to the escalation exchange.

A notice is claimed (a short lease, by conditional update) before it is
published, so two gateway processes on one ledger do not both publish it;
it leaves the outbox only once the broker confirmed it. A notice the broker
could not route (the recipient's escalation queue is not declared yet) or
refused stays and is tried again after the lease.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from gateway.context import Gateway
from gateway.disputes.tables import dispute_notices
from gateway.transport.base import OutgoingMessage, PublishOutcome

log = logging.getLogger(__name__)

LEASE_S = 60.0
RETRY_AFTER_S = 5.0


def publish_notices(gw: Gateway, limit: int = 100) -> int:
    """Publish pending notices of the hosted authorities; how many were confirmed."""
    now = gw.clock()
    lease = now + timedelta(seconds=LEASE_S)
    with gw.ledger.transaction() as conn:
        candidates = (
            conn.execute(
                select(dispute_notices.c.id)
                .where(
                    and_(
                        dispute_notices.c.published_at.is_(None),
                        dispute_notices.c.sender.in_(list(gw.hosted)),
                        or_(
                            dispute_notices.c.claimed_until.is_(None),
                            dispute_notices.c.claimed_until <= now,
                        ),
                    )
                )
                .order_by(dispute_notices.c.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    claimed = []
    for pk in candidates:
        with gw.ledger.transaction() as conn:
            won = conn.execute(
                update(dispute_notices)
                .where(
                    and_(
                        dispute_notices.c.id == pk,
                        dispute_notices.c.published_at.is_(None),
                        or_(
                            dispute_notices.c.claimed_until.is_(None),
                            dispute_notices.c.claimed_until <= now,
                        ),
                    )
                )
                .values(claimed_until=lease, attempts=dispute_notices.c.attempts + 1)
            ).rowcount
            if won == 1:
                row = conn.execute(select(dispute_notices).where(dispute_notices.c.id == pk)).one()
                claimed.append(row)
    if not claimed:
        return 0
    exchange = gw.settings.broker.escalation_exchange
    results = gw.transport.publish(
        [
            OutgoingMessage(
                routing_key=row.routing_key,
                body=row.body,
                message_id=row.message_id,
                headers={"x-cafgw-sender": row.sender},
                exchange=exchange,
            )
            for row in claimed
        ]
    )
    confirmed = 0
    with gw.ledger.transaction() as conn:
        for row, result in zip(claimed, results, strict=True):
            if result.outcome is PublishOutcome.CONFIRMED:
                confirmed += 1
                conn.execute(
                    update(dispute_notices)
                    .where(dispute_notices.c.id == row.id)
                    .values(published_at=now, last_error=None)
                )
            else:
                reason = f"{result.outcome.value}: {result.reason or 'no reason given'}"
                log.warning("escalation notice %s not published (%s)", row.message_id, reason)
                conn.execute(
                    update(dispute_notices)
                    .where(dispute_notices.c.id == row.id)
                    .values(claimed_until=now + timedelta(seconds=RETRY_AFTER_S), last_error=reason)
                )
    return confirmed
