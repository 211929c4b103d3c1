"""Outbound rows as a ledger holds them once signed: queued in the outbox."""

from __future__ import annotations

import uuid

from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status


def queued(sender: str = "332", authority: str = "332", n: int = 0) -> NewMessage:
    """A signed IssueLogEntry from ``sender`` (on ``authority``'s ledger rows) to 336,
    waiting in the outbox; ``n`` makes its digest."""
    return NewMessage(
        message_id=str(uuid.uuid4()),
        direction=Direction.OUTBOUND,
        authority=authority,
        sender=sender,
        recipient="336",
        message_type="IssueLogEntry",
        correlation_id=str(uuid.uuid4()),
        legal_basis="NO_PERSONAL_DATA",
        statuses=((Status.SIGNED, None),),
        body=b"<Envelope/>",
        digest=f"{n:064x}",
        route_to="336",
    )
