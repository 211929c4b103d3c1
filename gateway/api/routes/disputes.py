"""/v1/disputes and /v1/escalations: disputes between authorities and the
escalations that reach CAF coordinators, the regional group and line managers.

Only the parties' authorities see or act on a dispute (each on its own copy);
the regional coordinators group sees the disputes that reached its stage (an
API key issued for ``regional``, or an admin with ``?authority=regional``).
Anyone else gets 404, exactly as for a dispute that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from gateway.api import idempotent
from gateway.api.deps import CallerDep, GatewayDep
from gateway.api.dispute_schemas import (
    AckEscalationIn,
    CommentIn,
    DisputeIn,
    DisputeOut,
    EscalateIn,
    EscalationOut,
    ResolveIn,
)
from gateway.api.idempotent import KEY_CONFLICT, IdempotencyKey
from gateway.disputes import escalations, service
from gateway.errors import InputLimitError, NotFoundError, PolicyRefusal
from gateway.model import DisputeStage
from gateway.transport.topology import REGIONAL

router = APIRouter(tags=["disputes"])


@dataclass(frozen=True)
class Viewer:
    """Whose copies a caller reads (None: every copy) and for whom it may act."""

    reads: tuple[str, ...] | None
    acts_as: str | None


def viewer(
    who: CallerDep,
    gw: GatewayDep,
    authority: Annotated[
        str | None,
        Query(pattern=r"^([0-9]{3}|regional)$", description="admin only: whose view"),
    ] = None,
) -> Viewer:
    if who.is_admin:
        if authority is None:
            return Viewer(None, None)
        chosen = authority
    else:
        if who.authority is None or (authority is not None and authority != who.authority):
            raise NotFoundError(f"authority {authority} not found")
        chosen = who.authority
    if chosen == REGIONAL:
        return Viewer((REGIONAL,), None)
    if chosen not in gw.hosted:
        raise NotFoundError(f"authority {chosen} is not hosted by this gateway")
    return Viewer((chosen,), chosen)


ViewerDep = Annotated[Viewer, Depends(viewer)]


def _actor(v: Viewer) -> str:
    if v.acts_as is not None:
        return v.acts_as
    if v.reads == (REGIONAL,):
        raise PolicyRefusal(
            "dispute.regional-read-only",
            "the regional group advises; a party's coordinator records comments and outcomes",
        )
    raise NotFoundError("an admin must name the authority it acts for (?authority=CODE)")


def _find(gw: GatewayDep, v: Viewer, dispute_id: str) -> service.DisputeView:
    for holder in v.reads or (*gw.hosted, REGIONAL):
        try:
            return service.get_dispute(gw.kit, holder, dispute_id)
        except NotFoundError:
            continue
    raise NotFoundError(f"dispute {dispute_id} not found")


def _within_limit(gw: GatewayDep, **texts: str | None) -> None:
    """413 naming ``limits.max_comment_chars`` for a text over it.

    Every text travels to the other party in a signed Dispute message: a 900 KB
    comment made it too large for the peer, quarantined on every re-send.
    """
    most = gw.settings.limits.max_comment_chars
    for field, text in texts.items():
        if text is not None and len(text) > most:
            raise InputLimitError(
                f"{field} is {len(text)} characters, more than limits.max_comment_chars "
                f"({most}); attach long documents in the case system and refer to them",
                "max_comment_chars",
                most,
            )


@router.post("/v1/disputes", response_model=DisputeOut, status_code=201, responses=KEY_CONFLICT)
def raise_dispute(
    body: DisputeIn, gw: GatewayDep, v: ViewerDep, idempotency_key: IdempotencyKey = None
) -> DisputeOut | JSONResponse:
    """Raise a dispute against another authority's practitioner or decision.

    With an ``Idempotency-Key`` header, a repeat of the same request gets the first
    answer again (``Idempotent-Replayed: true``) and raises nothing.
    """
    _within_limit(
        gw, subject=body.subject, asked=body.asked, interim_arrangement=body.interim_arrangement
    )
    authority = _actor(v)

    def act() -> DisputeOut:
        return DisputeOut.of(service.raise_dispute(gw.kit, authority, body.to_new(authority)))

    return idempotent.once(gw, authority, idempotency_key, ("POST /v1/disputes", body), 201, act)


@router.get("/v1/disputes", response_model=list[DisputeOut])
def list_disputes(
    gw: GatewayDep,
    v: ViewerDep,
    stage: DisputeStage | None = None,
    overdue: bool | None = None,
    resolved: bool | None = None,
    involving: Annotated[
        str | None, Query(pattern=r"^[0-9]{3}$", description="disputes with this authority")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[DisputeOut]:
    """Disputes the caller may see, newest first."""
    views = service.list_disputes(
        gw.kit,
        v.reads,
        stage=stage,
        overdue=overdue,
        involving=involving,
        resolved=resolved,
        limit=limit,
    )
    return [DisputeOut.of(d) for d in views]


@router.get("/v1/disputes/{dispute_id}", response_model=DisputeOut)
def show_dispute(dispute_id: str, gw: GatewayDep, v: ViewerDep) -> DisputeOut:
    return DisputeOut.of(_find(gw, v, dispute_id))


@router.post("/v1/disputes/{dispute_id}/comment", response_model=DisputeOut, responses=KEY_CONFLICT)
def comment(
    dispute_id: str,
    body: CommentIn,
    gw: GatewayDep,
    v: ViewerDep,
    idempotency_key: IdempotencyKey = None,
) -> DisputeOut | JSONResponse:
    """Add a comment to an open dispute; the other party receives it.

    With an ``Idempotency-Key`` header, a repeat of the same request gets the first
    answer again (``Idempotent-Replayed: true``): the comment is added, and sent, once.
    """
    _find(gw, v, dispute_id)  # 404 before anything else for a non-party
    _within_limit(gw, text=body.text)
    authority = _actor(v)

    def act() -> DisputeOut:
        return DisputeOut.of(service.comment(gw.kit, authority, dispute_id, body.by, body.text))

    # The dispute is part of the request: the same key on another dispute is a 409.
    route = f"POST /v1/disputes/{dispute_id}/comment"
    return idempotent.once(gw, authority, idempotency_key, (route, body), 200, act)


@router.post("/v1/disputes/{dispute_id}/escalate", response_model=DisputeOut)
def escalate(dispute_id: str, body: EscalateIn, gw: GatewayDep, v: ViewerDep) -> DisputeOut:
    """Escalate now, before the stage deadline, with a reason.

    One step from the stage the caller saw (``from_stage``, or the stage when the
    request arrives): a second click while the first is being handled is refused
    (422, ``dispute.moved``) rather than climbing a second stage.
    """
    seen = _find(gw, v, dispute_id)
    _within_limit(gw, reason=body.reason)
    from_stage = body.from_stage or seen.stage
    return DisputeOut.of(
        service.escalate(gw.kit, _actor(v), dispute_id, body.by, body.reason, from_stage)
    )


@router.post("/v1/disputes/{dispute_id}/resolve", response_model=DisputeOut)
def resolve(dispute_id: str, body: ResolveIn, gw: GatewayDep, v: ViewerDep) -> DisputeOut:
    """Record the outcome and any interim arrangement; stops the clock, tells both parties."""
    _find(gw, v, dispute_id)
    _within_limit(gw, outcome=body.outcome, interim_arrangement=body.interim_arrangement)
    return DisputeOut.of(
        service.resolve(
            gw.kit, _actor(v), dispute_id, body.by, body.outcome, body.interim_arrangement
        )
    )


def _escalation_owner(v: Viewer) -> str:
    if v.reads is None or len(v.reads) != 1:
        raise NotFoundError("an admin must name the authority (?authority=CODE or regional)")
    return v.reads[0]


@router.get("/v1/escalations", response_model=list[EscalationOut], tags=["escalations"])
def pull_escalations(
    gw: GatewayDep, v: ViewerDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[EscalationOut]:
    """Escalations for the caller's people not yet acknowledged (the pull connector).

    Each names its addressee (CAF coordinator, regional group or a party's line
    manager) and carries the signed Dispute; acknowledge it with
    ``POST /v1/escalations/{id}/ack`` once that person has it.
    """
    return [EscalationOut.of(e) for e in escalations.pull(gw.ledger, _escalation_owner(v), limit)]


@router.post(
    "/v1/escalations/{escalation_id}/ack", response_model=EscalationOut, tags=["escalations"]
)
def acknowledge_escalation(
    escalation_id: str, body: AckEscalationIn, gw: GatewayDep, v: ViewerDep
) -> EscalationOut:
    found = escalations.acknowledge(
        gw.ledger, _escalation_owner(v), escalation_id[:64], body.by, gw.clock()
    )
    if found is None:
        raise NotFoundError(f"escalation {escalation_id} not found")
    return EscalationOut.of(found)
