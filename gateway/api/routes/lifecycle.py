"""Recall, correction and "not ours": taking back or superseding what was sent.

- ``POST /v1/messages/{id}/recall``: the sender recalls a message it sent.
- ``POST /v1/messages/{id}/correction``: the sender supersedes it; the
  request body is the whole corrected body as canonical XML (an
  ``Assessment``, ``ConsentChange``, ``Notification`` or ``Evaluation``
  element of ``urn:caf-exchange:1``).
- ``GET /v1/messages/{id}/recalls``: its recalls and corrections, with the
  outcome each recipient's signed receipt proved.
- ``GET /v1/recalls``: the authority's newest recalls and corrections.
- ``POST /v1/inbox/{id}/not-ours``: a recipient says a message was not for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import AuthorityDep, CallerDep, GatewayDep
from gateway.envelope import xmlsafe
from gateway.envelope.codec import body_from_element
from gateway.errors import MalformedInputError
from gateway.lifecycle import not_ours, outcomes, sender
from gateway.model import RecallReason

router = APIRouter(tags=["recall"])


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class RecallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: RecallReason
    explanation: str | None = Field(
        default=None, max_length=500, description="for the coordinator; no personal data"
    )


class RecallSentOut(_Out):
    original_id: str
    recipient: str
    status: str
    message_id: str | None
    detail: str

    @classmethod
    def of(cls, s: sender.Sent) -> RecallSentOut:
        return cls(
            original_id=s.original_id,
            recipient=s.recipient,
            status=s.status.value,
            message_id=s.message_id,
            detail=s.detail,
        )


class RecallOutcomeOut(_Out):
    kind: str
    message_id: str | None
    original_id: str
    recipient: str
    reason: str
    requested_by: str
    requested_at: datetime
    status: str
    outcome: str | None
    action: str | None
    handed_over_at: datetime | None
    outcome_reason: str | None
    outcome_at: datetime | None
    summary: str

    @classmethod
    def of(cls, o: outcomes.RecallOutcome) -> RecallOutcomeOut:
        return cls(
            kind=o.kind,
            message_id=o.message_id,
            original_id=o.original_id,
            recipient=o.recipient,
            reason=o.reason,
            requested_by=o.actor,
            requested_at=o.requested_at,
            status=o.status,
            outcome=o.outcome,
            action=o.action,
            handed_over_at=o.handed_over_at,
            outcome_reason=o.outcome_reason,
            outcome_at=o.outcome_at,
            summary=o.describe(),
        )


class NotOursOut(_Out):
    message_id: str
    sender: str
    notice_id: str
    withdrawn: bool
    # True when "not ours" had been said before: notice_id is the notice sent then,
    # by whom and when; nothing was sent this time.
    already_said: bool = False
    said_by: str | None = None
    said_at: datetime | None = None


def _actor(who: CallerDep) -> str:
    return who.actor  # the key's holder, role and id: which key did it


@router.post("/v1/messages/{message_id}/recall", status_code=202, response_model=RecallSentOut)
def recall(
    message_id: str, body: RecallIn, gw: GatewayDep, authority: AuthorityDep, who: CallerDep
) -> RecallSentOut:
    """Recall a message this authority sent: withdrawn if still queued, else a signed Recall."""
    return RecallSentOut.of(
        sender.recall(
            gw, authority, message_id, body.reason, body.explanation, _actor(who), again=True
        )
    )


@router.post("/v1/messages/{message_id}/correction", status_code=202, response_model=RecallSentOut)
async def correction(
    message_id: str,
    request: Request,
    gw: GatewayDep,
    authority: AuthorityDep,
    who: CallerDep,
    explanation: Annotated[str, Query(min_length=1, max_length=500)],
) -> RecallSentOut:
    """Supersede a message this authority sent with a corrected body (canonical XML)."""
    data = await request.body()
    limits = gw.settings.limits
    if len(data) > limits.max_message_bytes:
        raise MalformedInputError(f"the corrected body is over {limits.max_message_bytes} bytes")

    def correct() -> sender.Sent:
        root = xmlsafe.parse(
            data, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth
        )
        gw.schema.validate(root)
        replacement = sender.replacement_of_body(body_from_element(root))
        return sender.correct(gw, authority, message_id, replacement, explanation, _actor(who))

    # Parsing, signing and the ledger block: on a worker thread, not the event loop,
    # which every other request of the API waits on.
    return RecallSentOut.of(await anyio.to_thread.run_sync(correct))


@router.get("/v1/messages/{message_id}/recalls", response_model=list[RecallOutcomeOut])
def recalls_of(message_id: str, gw: GatewayDep, authority: AuthorityDep) -> list[RecallOutcomeOut]:
    """Recalls and corrections of a message, with what each recipient proved was done."""
    with gw.ledger.transaction() as conn:
        found = outcomes.outcomes_of(conn, authority, message_id)
    return [RecallOutcomeOut.of(o) for o in found]


@router.get("/v1/recalls", response_model=list[RecallOutcomeOut])
def recent(
    gw: GatewayDep,
    authority: AuthorityDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[RecallOutcomeOut]:
    """The authority's newest recalls and corrections with their outcomes (dashboard)."""
    with gw.ledger.transaction() as conn:
        found = outcomes.outcomes_of(conn, authority, None, limit)
    return [RecallOutcomeOut.of(o) for o in found]


@router.post("/v1/inbox/{message_id}/not-ours", status_code=202, response_model=NotOursOut)
def mark_not_ours(
    message_id: str, gw: GatewayDep, authority: AuthorityDep, who: CallerDep
) -> NotOursOut:
    """A received message was not for this authority: its sender is asked to recall it."""
    done = not_ours.not_ours(gw, authority, message_id, _actor(who))
    return NotOursOut(
        message_id=done.message_id,
        sender=done.sender,
        notice_id=done.notice_id,
        withdrawn=done.withdrawn,
        already_said=done.already_said,
        said_by=done.by or None,
        said_at=done.at,
    )
