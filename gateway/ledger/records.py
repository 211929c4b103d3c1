"""Frozen records that the ledger takes in and hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.errors import LedgerError
from gateway.ledger.status import Direction, Route, Status

# Widths of messages columns a recorded message is cut to (``Ledger.record``, and
# ``outbox_item`` for a row read back without a claim); tables.messages declares
# the columns with these widths (tests/unit/test_ledger_column_widths.py).
MESSAGE_ID_WIDTH = 64
CODE_WIDTH = 16  # sender, recipient
MESSAGE_TYPE_WIDTH = 32


@dataclass(frozen=True)
class NewMessage:
    """A message to record, outbound (authority = sender) or inbound (= recipient)."""

    message_id: str
    direction: Direction
    authority: str
    sender: str
    recipient: str
    message_type: str
    correlation_id: str
    legal_basis: str
    statuses: tuple[tuple[Status, str | None], ...]
    case_ref: str | None = None
    purpose: str | None = None
    digest: str | None = None
    body: bytes | None = None
    receipt_due: bool = False
    child_key: str | None = None
    route: Route = Route.INBOX
    # The owner of the queue it is published to / was consumed from: the
    # recipient for an inbox, the LA or "regional" for an escalation queue.
    route_to: str | None = None
    # SHA-256 of the canonical body alone (no header): the same local record
    # sent again has the same content digest, whatever its message id.
    content_digest: str | None = None
    # Recorded restricted (``messages.restricted``): e.g. a record its sender recalled
    # before it came (``Feature.on_arrival``).
    restricted: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    status: Status
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class MessageRecord:
    pk: int
    message_id: str
    direction: Direction
    authority: str
    sender: str
    recipient: str
    message_type: str
    correlation_id: str
    case_ref: str | None
    legal_basis: str
    purpose: str | None
    status: Status
    reason: str | None
    digest: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    restricted: bool
    route: Route = Route.INBOX
    route_to: str | None = None
    history: tuple[HistoryEntry, ...] = ()


@dataclass(frozen=True)
class Receipted:
    """An outbound message receipted by its recipient: its key and when it was made."""

    pk: int
    created_at: datetime


@dataclass(frozen=True)
class OutboxItem:
    """An outbound message ready to publish (its exact signed bytes)."""

    pk: int
    message_id: str
    sender: str
    recipient: str
    message_type: str
    body: bytes
    attempts: int
    route: Route
    route_to: str  # the queue owner it is routed to (the recipient, or "regional")


def outbox_item(pk: int, message: NewMessage) -> OutboxItem:
    """``message``, just recorded as ``pk``, as a claim of the outbox reads it back
    (cut to the widths ``Ledger.record`` stores)."""
    if message.body is None:
        raise LedgerError(f"message {message.message_id}: recorded without a body to publish")
    return OutboxItem(
        pk,
        message.message_id[:MESSAGE_ID_WIDTH],
        message.sender[:CODE_WIDTH],
        message.recipient[:CODE_WIDTH],
        message.message_type[:MESSAGE_TYPE_WIDTH],
        message.body,
        0,
        message.route,
        message.route_to or message.recipient[:CODE_WIDTH],
    )


@dataclass(frozen=True)
class InboxItem:
    pk: int
    message_id: str
    sender: str
    recipient: str
    message_type: str
    correlation_id: str
    status: Status
    received_at: datetime
    body: bytes
    restricted: bool


@dataclass(frozen=True)
class ReceiptDue:
    """An inbound message whose receipt has not been sent yet."""

    pk: int
    authority: str
    sender: str
    message_id: str
    digest: str
    status: Status
    reason: str | None


@dataclass(frozen=True)
class InboundSeen:
    """What the ledger already knows of an inbound (sender, message id)."""

    pk: int
    digest: str | None
    status: Status
    receipt_message_id: str | None


@dataclass(frozen=True)
class InboundKnown:
    """Every inbound row of some ``(sender, message_id)`` pairs, whatever its status, as
    one read found them (``InboundQueries.inbound_known``)."""

    seen: dict[tuple[str, str], InboundSeen]
    """Per pair, its row that is not quarantined."""
    rows: dict[tuple[str, str, str | None], int]
    """Primary keys of the pairs' rows, any status, by ``(sender, message_id, digest)``."""
    holders: dict[str, str]
    """Per message id of the pairs, the sender of its inbound rows that are not
    quarantined, whoever that is, or the authority itself for its own outbound
    rows: an id names one message of the authority."""
