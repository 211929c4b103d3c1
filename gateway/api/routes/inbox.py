"""/v1/inbox: the pull connector — received messages and their acknowledgement."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.api.deps import AuthorityDep, CallerDep, GatewayDep
from gateway.api.schemas import AckItemOut, AckManyIn, AckOut, InboxItemOut
from gateway.errors import ConflictError, NotFoundError
from gateway.ledger.status import Status
from gateway.services import access_log, local_format

router = APIRouter(prefix="/v1/inbox", tags=["inbox"])


class InboxFormat(StrEnum):
    CANONICAL = "canonical"
    LOCAL = "local"


class InboxLocalItemOut(InboxItemOut):
    """An inbox item; with ``format=local`` also the exact local bytes and any note."""

    format: str = InboxFormat.CANONICAL.value
    content_base64: str | None = None
    note: str | None = None


@router.get("", response_model=list[InboxLocalItemOut])
def inbox(
    gw: GatewayDep,
    authority: AuthorityDep,
    who: CallerDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Annotated[InboxFormat, Query()] = InboxFormat.CANONICAL,
) -> list[InboxLocalItemOut]:
    """Messages received for the caller that its local system has not acknowledged.

    Each is served as the signed canonical XML, or with ``format=local`` in the
    authority's local rendering of its type (``local_formats`` in
    ``authorities.yaml``): an Assessment, recall, correction or erasure notice
    in its own format (its ``adapter``), every other type (or every type, for
    an authority without an adapter) in the documented JSON form
    (docs/adapters.md, *Local renderings*); ``content`` as text,
    ``content_base64`` the exact bytes, ``note`` anything to know. Acknowledge
    each with ``POST /v1/inbox/{message_id}/ack`` once the local system has it,
    or many at once with ``POST /v1/inbox/ack``.
    """
    local = format is InboxFormat.LOCAL
    items = gw.ledger.inbox(authority, limit)
    # Audited before anything is served: who read which child's record, in which form.
    what = "inbox (local format)" if local else "inbox"
    access_log.record(
        gw, authority, who.actor, access_log.inbox_reads(gw, authority, [i.pk for i in items], what)
    )
    fresh = [i.pk for i in items if i.status == Status.VERIFIED]
    # Conditional: an acknowledgement that came in since the read (another replica,
    # another request) is never undone.
    gw.ledger.transition_from(
        fresh, {Status.VERIFIED}, Status.DELIVERED_LOCAL, "served to the local system (pull)"
    )
    out = []
    for i in items:
        served = Status.DELIVERED_LOCAL if i.status == Status.VERIFIED else i.status
        if local:
            form = local_format.serve(gw, authority, i.message_type, i.body)
        else:
            form = local_format.LocalForm(False, "application/xml", i.body.decode("utf-8"))
        out.append(
            InboxLocalItemOut(
                message_id=i.message_id,
                sender=i.sender,
                message_type=i.message_type,
                correlation_id=i.correlation_id,
                status=served.value,
                received_at=i.received_at,
                content_type=form.content_type,
                content=form.content,
                format=(InboxFormat.LOCAL if form.local else InboxFormat.CANONICAL).value,
                content_base64=form.content_base64,
                note=form.note,
            )
        )
    return out


@router.post("/ack", response_model=list[AckItemOut])
def acknowledge_many(body: AckManyIn, gw: GatewayDep, authority: AuthorityDep) -> list[AckItemOut]:
    """The local system has taken these messages (up to 1,000 per request).

    One answer per distinct id, in the order given, each what the single
    acknowledgement would have answered: ``acknowledged`` (moved now),
    ``already_acknowledged`` (nothing changed) or ``not_in_inbox`` (never
    received, or no longer waiting). Each move is conditional, as the single
    one's is: an id acknowledged twice, in one batch, in two batches or on two
    replicas at once, is acknowledged once. The request answers 200 whatever
    the outcomes; a local system that receives ``not_in_inbox`` for an id it
    was served should ask an operator, as for a 404 on the single route.
    """
    ids = [m[:64] for m in body.message_ids]
    done, others = gw.ledger.acknowledge_local_many(authority, ids)
    out = []
    for message_id in dict.fromkeys(ids):
        if message_id in done:
            out.append(
                AckItemOut(message_id=message_id, outcome="acknowledged", status="ACKNOWLEDGED")
            )
            continue
        if others.get(message_id) == Status.ACKNOWLEDGED:
            out.append(
                AckItemOut(
                    message_id=message_id, outcome="already_acknowledged", status="ACKNOWLEDGED"
                )
            )
        else:
            out.append(AckItemOut(message_id=message_id, outcome="not_in_inbox", status=None))
    return out


@router.post("/{message_id}/ack", response_model=AckOut)
def acknowledge(message_id: str, gw: GatewayDep, authority: AuthorityDep) -> AckOut:
    """The local system has taken the message.

    Once only: acknowledging an acknowledged message again answers 409 (nothing
    changes); one that is not in the inbox (never received, or no longer
    waiting) answers 404.
    """
    if gw.ledger.acknowledge_local(authority, message_id[:64]):
        return AckOut(message_id=message_id, status=Status.ACKNOWLEDGED.value)
    if gw.ledger.inbound_status(authority, message_id[:64]) == Status.ACKNOWLEDGED:
        raise ConflictError(f"message {message_id} was already acknowledged; nothing changed")
    raise NotFoundError(f"message {message_id} is not in the inbox")
