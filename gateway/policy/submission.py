"""The outbound decision for one canonical envelope from an authority's own
local system (``POST /v1/messages`` with XML, evaluations, existence queries,
consent changes). Pure, like ``policy.decision`` for local records.

The envelope names its case however its local system does (thread id, case
reference as the CorrelationId, or only the body's case reference):
``Sending.threads`` are every thread the authority keeps that the envelope
could mean (``cases.identity.threads_for_own_message``), and every case
protection applies from each of them: "do not tell the family", funding to
where the child lives, the child's plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from gateway.cases.store import CaseThread
from gateway.errors import PolicyRefusal
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
from gateway.policy import sharing
from gateway.policy.consent import (
    LOCAL,
    RULE_STALE,
    Effective,
    RegisterEntry,
    basis_for,
    effective,
    is_repeat,
    stale,
)
from gateway.policy.consent import action_of as consent_action
from gateway.policy.decision import HeldCopy, NewConsent, QueuedCopy, Release, with_new
from gateway.policy.governing import plan_digest
from gateway.policy.issues_log import RULE_REPORTER as RULE_ISSUE_REPORTER
from gateway.policy.notifications import RULE_FAMILY
from gateway.policy.plan import plan_change_refusal
from gateway.settings import Directory, PolicySettings

RULE_NPD_CHILD = "basis.no-personal-data-carries-child"
RULE_FUNDING_ROUTE = "funding.residence"
RULE_FUNDING_PROBLEM_ROUTE = "funding.problem-to-initiator"


@dataclass(frozen=True)
class Sending:
    """What the sending authority knows that bears on one envelope."""

    authority: str
    directory: Directory
    policy: PolicySettings
    now: datetime
    threads: tuple[CaseThread, ...]
    consent_history: tuple[RegisterEntry, ...] = ()
    past_recipients: tuple[str, ...] = ()
    held: tuple[HeldCopy, ...] = ()
    queued: tuple[QueuedCopy, ...] = ()
    # Past recipients, held and queued copies are read only for a ConsentChange,
    # the one envelope whose decision uses them (``needs_child_history``); False:
    # they were not read, and a consent change refuses to be decided without them.
    child_history_read: bool = True


def needs_child_history(env: Envelope) -> bool:
    """Whether deciding ``env`` needs the child's past recipients, held and queued copies."""
    return isinstance(env.body, ConsentChange)


@dataclass
class EnvelopeDecision:
    new_consent: NewConsent | None = None
    consent: Effective = field(default_factory=lambda: Effective(None))
    withdrawal_to: tuple[str, ...] = ()
    stops: list[QueuedCopy] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    issue_copies_to: tuple[str, ...] = ()
    store_issue: bool = False
    # the authority's own thread whose plan this Assessment now is
    plan_of: CaseThread | None = None


def decide_envelope(known: Sending, env: Envelope) -> EnvelopeDecision:
    """What sending ``env`` involves; PolicyRefusal naming the rule if it may not go."""
    _check_addressing(known, env)
    header, body = env.header, env.body
    decision = EnvelopeDecision()
    history = known.consent_history
    own = [t for t in known.threads if t.owner == known.authority]
    if isinstance(body, IssueLogEntry):
        if body.reported_by_la != known.authority:
            raise PolicyRefusal(
                RULE_ISSUE_REPORTER,
                f"entry {body.entry_id} says it was reported by {body.reported_by_la}, "
                f"but {known.authority} is submitting it",
            )
        decision.store_issue = True
        decision.issue_copies_to = tuple(
            code
            for code in sorted(known.directory.authorities)
            if code not in (known.authority, header.recipient)
        )
    if isinstance(body, ConsentChange):
        history = _consent_change(known, env, body, decision)
    _check_case_protections(known, env)
    if isinstance(body, Assessment) and own:
        thread = own[0]
        refusal = plan_change_refusal(
            f"case {body.case_ref}",
            thread.plan_digest,
            thread.plan_consent_ref,
            plan_digest(body),
            header.consent_ref,
        )
        if refusal is not None:
            raise refusal
        if header.legal_basis != LegalBasis.NO_PERSONAL_DATA:
            decision.plan_of = thread
    if header.legal_basis == LegalBasis.CONSENT and _about_a_child(known, env):
        owners = {t.owner for t in known.threads}
        owner = owners.pop() if len(owners) == 1 else known.authority
        consent = basis_for(history, owner, known.authority)
        if (
            consent.entry is None
            and isinstance(body, Assessment)
            and body.consent is not None
            and decision.new_consent is None
        ):
            new = NewConsent(body.case_ref, body.consent, consent_action(body.consent))
            if not is_repeat(history, LOCAL, new.action, new.consent):
                decision.new_consent = new
                history = with_new(history, new, known.now)
            consent = basis_for(history, owner, known.authority)
        decision.consent = consent
        uncovered = sharing.covers(
            consent,
            known.policy,
            known.authority,
            header.recipient,
            header.purpose or Purpose.SHARE_CROSS_BORDER,
        )
        if uncovered is not None:
            raise PolicyRefusal(uncovered.rule, uncovered.reason)
    return decision


