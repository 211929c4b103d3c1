"""Accepting messages from a local system: convert, apply policy, sign, record.

A message is in the ledger (the outbox) before the caller gets an answer,
so a crash after acceptance loses nothing; the sender loop publishes it.
Every record ends in the ledger: queued to send, held locally, or rejected
with its reasons; none is dropped silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from adapters.base import Converted, Rejected, Result
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope, envelope_to_bytes
from gateway.errors import PolicyRefusal
from gateway.ledger import audit
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.model import Assessment, ConsentChange, Envelope, LegalBasis, MessageType
from gateway.policy import sharing
from gateway.policy.child import child_key
from gateway.services.signing import correlation_id, digest, new_envelope, signed_message

BATCH = 200


@dataclass(frozen=True)
class RecordOutcome:
    """What happened to one record of a submission."""

    record: str
    case_ref: str | None
    status: Status
    message_ids: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()


@dataclass
class SubmitReport:
    source: str
    outcomes: list[RecordOutcome] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def queued(self) -> int:
        return self.count(Status.SIGNED)

    @property
    def held(self) -> int:
        return self.count(Status.HELD_LOCAL)

    @property
    def rejected(self) -> int:
        return self.count(Status.REJECTED)


Progress = Callable[[RecordOutcome], None]


def _rejected_record(authority: str, result: Rejected) -> tuple[NewMessage, RecordOutcome]:
    reasons = tuple(str(p) for p in result.problems)
    message_id = str(uuid.uuid4())
    message = NewMessage(
        message_id=message_id,
        direction=Direction.OUTBOUND,
        authority=authority,
        sender=authority,
        recipient=authority,
        message_type=MessageType.ASSESSMENT.value,
        correlation_id=correlation_id(authority, f"{result.source}:{result.record}"),
        legal_basis=LegalBasis.NO_PERSONAL_DATA.value,
        statuses=((Status.REJECTED, "\n".join(reasons)),),
        case_ref=None,
    )
    return message, RecordOutcome(result.record, None, Status.REJECTED, (message_id,), (), reasons)


def _converted_records(
    gw: Gateway, authority: str, result: Converted
) -> tuple[list[NewMessage], list[audit.AuditEvent], RecordOutcome]:
    assessment = result.assessment
    case = assessment.case_ref
    initiating = (assessment.initiator.la_code if assessment.initiator else None) or authority
    thread = correlation_id(initiating, case)
    key = child_key(assessment.child)
    consent = assessment.consent or (result.consent.consent if result.consent else None)
    decision = sharing.decide(authority, case, consent, result.share_with, result.purpose)
    if decision.held is not None:
        local = new_envelope(
            gw.clock,
            sender=authority,
            recipient=authority,
            body=assessment,
            correlation=thread,
            legal_basis=LegalBasis.CONSENT,
        )
        reason = f"{decision.held.rule}: {decision.held.reason}"
        data = envelope_to_bytes(local)
        held = NewMessage(
            message_id=local.header.message_id,
            direction=Direction.OUTBOUND,
            authority=authority,
            sender=authority,
            recipient=authority,
            message_type=MessageType.ASSESSMENT.value,
            correlation_id=thread,
            legal_basis=LegalBasis.CONSENT.value,
            statuses=((Status.ACCEPTED, None), (Status.HELD_LOCAL, reason)),
            case_ref=case,
            digest=digest(data),
            body=data,
            child_key=key,
        )
        outcome = RecordOutcome(
            result.record, case, Status.HELD_LOCAL, (local.header.message_id,), (), (reason,)
        )
        return [held], [], outcome
    messages: list[NewMessage] = []
    events: list[audit.AuditEvent] = []
    for plan in decision.sends:
        bodies: list[Assessment | ConsentChange] = (
            [result.consent, assessment] if result.consent is not None else [assessment]
        )
        for body in bodies:
            env = new_envelope(
                gw.clock,
                sender=authority,
                recipient=plan.recipient,
                body=body,
                correlation=thread,
                legal_basis=plan.legal_basis,
                purpose=plan.purpose,
                consent_ref=plan.consent_ref,
            )
            message = signed_message(gw, env, case_ref=case, child_key=key)
            messages.append(message)
            events.append(_disclosure(message))
    reasons = tuple(f"{r.rule}: {r.reason}" for r in decision.refused)
    for refusal in decision.refused:
        messages.append(_refused(authority, thread, case, key, refusal))
    status = Status.SIGNED if decision.sends else Status.REJECTED
    outcome = RecordOutcome(
        result.record,
        case,
        status,
        tuple(m.message_id for m in messages),
        tuple(p.recipient for p in decision.sends),
        reasons,
    )
    return messages, events, outcome


def _refused(
    authority: str, thread: str, case: str, key: str, refusal: sharing.Refusal
) -> NewMessage:
    return NewMessage(
        message_id=str(uuid.uuid4()),
        direction=Direction.OUTBOUND,
        authority=authority,
        sender=authority,
        recipient=refusal.recipient or authority,
        message_type=MessageType.ASSESSMENT.value,
        correlation_id=thread,
        legal_basis=LegalBasis.CONSENT.value,
        statuses=((Status.ACCEPTED, None), (Status.REJECTED, f"{refusal.rule}: {refusal.reason}")),
        case_ref=case,
        child_key=key,
    )


def _disclosure(message: NewMessage, actor: str = "gateway") -> audit.AuditEvent:
    return audit.AuditEvent(
        actor=actor,
        action="DISCLOSURE",
        authority=message.sender,
        counterparty=message.recipient,
        legal_basis=message.legal_basis,
        message_id=message.message_id,
        digest=message.digest,
        detail=f"{message.message_type} {message.case_ref or ''}".strip(),
    )


def _chunks(results: Iterator[Result], size: int) -> Iterator[list[Result]]:
    chunk: list[Result] = []
    for result in results:
        chunk.append(result)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def submit_local(
    gw: Gateway,
    authority: str,
    adapter_name: str,
    stream: BinaryIO,
    source: str,
    progress: Progress | None = None,
) -> SubmitReport:
    """Convert a local export and accept every record (queued, held or rejected)."""
    adapter = gw.adapters.get(adapter_name)
    gw.signer(authority)  # fail early if this gateway does not host the authority
    report = SubmitReport(source)
    for chunk in _chunks(adapter.read(stream, source), BATCH):
        messages: list[NewMessage] = []
        events: list[audit.AuditEvent] = []
        outcomes: list[RecordOutcome] = []
        for result in chunk:
            if isinstance(result, Rejected):
                message, outcome = _rejected_record(authority, result)
                messages.append(message)
            else:
                made, disclosed, outcome = _converted_records(gw, authority, result)
                messages.extend(made)
                events.extend(disclosed)
            outcomes.append(outcome)
        with gw.ledger.transaction() as conn:
            gw.ledger.record(messages, conn)
            audit.append(gw.ledger, events, conn)
        report.outcomes.extend(outcomes)
        if progress is not None:
            for outcome in outcomes:
                progress(outcome)
    return report


def submit_envelope(gw: Gateway, authority: str, data: bytes) -> RecordOutcome:
    """Accept a canonical XML envelope written by ``authority``'s own system."""
    limits = gw.settings.limits
    root = xmlsafe.parse(data, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth)
    gw.schema.validate(root)
    env = element_to_envelope(root)
    try:
        _check_submission(gw, authority, env)
    except PolicyRefusal as refusal:
        _record_refusal(gw, authority, env, refusal)
        raise
    case_ref = getattr(env.body, "case_ref", None)
    child = getattr(env.body, "child", None)
    message = signed_message(
        gw, env, case_ref=case_ref, child_key=child_key(child) if child else None
    )
    events = [_disclosure(message)] if env.header.legal_basis != LegalBasis.NO_PERSONAL_DATA else []
    if env.header.legal_basis == LegalBasis.SAFEGUARDING and env.header.safeguarding is not None:
        sg = env.header.safeguarding
        events.append(
            audit.AuditEvent(
                actor=sg.approver,
                action="SAFEGUARDING_OVERRIDE",
                authority=authority,
                counterparty=env.header.recipient,
                legal_basis=LegalBasis.SAFEGUARDING.value,
                message_id=env.header.message_id,
                digest=message.digest,
                detail=sg.reason,
            )
        )
    with gw.ledger.transaction() as conn:
        gw.ledger.record([message], conn)
        audit.append(gw.ledger, events, conn)
    return RecordOutcome(
        env.header.message_id,
        case_ref,
        Status.SIGNED,
        (env.header.message_id,),
        (env.header.recipient,),
    )


