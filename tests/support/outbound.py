"""Outbound rows as a ledger holds them once signed: queued in the outbox, or as
recorded at signing."""

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


def signed_assessment(body: bytes | None) -> NewMessage:
    """An Assessment from 332 to 336 as signing records it (``ACCEPTED``, ``SIGNED``),
    carrying ``body`` (None: none kept); a random id and digest."""
    return NewMessage(
        message_id=str(uuid.uuid4()),
        direction=Direction.OUTBOUND,
        authority="332",
        sender="332",
        recipient="336",
        message_type="Assessment",
        correlation_id="thread-1",
        legal_basis="CONSENT",
        statuses=((Status.ACCEPTED, None), (Status.SIGNED, None)),
        digest=uuid.uuid4().hex,
        body=body,
    )
