"""One canonical envelope from a local system: submission checks, policy, sign, record."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Connection

from gateway.cases import store as cases
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.errors import PolicyRefusal
from gateway.ledger import audit
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.model import (
    Assessment,
    Audience,
    ConsentChange,
    Envelope,
    IssueLogEntry,
    LegalBasis,
    Notification,
    NotificationType,
    Purpose,
)
from gateway.policy import consent_register, disclosures, sharing
from gateway.policy.child import child_key
from gateway.policy.config import policy_of
from gateway.policy.governing import (
    plan_digest,
)
from gateway.policy.issues_log import RULE_REPORTER as RULE_ISSUE_REPORTER
from gateway.policy.issues_log import store as store_issue
from gateway.policy.notifications import RULE_FAMILY
from gateway.policy.plan import plan_change_refusal
from gateway.services import held
from gateway.services.outcomes import RecordOutcome, disclosure
from gateway.services.signing import new_envelope, signed_message

RULE_NPD_CHILD = "basis.no-personal-data-carries-child"
RULE_FUNDING_ROUTE = "funding.residence"
RULE_FUNDING_PROBLEM_ROUTE = "funding.problem-to-initiator"

# --- one canonical envelope ----------------------------------------------------


def submit_envelope(gw: Gateway, authority: str, data: bytes) -> RecordOutcome:
    """Accept a canonical XML envelope written by ``authority``'s own system."""
    limits = gw.settings.limits
    root = xmlsafe.parse(data, max_bytes=limits.max_message_bytes, max_depth=limits.max_xml_depth)
    gw.schema.validate(root)
    env = element_to_envelope(root)
    return accept_envelope(gw, authority, env)


def accept_envelope(gw: Gateway, authority: str, env: Envelope) -> RecordOutcome:
    """Apply policy to an addressed envelope from ``authority``; sign and queue it."""
    try:
        _check_submission(gw, authority, env)
        with gw.ledger.transaction() as conn:
            extra = _check_policy(gw, conn, authority, env)
            case_ref = getattr(env.body, "case_ref", None)
            child = getattr(env.body, "child", None)
            personal = env.header.legal_basis != LegalBasis.NO_PERSONAL_DATA
            message = signed_message(
                gw,
                env,
                case_ref=case_ref,
                child_key=child_key(child) if child is not None and personal else None,
            )
            events = [disclosure(message)] if personal else []
            if env.header.legal_basis == LegalBasis.SAFEGUARDING and env.header.safeguarding:
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
            for m in extra:
                if m.legal_basis != LegalBasis.NO_PERSONAL_DATA.value:
                    events.append(disclosure(m))
            gw.ledger.record([message, *extra], conn)
            audit.append(gw.ledger, events, conn)
            if isinstance(env.body, Assessment) and personal:
                thread = cases.get(conn, authority, env.header.correlation_id)
                if thread is not None:
                    cases.save(
                        conn,
                        replace(
                            thread,
                            plan_digest=plan_digest(env.body),
                            plan_consent_ref=env.header.consent_ref,
                        ),
                        gw.clock(),
                    )
            cases.log(
                conn,
                authority,
                env.header.correlation_id,
                gw.clock(),
                f"SENT:{env.header.message_type.value}",
                counterparty=env.header.recipient,
                message_id=env.header.message_id,
                detail=env.header.legal_basis.value,
            )
    except PolicyRefusal as refusal:
        _record_refusal(gw, authority, env, refusal)
        raise
    return RecordOutcome(
        env.header.message_id,
        getattr(env.body, "case_ref", None),
        Status.SIGNED,
        (env.header.message_id, *(m.message_id for m in extra)),
        (env.header.recipient, *(m.recipient for m in extra)),
    )


def _record_refusal(gw: Gateway, authority: str, env: Envelope, refusal: PolicyRefusal) -> None:
    header = env.header
    if gw.ledger.find(message_id=header.message_id, authority=authority, with_history=False):
        return  # the id is taken: the refusal is the caller's answer, the ledger keeps the original
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
                purpose=header.purpose.value if header.purpose else None,
                statuses=((Status.ACCEPTED, None), (Status.REJECTED, str(refusal))),
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
    if header.legal_basis == LegalBasis.NO_PERSONAL_DATA and getattr(env.body, "child", None):
        raise PolicyRefusal(
            RULE_NPD_CHILD,
            f"message {header.message_id}: basis NO_PERSONAL_DATA but the body carries a Child",
        )
    if gw.ledger.find(message_id=header.message_id, authority=authority, with_history=False):
        raise PolicyRefusal(
            "submit.duplicate-id", f"message id {header.message_id} was already used"
        )