def _check_addressing(known: Sending, env: Envelope) -> None:
    header = env.header
    if header.sender != known.authority:
        raise PolicyRefusal(
            "submit.sender", f"header sender {header.sender} is not the caller {known.authority}"
        )
    if header.recipient not in known.directory:
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


def _about_a_child(known: Sending, env: Envelope) -> bool:
    return getattr(env.body, "child", None) is not None or any(t.child_key for t in known.threads)


def _consent_change(
    known: Sending, env: Envelope, body: ConsentChange, decision: EnvelopeDecision
) -> tuple[RegisterEntry, ...]:
    """The authority's own consent decision: recorded unless stale; a withdrawal stops
    queued sends and tells past recipients; new consent releases held copies."""
    if not known.child_history_read:
        raise LookupError(
            f"{body.case_ref}: a consent change, but the child's past recipients, held and "
            "queued copies were not read"
        )
    history = known.consent_history
    too_old = stale(history, LOCAL, body.action, body.consent)
    if too_old is not None:
        raise PolicyRefusal(RULE_STALE, too_old.reason)
    if is_repeat(history, LOCAL, body.action, body.consent):
        return history
    before = effective(history)
    new = NewConsent(body.case_ref, body.consent, body.action)
    history = with_new(history, new, known.now)
    after = effective(history)
    decision.new_consent = new
    newly = before.active_scopes() - after.active_scopes()
    if newly:
        decision.withdrawal_to = tuple(
            r for r in known.past_recipients if r != env.header.recipient
        )
        decision.stops = [
            q
            for q in known.queued
            if sharing.covers(
                after, known.policy, known.authority, q.recipient, Purpose.SHARE_CROSS_BORDER
            )
            is not None
        ]
    elif after.given:
        decision.releases = [
            Release(h, after.reference(known.authority))
            for h in known.held
            if sharing.covers(after, known.policy, known.authority, h.recipient, h.purpose) is None
        ]
    return history


def _check_case_protections(known: Sending, env: Envelope) -> None:
    """The family and funding protections of every thread the envelope could mean."""
    body, recipient = env.body, env.header.recipient
    if not isinstance(body, Notification):
        return
    for thread in known.threads:
        if body.audience == Audience.FAMILY and thread.inform_family is False:
            raise PolicyRefusal(
                RULE_FAMILY,
                f"the significant-harm decision on case {thread.case_ref} says the family must "
                "not be told; no family-facing notice may be generated for this case",
            )
        if (
            body.type == NotificationType.FUNDING_REQUEST
            and thread.residence_la
            and recipient != thread.residence_la
        ):
            raise PolicyRefusal(
                RULE_FUNDING_ROUTE,
                f"funding requests for case {thread.case_ref} go to where the child lives "
                f"({thread.residence_la}), not {recipient}",
            )
        if (
            body.type == NotificationType.FUNDING_PROBLEM
            and thread.initiating_la
            and recipient != thread.initiating_la
        ):
            raise PolicyRefusal(
                RULE_FUNDING_PROBLEM_ROUTE,
                f"budget-holding problems are reported to the initiating authority "
                f"({thread.initiating_la}), not {recipient}",
            )
