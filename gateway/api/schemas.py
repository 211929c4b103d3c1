"""Pydantic models of the HTTP API (what /openapi.json documents)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gateway.ledger.records import MessageRecord
from gateway.services.outbound import RecordOutcome, SubmitReport


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class HistoryOut(_Out):
    status: str
    at: datetime
    reason: str | None


class MessageOut(_Out):
    message_id: str
    direction: str
    authority: str
    sender: str
    recipient: str
    message_type: str
    correlation_id: str
    case_ref: str | None
    legal_basis: str
    purpose: str | None
    status: str
    reason: str | None
    digest: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    history: list[HistoryOut]

    @classmethod
    def of(cls, r: MessageRecord) -> MessageOut:
        return cls(
            message_id=r.message_id,
            direction=r.direction.value,
            authority=r.authority,
            sender=r.sender,
            recipient=r.recipient,
            message_type=r.message_type,
            correlation_id=r.correlation_id,
            case_ref=r.case_ref,
            legal_basis=r.legal_basis,
            purpose=r.purpose,
            status=r.status.value,
            reason=r.reason,
            digest=r.digest,
            attempts=r.attempts,
            created_at=r.created_at,
            updated_at=r.updated_at,
            history=[
                HistoryOut(status=h.status.value, at=h.at, reason=h.reason) for h in r.history
            ],
        )


class RecordOut(_Out):
    record: str
    case_ref: str | None
    status: str
    message_ids: list[str]
    recipients: list[str]
    reasons: list[str]

    @classmethod
    def of(cls, o: RecordOutcome) -> RecordOut:
        return cls(
            record=o.record,
            case_ref=o.case_ref,
            status=o.status.value,
            message_ids=list(o.message_ids),
            recipients=list(o.recipients),
            reasons=list(o.reasons),
        )


class SubmitOut(_Out):
    source: str
    queued: int
    held: int
    rejected: int
    records: list[RecordOut]

    @classmethod
    def of(cls, r: SubmitReport) -> SubmitOut:
        return cls(
            source=r.source,
            queued=r.queued,
            held=r.held,
            rejected=r.rejected,
            records=[RecordOut.of(o) for o in r.outcomes],
        )


class InboxItemOut(_Out):
    message_id: str
    sender: str
    message_type: str
    correlation_id: str
    status: str
    received_at: datetime
    content_type: str
    content: str


class AckOut(_Out):
    message_id: str
    status: str


MAX_ACK_BATCH = 1000  # as many as one GET /v1/inbox serves


class AckManyIn(BaseModel):
    """The messages a local system has taken (``POST /v1/inbox/ack``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_ids: list[str] = Field(min_length=1, max_length=MAX_ACK_BATCH)


class AckItemOut(_Out):
    """One id of a batch acknowledgement: ``outcome`` is what the single
    ``POST /v1/inbox/{id}/ack`` would have answered (``acknowledged`` 200,
    ``already_acknowledged`` 409, ``not_in_inbox`` 404)."""

    message_id: str
    outcome: str
    status: str | None


class ErrorOut(_Out):
    error: str
    detail: str


class HealthOut(_Out):
    status: str
    checks: dict[str, str] = {}
