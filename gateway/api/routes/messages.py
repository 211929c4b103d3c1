"""/v1/messages: submit local exports or canonical XML; read status histories."""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Annotated, BinaryIO
from urllib.parse import unquote

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from gateway.api.deps import AuthorityDep, CallerDep, GatewayDep
from gateway.api.idempotent import KEY_CONFLICT, IdempotencyKey, attempt, replayed
from gateway.api.problems import conflict
from gateway.api.schemas import MessageOut, RecordOut, SubmitOut
from gateway.api.submit_answer import SerializedReport
from gateway.context import Gateway
from gateway.crossborder.children import resolve_child
from gateway.errors import ForbiddenError, MalformedInputError, NotFoundError
from gateway.ledger import search
from gateway.ledger.status import Direction, Status
from gateway.ops import attention
from gateway.services import idempotency, outbound, uploads
from gateway.settings import Limits

router = APIRouter(prefix="/v1/messages", tags=["messages"])


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise MalformedInputError(f"request body is {declared} bytes; the limit is {limit}")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise MalformedInputError(f"request body exceeds the limit of {limit} bytes")
    return bytes(data)


async def _spooled(request: Request, limits: Limits) -> BinaryIO:
    """The upload in a temporary file (memory stays small whatever its size)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_upload_bytes:
        raise uploads.too_large(declared, limits)
    spooled = uploads.spool()
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_upload_bytes:
                raise uploads.too_large(f"more than {size}", limits)
            await anyio.to_thread.run_sync(spooled.write, chunk)
    except BaseException:
        spooled.close()
        raise
    spooled.seek(0)
    return spooled


def _limiter(request: Request, gw: Gateway) -> anyio.CapacityLimiter:
    """The worker threads conversions share (``limits.upload_conversions`` at once)."""
    limiter: anyio.CapacityLimiter | None = getattr(request.app.state, "conversions", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(gw.settings.limits.upload_conversions)
        request.app.state.conversions = limiter
    return limiter


# The body is read as a stream (an export may be 200 MB), so FastAPI cannot infer it:
# it is declared here, so that a client generated from /openapi.json can send a file.
SUBMIT_BODY = {
    "required": True,
    "description": (
        "With `adapter`: the local export file exactly as the local system wrote it "
        "(CSV, JSON or XML in the adapter's encoding). Without: one canonical XML envelope "
        "(urn:caf-exchange:1), unsigned; the gateway signs it."
    ),
    # Any Content-Type is read the same way; one declared keeps generated clients simple.
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
_FILENAME = re.compile(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', re.IGNORECASE)


def _source(request: Request, source: str | None) -> str:
    """What errors call the file: ``source``, else the upload's file name, else "upload"."""
    if source:
        return source
    found = _FILENAME.search(request.headers.get("content-disposition", ""))
    return Path(unquote(found.group(1))).name[:200] if found else "upload"


