"""What the ledger knows about past disclosures of a child's data.

A withdrawal goes to every authority that already received data about the
child; data still waiting in the outbox for an authority that consent no
longer covers is stopped before it is sent (consent is judged at the
moment of sending).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, select

from gateway.ledger.status import OUTBOX_STATES, Direction, Status
from gateway.ledger.store import Ledger
from gateway.ledger.tables import messages
from gateway.model import LegalBasis

DISCLOSING = (LegalBasis.CONSENT.value, LegalBasis.SAFEGUARDING.value)
HAS_LEFT = (
    Status.SENT.value,
    Status.DELIVERED.value,
    Status.ACKNOWLEDGED.value,
    Status.RETRYING.value,
)
RULE_WITHDRAWN_BEFORE_SENDING = "consent.withdrawn-before-sending"


def past_recipients(conn: Connection, authority: str, child_key: str) -> tuple[str, ...]:
    """Other authorities that ``authority`` has sent personal data about the child to."""
    rows = conn.execute(
        select(messages.c.recipient)
        .where(
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.authority == authority,
            messages.c.child_key == child_key,
            messages.c.legal_basis.in_(DISCLOSING),
            messages.c.status.in_(HAS_LEFT),
            messages.c.recipient != authority,
        )
        .distinct()
    ).all()
    return tuple(sorted(r[0] for r in rows))


def stop_queued(
    ledger: Ledger,
    conn: Connection,
    authority: str,
    child_key: str,
    still_covered: Callable[[str], bool],
) -> int:
    """Refuse queued, unsent disclosures to recipients consent no longer covers."""
    rows = conn.execute(
        select(messages.c.id, messages.c.recipient).where(
            messages.c.direction == Direction.OUTBOUND.value,
            messages.c.authority == authority,
            messages.c.child_key == child_key,
            messages.c.legal_basis == LegalBasis.CONSENT.value,
            messages.c.status.in_([s.value for s in OUTBOX_STATES]),
        )
    ).all()
    stopped = [pk for pk, recipient in rows if not still_covered(recipient)]
    ledger.transition(
        stopped,
        Status.REJECTED,
        f"{RULE_WITHDRAWN_BEFORE_SENDING}: consent was withdrawn before the message was sent",
        conn,
    )
    return len(stopped)
