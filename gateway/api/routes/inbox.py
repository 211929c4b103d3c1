"""/v1/inbox: the pull connector — received messages and their acknowledgement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import AuthorityDep, GatewayDep
from gateway.api.schemas import AckOut, InboxItemOut
from gateway.errors import NotFoundError
from gateway.ledger.status import Status

router = APIRouter(prefix="/v1/inbox", tags=["inbox"])


@router.get("", response_model=list[InboxItemOut])
def inbox(
    gw: GatewayDep,
    authority: AuthorityDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[InboxItemOut]:
    """Messages received for the caller that its local system has not acknowledged.

    Each is served as the signed canonical XML; acknowledge it with
    ``POST /v1/inbox/{message_id}/ack`` once the local system has it.
    """
    items = gw.ledger.inbox(authority, limit)
    fresh = [i.pk for i in items if i.status == Status.VERIFIED]
    gw.ledger.transition(fresh, Status.DELIVERED_LOCAL, "served to the local system (pull)")
    return [
        InboxItemOut(
            message_id=i.message_id,
            sender=i.sender,
            message_type=i.message_type,
            correlation_id=i.correlation_id,
            status=Status.DELIVERED_LOCAL.value if i.status == Status.VERIFIED else i.status.value,
            received_at=i.received_at,
            content_type="application/xml",
            content=i.body.decode("utf-8"),
        )
        for i in items
    ]


@router.post("/{message_id}/ack", response_model=AckOut)
def acknowledge(message_id: str, gw: GatewayDep, authority: AuthorityDep) -> AckOut:
    """The local system has taken the message."""
    if not gw.ledger.acknowledge_local(authority, message_id[:64]):
        raise NotFoundError(f"message {message_id} is not in the inbox")
    return AckOut(message_id=message_id, status=Status.ACKNOWLEDGED.value)