@router.post(
    "",
    status_code=202,
    response_model=SubmitOut | RecordOut,
    responses=KEY_CONFLICT,
    openapi_extra={"requestBody": SUBMIT_BODY},
)
async def submit(
    request: Request,
    gw: GatewayDep,
    authority: AuthorityDep,
    adapter: Annotated[
        str | None, Query(description="local format adapter, e.g. dudley-csv")
    ] = None,
    source: Annotated[
        str | None,
        Query(
            max_length=200,
            description="the file's name in error messages (FILE:ROW:FIELD); default: the "
            "Content-Disposition file name, else 'upload'",
        ),
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response | RecordOut:
    """Accept a local export (with ``adapter``) or one canonical XML envelope.

    Everything accepted is in the ledger before this answers. With an
    ``Idempotency-Key`` header, a repeat of the same request gets the first
    answer again (``Idempotent-Replayed: true``) and submits nothing; the same
    key with another request is a 409.
    """
    source = _source(request, source)
    if adapter is None:
        data = await _body(request, gw.settings.limits.max_message_bytes)
        stream: BinaryIO = io.BytesIO(data)
    else:
        stream = await _spooled(request, gw.settings.limits)
    try:
        # Conversion, signing and the ledger run in a worker thread: the event loop keeps
        # answering every other request (other authorities, /healthz) meanwhile.
        return await anyio.to_thread.run_sync(
            partial(_submit, gw, authority, adapter, source, idempotency_key, stream),
            limiter=_limiter(request, gw),
        )
    finally:
        stream.close()


def _submit(
    gw: Gateway,
    authority: str,
    adapter: str | None,
    source: str,
    key: str | None,
    stream: BinaryIO,
) -> Response | RecordOut:
    def accept() -> SerializedReport | RecordOut:
        if adapter is not None:
            # The answer (SubmitOut) is written batch by batch as records are accepted,
            # not built from every outcome at the end, and sent as it was written
            # (never joined into one more copy): see gateway/api/submit_answer.py.
            report = SerializedReport(source)
            uploads.submit(gw, authority, adapter, stream, source, report)
            return report
        return RecordOut.of(outbound.submit_envelope(gw, authority, stream.read()))

    def sent(answer: SerializedReport | RecordOut) -> Response | RecordOut:
        return answer.response() if isinstance(answer, SerializedReport) else answer

    if key is None:
        return sent(accept())
    digest = idempotency.request_digest_of(adapter, source, stream)
    kept = idempotency.begin(gw.ledger, authority, key, digest, gw.clock())
    if kept is not None:
        return replayed(kept)
    answer = attempt(gw, authority, key, accept)
    # An export's answer is already JSON (SerializedReport); kept as the object it encodes.
    answered = (
        json.loads(answer.body())
        if isinstance(answer, SerializedReport)
        else answer.model_dump(mode="json")
    )
    idempotency.finish(gw.ledger, authority, key, idempotency.Answer(202, answered))
    return sent(answer)


@router.get("/{message_id}", response_model=list[MessageOut])
def status(message_id: str, gw: GatewayDep, who: CallerDep) -> list[MessageOut]:
    """Status history of a message, for the caller's authority (an admin sees all)."""
    looked_in = who.looks_in(gw.ledger_authorities)
    visible = gw.ledger.find(message_id=message_id[:64], authorities=looked_in)
    if not visible:
        raise NotFoundError(f"message {message_id} not found")
    return [MessageOut.of(r) for r in visible]


@router.get("", response_model=list[MessageOut])
def listing(
    gw: GatewayDep,
    authority: AuthorityDep,
    who: CallerDep,
    status: Annotated[Status | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="changed at or after")] = None,
    message_id: Annotated[str | None, Query(max_length=64, description="id or its start")] = None,
    case_ref: Annotated[
        str | None, Query(max_length=64, description="case reference or its start")
    ] = None,
    child: Annotated[
        str | None,
        Query(max_length=200, description="UPN, NHS number or child key (an authority's key only)"),
    ] = None,
    direction: Annotated[Direction | None, Query()] = None,
    message_type: Annotated[str | None, Query(max_length=32)] = None,
    counterparty: Annotated[str | None, Query(pattern=r"^[0-9]{3}$")] = None,
    created_from: Annotated[datetime | None, Query(alias="from")] = None,
    created_to: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[MessageOut]:
    """The authority's messages matching every filter given, newest first, with history."""
    child_key = None
    if child:
        if who.is_admin:
            raise ForbiddenError("searching by child needs the authority's own key")
        child_key = resolve_child(gw, authority, child.strip())
    found = search.search(
        gw.ledger,
        search.Criteria(
            authorities=(authority,),
            message_id=message_id,
            case_ref=case_ref,
            child_key=child_key,
            statuses=(status,) if status else (),
            direction=direction,
            message_type=message_type,
            counterparty=counterparty,
            created_from=created_from,
            created_to=created_to,
            updated_from=since,
            include_receipts=True,
            include_restricted=child_key is None,
            limit=limit,
            offset=offset,
        ),
    )
    return [MessageOut.of(r) for r in search.with_history(gw.ledger, found)]


class DismissIn(BaseModel):
    """Why a message that needed a human is taken off the list, and who decided."""

    reason: str = Field(min_length=3, max_length=attention.MAX_REASON_CHARS)
    by: str = Field(min_length=2, max_length=64, pattern=r"^[\w .@'-]+$")


class DismissedOut(BaseModel):
    message_id: str
    authority: str
    status: str
    actor: str
    reason: str
    at: datetime
    already_dismissed: bool = Field(
        default=False,
        description="dismissed before in this status (a second click, a colleague a moment "
        "earlier): actor, reason and at are that dismissal's; nothing was recorded now",
    )


SEVERAL_SENDERS = conflict(
    "Messages from several senders are under this id (one refused because the other "
    "holds it, or a forged delivery): name the sender"
)


@router.post("/{message_id}/dismiss", response_model=list[DismissedOut], responses=SEVERAL_SENDERS)
def dismiss(
    message_id: str,
    body: DismissIn,
    gw: GatewayDep,
    authority: AuthorityDep,
    who: CallerDep,
    sender: Annotated[
        str | None,
        Query(
            max_length=16,
            description="only this sender's message under the id; required (409) when "
            "messages from several senders are under it",
        ),
    ] = None,
    status: Annotated[
        Status | None, Query(description="only the message in this status (as listed)")
    ] = None,
) -> list[DismissedOut]:
    """Acknowledge a rejected, quarantined, dead-lettered or undeliverable message.

    It leaves "needs a human" (and stops counting in ``cafgw_needs_human``)
    until it changes status again; who and why are recorded, with an audit
    entry. The message and its history are unchanged. Dismissed already (in
    the status it has): that dismissal, ``already_dismissed: true``, nothing
    recorded again.
    """
    actor = who.named(body.by)  # the name given, and the key that made the request
    done = attention.dismiss(
        gw.ledger, authority, message_id[:64], actor, body.reason, sender, status
    )
    return [
        DismissedOut(
            message_id=d.message_id,
            authority=d.authority,
            status=d.status.value,
            actor=d.actor,
            reason=d.reason,
            at=d.at,
            already_dismissed=d.already,
        )
        for d in done
    ]