def _record_refusal(gw: Gateway, authority: str, env: Envelope, refusal: PolicyRefusal) -> None:
    header = env.header
    gw.ledger.record(
        [
            NewMessage(
                message_id=header.message_id,
                direction=Direction.OUTBOUND,
                authority=authority,
                sender=authority,
                recipient=header.recipient,
                message_type=header.message_type.value,
                correlation_id=header.correlation_id,
                legal_basis=header.legal_basis.value,
                statuses=((Status.REJECTED, str(refusal)),),
                case_ref=getattr(env.body, "case_ref", None),
            )
        ]
    )


def _check_submission(gw: Gateway, authority: str, env: Envelope) -> None:
    header = env.header
    if header.sender != authority:
        raise PolicyRefusal(
            "submit.sender", f"header sender {header.sender} is not the caller {authority}"
        )
    if header.recipient not in gw.settings.directory:
        raise PolicyRefusal(
            "submit.recipient", f"recipient {header.recipient} is not in authorities.yaml"
        )
    if header.legal_basis == LegalBasis.CONSENT and not header.consent_ref:
        raise PolicyRefusal("consent.reference", "basis CONSENT needs a consent reference")
    if header.legal_basis == LegalBasis.SAFEGUARDING and header.safeguarding is None:
        raise PolicyRefusal(
            "safeguarding.approval", "basis SAFEGUARDING needs a named approver and a reason"
        )
    if gw.ledger.find(message_id=header.message_id, authority=authority, with_history=False):
        raise PolicyRefusal(
            "submit.duplicate-id", f"message id {header.message_id} was already used"
        )