def _issue_log_copies(
    gw: Gateway, conn: Connection, authority: str, env: Envelope
) -> list[NewMessage]:
    """A submitted issues-log entry (a service gap or a cross-border risk) is kept in
    the authority's own copy of the regional log and sent to every other authority,
    as the regional log is maintained by all the region's coordinators."""
    body = env.body
    assert isinstance(body, IssueLogEntry)
    if body.reported_by_la != authority:
        raise PolicyRefusal(
            RULE_ISSUE_REPORTER,
            f"entry {body.entry_id} says it was reported by {body.reported_by_la}, "
            f"but {authority} is submitting it",
        )
    store_issue(conn, authority, body, gw.clock(), None, env.header.message_id)
    copies = []
    for code in sorted(gw.settings.directory.authorities):
        if code in (authority, env.header.recipient):
            continue
        copy = new_envelope(
            gw.clock,
            sender=authority,
            recipient=code,
            body=body,
            correlation=env.header.correlation_id,
            legal_basis=LegalBasis.NO_PERSONAL_DATA,
            purpose=Purpose.COORDINATION,
        )
        copies.append(signed_message(gw, copy))
    return copies


def _check_policy(gw: Gateway, conn: Connection, authority: str, env: Envelope) -> list[NewMessage]:
    """The consent, plan, family and routing rules for an addressed envelope.

    Returns the withdrawal notices a submitted withdrawal causes.
    """
    policy = policy_of(gw.settings)
    header, body = env.header, env.body
    thread = cases.get(conn, authority, header.correlation_id)
    extra: list[NewMessage] = []
    child = getattr(body, "child", None)
    key = child_key(child) if child is not None else (thread.child_key if thread else None)
    if isinstance(body, IssueLogEntry):
        extra = _issue_log_copies(gw, conn, authority, env)
    if isinstance(body, ConsentChange) and key is not None:
        registered = consent_register.record(
            conn,
            authority=authority,
            child_key=key,
            case_ref=body.case_ref,
            consent=body.consent,
            action=body.action,
            source=consent_register.LOCAL,
            now=gw.clock(),
        )
        if registered.added and registered.newly_withdrawn:
            extra = _withdrawal_notices(gw, conn, authority, env, key, registered.after)
        elif registered.added:
            held.release_held(gw, conn, authority, key, registered.after)
    if (
        isinstance(body, Notification)
        and body.audience == Audience.FAMILY
        and thread is not None
        and thread.inform_family is False
    ):
        raise PolicyRefusal(
            RULE_FAMILY,
            "the significant-harm decision says the family must not be told; "
            "no family-facing notice may be generated for this case",
        )
    if isinstance(body, Notification) and thread is not None:
        _check_funding_route(body, header.recipient, thread)
    if isinstance(body, Assessment) and thread is not None:
        refusal = plan_change_refusal(
            f"case {body.case_ref}",
            thread.plan_digest,
            thread.plan_consent_ref,
            plan_digest(body),
            header.consent_ref,
        )
        if refusal is not None:
            raise refusal
    if header.legal_basis == LegalBasis.CONSENT and key is not None:
        consent = consent_register.effective(consent_register.entries(conn, authority, key))
        if consent.entry is None and isinstance(body, Assessment) and body.consent is not None:
            consent = consent_register.record(
                conn,
                authority=authority,
                child_key=key,
                case_ref=body.case_ref,
                consent=body.consent,
                action=consent_register.action_of(body.consent),
                source=consent_register.LOCAL,
                now=gw.clock(),
            ).after
        uncovered = sharing.covers(
            consent,
            policy,
            authority,
            header.recipient,
            header.purpose or Purpose.SHARE_CROSS_BORDER,
        )
        if uncovered is not None:
            raise PolicyRefusal(uncovered.rule, uncovered.reason)
    return extra


def _withdrawal_notices(
    gw: Gateway,
    conn: Connection,
    authority: str,
    env: Envelope,
    key: str,
    consent: consent_register.Effective,
) -> list[NewMessage]:
    policy = policy_of(gw.settings)
    body = env.body
    assert isinstance(body, ConsentChange)
    recipients = [
        r for r in disclosures.past_recipients(conn, authority, key) if r != env.header.recipient
    ]
    disclosures.stop_queued(
        gw.ledger,
        conn,
        authority,
        key,
        lambda r: sharing.covers(consent, policy, authority, r, Purpose.SHARE_CROSS_BORDER) is None,
    )
    made = []
    for recipient in recipients:
        notice = new_envelope(
            gw.clock,
            sender=authority,
            recipient=recipient,
            body=body,
            correlation=env.header.correlation_id,
            legal_basis=LegalBasis.CONSENT_WITHDRAWAL,
        )
        made.append(signed_message(gw, notice, case_ref=body.case_ref, child_key=key))
    return made


def _check_funding_route(body: Notification, recipient: str, thread: cases.CaseThread) -> None:
    """Funding requests go to the residence authority; BHLP problems to the initiator."""
    if (
        body.type == NotificationType.FUNDING_REQUEST
        and thread.residence_la
        and (recipient != thread.residence_la)
    ):
        raise PolicyRefusal(
            RULE_FUNDING_ROUTE,
            f"funding requests go to where the child lives ({thread.residence_la}), "
            f"not {recipient}",
        )
    if (
        body.type == NotificationType.FUNDING_PROBLEM
        and thread.initiating_la
        and (recipient != thread.initiating_la)
    ):
        raise PolicyRefusal(
            RULE_FUNDING_PROBLEM_ROUTE,
            f"budget-holding problems are reported to the initiating authority "
            f"({thread.initiating_la}), not {recipient}",
        )
