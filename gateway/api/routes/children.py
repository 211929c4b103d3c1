"""/v1/children/{ref}/consent and /v1/existence-queries: consent and existence checks."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.api import idempotent
from gateway.api.deps import AuthorityDep, CallerDep, GatewayDep, OwnAuthorityDep
from gateway.api.idempotent import KEY_CONFLICT, IdempotencyKey
from gateway.api.problems import conflict
from gateway.context import Gateway
from gateway.crossborder.existence_held import Decided
from gateway.errors import PolicyRefusal
from gateway.ledger.status import Direction
from gateway.model import Child, Identifier, Safeguarding
from gateway.services import access_log, coordination, views

router = APIRouter(tags=["consent"])


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ConsentEntryOut(_Out):
    entry_id: int
    source: str
    action: str
    given: bool
    given_by: str | None
    role: str | None
    gillick_competent: bool
    recorded_at: str | None
    scopes: list[str]
    named_las: list[str]
    withdrawn: list[str]
    entered_at: datetime


class ConsentOut(_Out):
    child_key: str
    given: bool
    decided_by_child: bool
    active_scopes: list[str]
    withdrawn_scopes: list[str]
    named_las: list[str]
    consent_ref: str | None
    history: list[ConsentEntryOut]


@router.get("/v1/children/{ref}/consent", response_model=ConsentOut)
def consent(ref: str, gw: GatewayDep, authority: OwnAuthorityDep, who: CallerDep) -> ConsentOut:
    """The consent in force for a child (by child key, UPN, NHS number or case ref), with history.

    A Gillick-competent child's own decision prevails over a parent's. The
    read is audited, naming the API key's holder.
    """
    v = views.consent_of(gw, authority, ref[:200])
    access_log.record(gw, authority, who.actor, [access_log.Read("consent", v.child_key)])
    return ConsentOut(
        child_key=v.child_key,
        given=v.given,
        decided_by_child=v.decided_by_child,
        active_scopes=list(v.active_scopes),
        withdrawn_scopes=list(v.withdrawn_scopes),
        named_las=list(v.named_las),
        consent_ref=v.consent_ref,
        history=[
            ConsentEntryOut(
                entry_id=e.entry_id,
                source=e.source,
                action=e.action.value,
                given=e.consent.given,
                given_by=e.consent.given_by,
                role=e.consent.role.value if e.consent.role else None,
                gillick_competent=e.consent.gillick_competent,
                recorded_at=e.consent.recorded_at.isoformat() if e.consent.recorded_at else None,
                scopes=[s.value for s in e.consent.scopes],
                named_las=list(e.consent.named_las),
                withdrawn=[w.scope.value for w in e.consent.withdrawn],
                entered_at=e.entered_at,
            )
            for e in v.history
        ],
    )


class ExistenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: str = Field(pattern=r"^[0-9]{3}$")
    given_name: str = Field(min_length=1, max_length=200)
    family_name: str = Field(min_length=1, max_length=200)
    date_of_birth: date | None = None
    upn: str | None = Field(default=None, max_length=13)
    nhs_number: str | None = Field(default=None, max_length=12)
    safeguarding_approver: str | None = Field(default=None, max_length=200)
    safeguarding_reason: str | None = Field(default=None, max_length=2000)


class ExistenceOut(_Out):
    message_id: str
    recipient: str
    status: str
    answer: str | None = None
    answered_at: datetime | None = None
    erased_at: datetime | None = Field(
        default=None,
        description="set once the query was erased here: by an erasure of the child it "
        "asks about, which erases the answer with it, or at its retention period, after "
        "which an answer that came is kept for its own",
    )


@router.post(
    "/v1/existence-queries",
    status_code=202,
    response_model=ExistenceOut,
    responses=KEY_CONFLICT,
)
def ask(
    body: ExistenceIn,
    gw: GatewayDep,
    authority: AuthorityDep,
    idempotency_key: IdempotencyKey = None,
) -> ExistenceOut | JSONResponse:
    """Ask another authority whether a CAF exists for a child: keyed hashes only.

    Needs the child's consent for the check, or the safeguarding basis
    (approver and reason). The answer is ``match=false``, or ``match=true``
    with the holding coordinator's contact. With an ``Idempotency-Key`` header,
    a repeat of the same request gets the first answer again and asks nothing.
    """
    return idempotent.once(
        gw,
        authority,
        idempotency_key,
        ("POST /v1/existence-queries", body),
        202,
        lambda: _ask(body, gw, authority),
    )


def _ask(body: ExistenceIn, gw: Gateway, authority: str) -> ExistenceOut:
    identifiers = []
    if body.upn:
        identifiers.append(Identifier("UPN", body.upn))
    if body.nhs_number:
        identifiers.append(Identifier("NHS", body.nhs_number))
    child = Child(
        body.given_name, body.family_name, body.date_of_birth, identifiers=tuple(identifiers)
    )
    safeguarding = None
    if body.safeguarding_approver or body.safeguarding_reason:
        if not (body.safeguarding_approver and body.safeguarding_reason):
            raise PolicyRefusal(
                "safeguarding.approval",
                "the safeguarding basis needs a named approver and a reason",
            )
        safeguarding = Safeguarding(body.safeguarding_approver, body.safeguarding_reason)
    sent = coordination.ask_existence(gw, authority, body.recipient, child, safeguarding)
    return ExistenceOut(
        message_id=sent.message_id, recipient=sent.recipient, status=sent.status.value
    )


@router.get("/v1/existence-queries/{message_id}", response_model=ExistenceOut)
def answer(message_id: str, gw: GatewayDep, authority: AuthorityDep) -> ExistenceOut:
    """The query and, once it has arrived, its answer."""
    records = gw.ledger.find(
        message_id=message_id[:64],
        authority=authority,
        direction=Direction.OUTBOUND,  # the query it sent; never a peer's under its id
        with_history=False,
    )
    found = views.existence_answer(gw, authority, message_id)
    return ExistenceOut(
        message_id=message_id,
        recipient=records[0].recipient,
        status=records[0].status.value,
        answer=found.answer,
        answered_at=found.answered_at,
        erased_at=found.erased_at,
    )


class HeldQueryOut(_Out):
    message_id: str
    requester: str
    approver: str | None
    approver_role: str | None
    reason: str | None
    received_at: datetime


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=200, description="the coordinator deciding")


class DecisionOut(_Out):
    message_id: str
    decision: str = Field(
        description="the decision in force: APPROVED or REFUSED; or, closed unanswered "
        "before anyone decided, EXPIRED (past retention.existence_held_days) or ERASED "
        "(the child it asks about, or the query as received, was erased here)"
    )
    # True when the query had been decided before (a second click, a colleague a moment
    # earlier): ``decision`` is that decision, by whom and when; nothing was done now.
    already_decided: bool = False
    decided_by: str | None = None
    decided_at: datetime | None = None

    @classmethod
    def of(cls, done: Decided) -> DecisionOut:
        q = done.query
        return cls(
            message_id=q.message_id,
            decision=q.decision or "",
            already_decided=done.already,
            decided_by=q.decided_by,
            decided_at=q.decided_at,
        )


@router.get("/v1/existence-queries-held", response_model=list[HeldQueryOut])
def held(gw: GatewayDep, authority: AuthorityDep) -> list[HeldQueryOut]:
    """Safeguarding-basis existence queries waiting for this authority's coordinator
    (``policy.existence_safeguarding_hold``): who asked, on whose approval, why."""
    return [
        HeldQueryOut(
            message_id=q.message_id,
            requester=q.requester,
            approver=q.approver,
            approver_role=q.approver_role,
            reason=q.reason,
            received_at=q.received_at,
        )
        for q in coordination.held_existence_queries(gw, authority)
    ]


# The query was decided the other way before (by whom and when, in the message).
DECIDED_OTHERWISE = conflict(
    "The query was already decided the other way: the error names who decided it and when"
)


@router.post(
    "/v1/existence-queries-held/{message_id}/approve",
    response_model=DecisionOut,
    responses=DECIDED_OTHERWISE,
)
def approve_held(
    message_id: str, body: DecisionIn, gw: GatewayDep, authority: AuthorityDep, who: CallerDep
) -> DecisionOut:
    """Answer a held query (match, or no match) as the coordinator approved it.

    Approved before (a second click, a colleague a moment earlier): that approval,
    by whom and when, with ``already_decided: true``; nothing is sent again.
    Refused before: 409, naming who refused it and when.
    """
    done = coordination.decide_existence_query(
        gw, authority, message_id[:64], True, body.by, actor=who.named(body.by)
    )
    return DecisionOut.of(done)


@router.post(
    "/v1/existence-queries-held/{message_id}/refuse",
    response_model=DecisionOut,
    responses=DECIDED_OTHERWISE,
)
def refuse_held(
    message_id: str, body: DecisionIn, gw: GatewayDep, authority: AuthorityDep, who: CallerDep
) -> DecisionOut:
    """Leave a held query unanswered: nothing is sent; the refusal is audited.

    Refused before: that refusal, by whom and when, with ``already_decided: true``.
    Approved before: 409, naming who approved it and when (it stays answered).
    """
    done = coordination.decide_existence_query(
        gw, authority, message_id[:64], False, body.by, actor=who.named(body.by)
    )
    return DecisionOut.of(done)
