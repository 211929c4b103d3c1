"""/v1/cases/{correlation_id}: the case thread (governing authority, lead
professionals, parties, notices) and the lead professional's evaluation."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import AuthorityDep, CallerDep, GatewayDep
from gateway.model import Evaluation, PractitionerView
from gateway.services import access_log, coordination, views

router = APIRouter(prefix="/v1/cases", tags=["cases"])


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class LeadOut(_Out):
    name: str
    la_code: str | None
    since: str | None
    child_views_recorded: bool


class LogOut(_Out):
    at: datetime
    kind: str
    counterparty: str | None
    message_id: str | None
    detail: str | None


class CaseMessageOut(_Out):
    message_id: str
    direction: str
    sender: str
    recipient: str
    message_type: str
    legal_basis: str
    purpose: str | None
    status: str
    reason: str | None


class CaseOut(_Out):
    correlation_id: str
    case_ref: str | None
    initiating_la: str | None
    residence_la: str | None
    governing_la: str | None
    governing_since: str | None
    route_case_messages_to: str | None
    funding_requests_to: str | None
    inform_family: bool | None
    parties: list[str]
    lead_professionals: list[LeadOut]
    log: list[LogOut]
    messages: list[CaseMessageOut]


@router.get("/{correlation_id}", response_model=CaseOut)
def case(correlation_id: str, gw: GatewayDep, authority: AuthorityDep, who: CallerDep) -> CaseOut:
    """This authority's view of a case thread (the read is audited, naming the key's holder)."""
    v = views.case_of(gw, authority, correlation_id)
    t = v.thread
    # Not the correlation id: it may be a case ref, which erasure removes elsewhere.
    read = access_log.Read("case", child_key=t.child_key)
    access_log.record(gw, authority, who.actor, [read])
    return CaseOut(
        correlation_id=t.correlation_id,
        case_ref=t.case_ref,
        initiating_la=t.initiating_la,
        residence_la=t.residence_la,
        governing_la=t.governing_la,
        governing_since=t.governing_since,
        route_case_messages_to=t.governing_la,
        funding_requests_to=t.residence_la,
        inform_family=t.inform_family,
        parties=list(t.parties),
        lead_professionals=[
            LeadOut(
                name=x.name,
                la_code=x.la_code,
                since=x.since,
                child_views_recorded=bool(x.child_views),
            )
            for x in t.leads
        ],
        log=[
            LogOut(
                at=e.at,
                kind=e.kind,
                counterparty=e.counterparty,
                message_id=e.message_id,
                detail=e.detail,
            )
            for e in t.log
        ],
        messages=[
            CaseMessageOut(
                message_id=r.message_id,
                direction=r.direction.value,
                sender=r.sender,
                recipient=r.recipient,
                message_type=r.message_type,
                legal_basis=r.legal_basis,
                purpose=r.purpose,
                status=r.status.value,
                reason=r.reason,
            )
            for r in v.messages
        ],
    )


class PractitionerViewIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    la_code: str | None = Field(default=None, pattern=r"^[0-9]{3}$")
    views: str = Field(min_length=1, max_length=5000)


class EvaluationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    child_views: str | None = Field(default=None, max_length=5000)
    family_views: str | None = Field(default=None, max_length=5000)
    practitioner_views: list[PractitionerViewIn] = []
    cross_border_impact: str | None = Field(default=None, max_length=5000)


class SentOut(_Out):
    message_id: str
    recipient: str
    status: str
    reason: str | None


@router.post("/{correlation_id}/evaluation", status_code=202, response_model=list[SentOut])
def evaluate(
    correlation_id: str, body: EvaluationIn, gw: GatewayDep, authority: AuthorityDep
) -> list[SentOut]:
    """The lead professional's evaluation, to the local coordinator and every authority involved."""
    v = views.case_of(gw, authority, correlation_id)
    evaluation = Evaluation(
        case_ref=v.thread.case_ref or correlation_id,
        child_views=body.child_views,
        family_views=body.family_views,
        practitioner_views=tuple(
            PractitionerView(p.name, p.la_code, p.views) for p in body.practitioner_views
        ),
        cross_border_impact=body.cross_border_impact,
    )
    sent = coordination.send_evaluation(gw, authority, v.thread.correlation_id, evaluation)
    return [
        SentOut(
            message_id=s.message_id, recipient=s.recipient, status=s.status.value, reason=s.reason
        )
        for s in sent
    ]
