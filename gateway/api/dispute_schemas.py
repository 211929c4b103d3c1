"""Pydantic models of the dispute and escalation API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gateway.disputes.escalations import EscalationView
from gateway.disputes.service import DisputeView, NewDispute, PartyInput
from gateway.model import DisputeParty, DisputeStage, LineManager


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class LineManagerIn(_In):
    name: str = Field(min_length=1, max_length=500)
    email: str | None = Field(default=None, max_length=500)
    role: str | None = Field(default=None, max_length=500)


class PartyIn(_In):
    name: str = Field(min_length=1, max_length=500)
    role: str | None = Field(default=None, max_length=500)
    organisation: str | None = Field(default=None, max_length=500)
    line_manager: LineManagerIn | None = Field(
        default=None,
        description="the party's direct line manager; for authority staff it defaults to "
        "the authority's line manager in authorities.yaml (school or NHS staff: give theirs)",
    )

    def to_input(self, la_code: str) -> PartyInput:
        lm = self.line_manager
        return PartyInput(
            name=self.name.strip(),
            la_code=la_code,
            role=self.role,
            organisation=self.organisation,
            line_manager=LineManager(name=lm.name.strip(), email=lm.email, role=lm.role)
            if lm
            else None,
        )


class CounterpartIn(PartyIn):
    la_code: str = Field(pattern=r"^[0-9]{3}$", description="the other party's authority")


class DisputeIn(_In):
    case_ref: str = Field(min_length=1, max_length=200, pattern=r"^\S+$")
    subject: str = Field(min_length=1)
    asked: str = Field(min_length=1, description="what the raising party asks for")
    raised_by: PartyIn
    against: CounterpartIn
    consent_ref: str | None = Field(default=None, max_length=200, pattern=r"^\S+$")
    no_personal_data: bool = Field(
        default=False,
        description="true only if neither text identifies the child; otherwise give consent_ref",
    )
    interim_arrangement: str | None = None

    def to_new(self, authority: str) -> NewDispute:
        return NewDispute(
            case_ref=self.case_ref,
            subject=self.subject,
            asked=self.asked,
            raised_by=self.raised_by.to_input(authority),
            against=self.against.to_input(self.against.la_code),
            consent_ref=self.consent_ref,
            no_personal_data=self.no_personal_data,
            interim_arrangement=self.interim_arrangement,
        )


class CommentIn(_In):
    by: str = Field(min_length=1, max_length=500, description="who writes (name)")
    text: str = Field(min_length=1)


class EscalateIn(_In):
    by: str = Field(min_length=1, max_length=500)
    reason: str = Field(min_length=1, description="why it cannot wait for the deadline")
    from_stage: DisputeStage | None = Field(
        default=None,
        description=(
            "the stage the caller saw and escalates from: a dispute that has left it "
            "(a retry after a lost answer) is refused (422, dispute.moved), not escalated "
            "again; by default the stage it is at when the request arrives"
        ),
    )


class ResolveIn(_In):
    by: str = Field(min_length=1, max_length=500)
    outcome: str = Field(min_length=1)
    interim_arrangement: str | None = Field(
        default=None, description="the arrangement for the child until the outcome takes effect"
    )


class AckEscalationIn(_In):
    by: str = Field(min_length=1, max_length=500, description="who acknowledges (name)")


class LineManagerOut(_Out):
    name: str
    email: str | None
    role: str | None

    @classmethod
    def of(cls, lm: LineManager) -> LineManagerOut:
        return cls(name=lm.name, email=lm.email, role=lm.role)


class PartyOut(_Out):
    name: str
    la_code: str
    role: str | None
    organisation: str | None
    line_manager: LineManagerOut

    @classmethod
    def of(cls, p: DisputeParty) -> PartyOut:
        return cls(
            name=p.name,
            la_code=p.la_code,
            role=p.role,
            organisation=p.organisation,
            line_manager=LineManagerOut.of(p.line_manager),
        )


class DisputeEventOut(_Out):
    at: datetime
    action: str
    by: str
    stage: str
    text: str | None


class DisputeOut(_Out):
    dispute_id: str
    view_of: str
    case_ref: str
    subject: str
    asked: str
    raised_by: PartyOut
    against: PartyOut
    stage: str
    deadline: datetime | None
    resolved: bool
    outcome: str | None
    interim_arrangement: str | None
    overdue: bool
    overdue_escalations: int
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    history: list[DisputeEventOut]

    @classmethod
    def of(cls, v: DisputeView) -> DisputeOut:
        return cls(
            dispute_id=v.dispute_id,
            view_of=v.view_of,
            case_ref=v.case_ref,
            subject=v.subject,
            asked=v.asked,
            raised_by=PartyOut.of(v.raised_by),
            against=PartyOut.of(v.against),
            stage=v.stage.value,
            deadline=v.deadline,
            resolved=v.resolved,
            outcome=v.outcome,
            interim_arrangement=v.interim_arrangement,
            overdue=v.overdue,
            overdue_escalations=v.overdue_escalations,
            created_at=v.created_at,
            updated_at=v.updated_at,
            resolved_at=v.resolved_at,
            history=[
                DisputeEventOut(
                    at=e.at, action=e.action.value, by=e.by, stage=e.stage.value, text=e.text
                )
                for e in v.history
            ],
        )


class EscalationOut(_Out):
    escalation_id: str
    authority: str
    sender: str
    dispute_id: str
    stage: str
    kind: str
    addressee_role: str
    addressee_name: str
    addressee_email: str | None
    status: str
    attempts: int
    received_at: datetime
    ack_due_at: datetime
    acked_at: datetime | None
    acked_by: str | None
    content_type: str = "application/xml"
    content: str

    @classmethod
    def of(cls, e: EscalationView) -> EscalationOut:
        return cls(
            escalation_id=e.escalation_id,
            authority=e.authority,
            sender=e.sender,
            dispute_id=e.dispute_id,
            stage=e.stage.value,
            kind=e.kind,
            addressee_role=e.addressee.role,
            addressee_name=e.addressee.name,
            addressee_email=e.addressee.email,
            status=e.status.value,
            attempts=e.attempts,
            received_at=e.received_at,
            ack_due_at=e.ack_due_at,
            acked_at=e.acked_at,
            acked_by=e.acked_by,
            content=e.content.decode("utf-8"),
        )
