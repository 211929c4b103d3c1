"""What one converted local record produces: every message, its recipient,
legal basis, purpose and fate (send, hold, refuse). Pure: the caller gives
the consent in force, what was sent before and the agreements on record.

Each rule quotes its source in docs/policy.md. In short:
- the record goes to the recipients the practitioner named, to the
  governing authority, and (as a case transfer) to the authority the child
  moved to, each only if the consent in force covers recipient and purpose;
- a significant-harm record goes on the SAFEGUARDING basis, with approver
  and reason, to the authorities the record says must be notified;
- notices: cross-border case identified, consent needed, governing
  authority changed (+ a family notice), funding request to the residence
  authority, assessment completed, TAC invitation, child moved area,
  out-of-area service, consent withdrawn; service gaps to the issues log.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from gateway.cases.store import practitioner_key
from gateway.model import (
    Assessment,
    Body,
    ConsentAction,
    ConsentChange,
    ConsentRecord,
    ConsentScope,
    FlagCode,
    IssueKind,
    IssueLogEntry,
    LegalBasis,
    Outcome,
    Purpose,
    Safeguarding,
)
from gateway.policy import issues_log, notifications, special_category
from gateway.policy.consent import Effective
from gateway.policy.governing import (
    Governing,
    family_language,
    governing,
    involved_las,
    moved_to,
    plan_digest,
    plan_las,
    residence_la,
)
from gateway.policy.sharing import (
    RULE_NO_CONSENT,
    RULE_NO_RECIPIENTS,
    Refusal,
    SendPlan,
    covers,
    plan_send,
)
from gateway.settings import Directory, PolicySettings

RULE_SAFEGUARDING_APPROVAL = "safeguarding.approval"
RULE_SAFEGUARDING_NO_RECIPIENT = "safeguarding.no-recipient"
RULE_UNKNOWN_RECIPIENT = "sharing.unknown-recipient"
RULE_FUNDING_OUTSIDE = "funding.residence-outside-region"


class Role(StrEnum):
    RECORD = "record"  # the record itself (what the practitioner asked to share)
    NOTICE = "notice"  # a notice the guidance asks for


@dataclass(frozen=True)
class Planned:
    """One message to record: sent (no refusal, not held), held, or refused."""

    recipient: str
    body: Body
    legal_basis: LegalBasis
    purpose: Purpose | None
    role: Role
    consent_ref: str | None = None
    safeguarding: Safeguarding | None = None
    held: Refusal | None = None
    refusal: Refusal | None = None
    notice_key: str | None = None

    @property
    def sendable(self) -> bool:
        return self.held is None and self.refusal is None


@dataclass(frozen=True)
class RecordContext:
    authority: str
    directory: Directory
    policy: PolicySettings
    assessment: Assessment
    consent_change: ConsentChange | None
    requested: tuple[str, ...]
    purpose: Purpose
    consent: Effective
    correlation_id: str
    today: date
    newly_withdrawn: frozenset[ConsentScope] = frozenset()
    withdrawal_recipients: tuple[str, ...] = ()
    sent_notices: frozenset[str] = frozenset()
    agreements: frozenset[tuple[str, str]] = frozenset()
    known_issue_ids: frozenset[str] = frozenset()
    inform_family: bool | None = None


@dataclass
class RecordPlan:
    governing: Governing
    items: list[Planned] = field(default_factory=list)
    issues: list[IssueLogEntry] = field(default_factory=list)
    inform_family: bool | None = None
    review_by: date | None = None


def plan_record(ctx: RecordContext) -> RecordPlan:
    """Every message the record produces, in order: the record's own, then notices."""
    a = ctx.assessment
    gov = governing(a, ctx.authority)
    plan = RecordPlan(gov, inform_family=ctx.inform_family)
    _withdrawals(ctx, plan)
    harm = next((f for f in a.flags if f.code == FlagCode.SIGNIFICANT_HARM), None)
    notify = tuple(f.la_code for f in a.flags if f.code == FlagCode.NOTIFY_AUTHORITY and f.la_code)
    requested = tuple(dict.fromkeys((*ctx.requested, *notify)))
    if harm is not None:
        _safeguarding(
            ctx,
            plan,
            harm.decided_by,
            harm.decided_by_role,
            harm.reason,
            harm.text,
            harm.inform_family,
            requested,
        )
        return plan
    involved = sorted(x for x in involved_las(a, requested, ctx.authority) if x in ctx.directory)
    _record(ctx, plan, requested)
    blocked = [x for x in involved if _coverage(ctx, x, Purpose.COORDINATION) is not None]
    covered = [x for x in involved if x not in blocked]
    if blocked:
        reasons = sorted(
            {str(_coverage(ctx, x, Purpose.COORDINATION)).split(":")[0] for x in blocked}
        )
        _self_notice(
            ctx,
            plan,
            notifications.consent_needed(a.case_ref, blocked, reasons),
            f"CONSENT_NEEDED:{','.join(blocked)}:{_consent_id(ctx)}",
        )
    if covered:
        body = notifications.cross_border_identified(
            a.case_ref, ctx.directory.get(ctx.authority), covered
        )
        _self_notice(ctx, plan, body, "CROSS_BORDER:self")
        for x in covered:
            _notice(ctx, plan, x, body, Purpose.COORDINATION, f"CROSS_BORDER:{x}")
    _moved(ctx, plan, covered)
    _governing_switch(ctx, plan, gov, covered)
    _funding(ctx, plan, gov)
    _completed(ctx, plan)
    _tac_invitations(ctx, plan)
    _out_of_area(ctx, plan)
    _service_gaps(ctx, plan)
    return plan


# --- the record itself -------------------------------------------------------


def _coverage(ctx: RecordContext, recipient: str, purpose: Purpose) -> Refusal | None:
    return covers(ctx.consent, ctx.policy, ctx.authority, recipient, purpose)


def _consent_id(ctx: RecordContext) -> str:
    """Names the decision in force (its content, not where it is stored)."""
    entry = ctx.consent.entry
    if entry is None:
        return "none"
    return hashlib.sha256(entry.fingerprint().encode("utf-8")).hexdigest()[:16]


def _record(ctx: RecordContext, plan: RecordPlan, requested: tuple[str, ...]) -> None:
    a = ctx.assessment
    targets: dict[str, Purpose] = {x: ctx.purpose for x in requested if x != ctx.authority}
    if plan.governing.la != ctx.authority:
        # Case messages route to the governing authority from the TAC meeting on.
        targets.setdefault(plan.governing.la, Purpose.COORDINATION)
    moved, _ = moved_to(a)
    if moved and moved != ctx.authority:
        targets[moved] = Purpose.CASE_TRANSFER
    sends: list[SendPlan] = []
    refusals: list[tuple[Refusal, Purpose]] = []
    for target, purpose in targets.items():
        if target not in ctx.directory:
            refusals.append(
                (
                    Refusal(RULE_UNKNOWN_RECIPIENT, f"{target} is not in authorities.yaml", target),
                    purpose,
                )
            )
            continue
        result = plan_send(ctx.consent, ctx.policy, ctx.authority, target, purpose)
        if isinstance(result, Refusal):
            refusals.append((result, purpose))
        else:
            sends.append(result)
    if not sends:
        if not targets:
            held = (
                Refusal(RULE_NO_CONSENT, "consent to record and share was not given")
                if not ctx.consent.given
                else Refusal(RULE_NO_RECIPIENTS, "no other authority was named to share with")
            )
            recipient, purpose = ctx.authority, ctx.purpose
        else:
            first, purpose = refusals[0]
            waits = (
                " (the transfer waits for new consent)" if purpose == Purpose.CASE_TRANSFER else ""
            )
            held = Refusal(first.rule, first.reason + waits, first.recipient)
            recipient = first.recipient if len(targets) == 1 and first.recipient else ctx.authority
        plan.items.append(
            Planned(recipient, a, LegalBasis.CONSENT, purpose, Role.RECORD, held=held)
        )
        return
    for send in sends:
        if ctx.consent_change is not None:
            plan.items.append(
                Planned(
                    send.recipient,
                    special_category.consent_change_for(
                        ctx.consent_change, send.purpose, ctx.policy
                    ),
                    send.legal_basis,
                    send.purpose,
                    Role.RECORD,
                    consent_ref=send.consent_ref,
                )
            )
        plan.items.append(
            Planned(
                send.recipient,
                special_category.assessment_for(a, send.purpose, ctx.policy),
                send.legal_basis,
                send.purpose,
                Role.RECORD,
                consent_ref=send.consent_ref,
            )
        )
    for refusal, purpose in refusals:
        plan.items.append(
            Planned(
                refusal.recipient or ctx.authority,
                a,
                LegalBasis.CONSENT,
                purpose,
                Role.RECORD,
                refusal=refusal,
            )
        )


def _withdrawals(ctx: RecordContext, plan: RecordPlan) -> None:
    if not ctx.newly_withdrawn or not ctx.withdrawal_recipients or ctx.consent.entry is None:
        return
    entry = ctx.consent.entry
    record: ConsentRecord = entry.consent
    body = ConsentChange(
        case_ref=ctx.assessment.case_ref,
        child=special_category.identity_only(ctx.assessment.child),
        action=ConsentAction.WITHDRAWN,
        consent=record,
    )
    for recipient in ctx.withdrawal_recipients:
        plan.items.append(
            Planned(recipient, body, LegalBasis.CONSENT_WITHDRAWAL, None, Role.NOTICE)
        )


def _safeguarding(
    ctx: RecordContext,
    plan: RecordPlan,
    approver: str | None,
    approver_role: str | None,
    reason: str | None,
    text: str | None,
    inform_family: bool | None,
    requested: tuple[str, ...],
) -> None:
    a = ctx.assessment
    plan.inform_family = inform_family is not False
    if not approver or not reason:
        # Never downgraded to another basis: without approval nothing goes.
        plan.items.append(
            Planned(
                ctx.authority,
                a,
                LegalBasis.SAFEGUARDING,
                Purpose.SAFEGUARDING_REFERRAL,
                Role.RECORD,
                refusal=Refusal(
                    RULE_SAFEGUARDING_APPROVAL,
                    "a significant-harm referral needs a named approver and a reason",
                ),
            )
        )
        return
    targets = [x for x in requested if x != ctx.authority]
    if not targets:
        plan.items.append(
            Planned(
                ctx.authority,
                a,
                LegalBasis.SAFEGUARDING,
                Purpose.SAFEGUARDING_REFERRAL,
                Role.RECORD,
                held=Refusal(
                    RULE_SAFEGUARDING_NO_RECIPIENT,
                    "significant harm: local safeguarding procedures; no other authority to notify",
                ),
            )
        )
        return
    approval = Safeguarding(approver=approver, reason=reason, approver_role=approver_role)
    child = special_category.child_for(a.child, Purpose.SAFEGUARDING_REFERRAL, ctx.policy)
    body = notifications.significant_harm(a.case_ref, child, text, plan.inform_family)
    for target in targets:
        if target not in ctx.directory:
            plan.items.append(
                Planned(
                    target,
                    body,
                    LegalBasis.SAFEGUARDING,
                    Purpose.SAFEGUARDING_REFERRAL,
                    Role.RECORD,
                    refusal=Refusal(
                        RULE_UNKNOWN_RECIPIENT, f"{target} is not in authorities.yaml", target
                    ),
                )
            )
            continue
        plan.items.append(
            Planned(
                target,
                body,
                LegalBasis.SAFEGUARDING,
                Purpose.SAFEGUARDING_REFERRAL,
                Role.RECORD,
                safeguarding=approval,
            )
        )
    known = [x for x in targets if x in ctx.directory]
    if known:
        _self_notice(
            ctx,
            plan,
            notifications.cross_border_identified(
                a.case_ref, ctx.directory.get(ctx.authority), known
            ),
            "CROSS_BORDER:self",
        )


# --- notices -------------------------------------------------------------------


def _self_notice(ctx: RecordContext, plan: RecordPlan, body: Body, key: str) -> None:
    """A notice to the authority's own CAF coordinator: it never leaves the authority."""
    if key in ctx.sent_notices:
        return
    plan.items.append(
        Planned(
            ctx.authority,
            body,
            LegalBasis.NO_PERSONAL_DATA,
            Purpose.COORDINATION,
            Role.NOTICE,
            notice_key=key,
        )
    )


def _notice(
    ctx: RecordContext, plan: RecordPlan, recipient: str, body: Body, purpose: Purpose, key: str
) -> None:
    """A notice about the case to another authority: consent must cover it."""
    if key in ctx.sent_notices:
        return
    result = plan_send(ctx.consent, ctx.policy, ctx.authority, recipient, purpose)
    if isinstance(result, Refusal):
        plan.items.append(
            Planned(
                recipient,
                body,
                LegalBasis.CONSENT,
                purpose,
                Role.NOTICE,
                refusal=result,
                notice_key=None,
            )
        )
        return
    plan.items.append(
        Planned(
            recipient,
            body,
            LegalBasis.CONSENT,
            purpose,
            Role.NOTICE,
            consent_ref=result.consent_ref,
            notice_key=key,
        )
    )


def _moved(ctx: RecordContext, plan: RecordPlan, covered: list[str]) -> None:
    a = ctx.assessment
    moved, moved_on = moved_to(a)
    if not moved or moved == ctx.authority or moved not in ctx.directory:
        return
    review_by = ctx.today + timedelta(days=ctx.policy.review_after_days)
    if _coverage(ctx, moved, Purpose.CASE_TRANSFER) is not None:
        key = f"CHILD_MOVED_WAITING:{moved}"
        if key not in ctx.sent_notices:
            plan.items.append(
                Planned(
                    moved,
                    notifications.child_moved_waiting(ctx.directory.get(ctx.authority), moved),
                    LegalBasis.NO_PERSONAL_DATA,
                    Purpose.CASE_TRANSFER,
                    Role.NOTICE,
                    notice_key=key,
                )
            )
        return
    plan.review_by = review_by
    origin = ctx.authority
    _notice(
        ctx,
        plan,
        moved,
        notifications.case_transfer(a.case_ref, origin, moved, moved_on, review_by),
        Purpose.CASE_TRANSFER,
        f"CASE_TRANSFER:{moved}",
    )
    moved_body = notifications.child_moved(a.case_ref, origin, moved, review_by)
    _self_notice(ctx, plan, moved_body, f"CHILD_MOVED:self:{moved}")
    for x in covered:
        if x != moved:
            _notice(ctx, plan, x, moved_body, Purpose.COORDINATION, f"CHILD_MOVED:{x}:{moved}")


def _governing_switch(
    ctx: RecordContext, plan: RecordPlan, gov: Governing, covered: list[str]
) -> None:
    if not gov.switched or gov.lead is None:
        return
    a = ctx.assessment
    body = notifications.governing_changed(
        a.case_ref, gov.initiating_la, gov.la, gov.lead.name, gov.since, a.child_views
    )
    _self_notice(ctx, plan, body, f"GOVERNING:self:{gov.la}")
    for x in covered:
        _notice(ctx, plan, x, body, Purpose.COORDINATION, f"GOVERNING:{x}:{gov.la}")
    if plan.inform_family is False or gov.la not in ctx.directory:
        return
    language, interpreter = family_language(a)
    _self_notice(
        ctx,
        plan,
        notifications.family_notice(a.case_ref, ctx.directory.get(gov.la), language, interpreter),
        f"FAMILY_NOTICE:{gov.la}",
    )


def _funding(ctx: RecordContext, plan: RecordPlan, gov: Governing) -> None:
    a = ctx.assessment
    residence = residence_la(a)
    if a.outcome != Outcome.MULTI_AGENCY or not a.actions or not residence:
        return
    lead_la = gov.lead.la_code if gov.lead else gov.la
    body = notifications.funding_request(a.case_ref, residence, lead_la, len(a.actions))
    key = f"FUNDING_REQUEST:{residence}:{plan_digest(a)[:16]}"
    if residence == ctx.authority:
        _self_notice(ctx, plan, body, key)
    elif residence not in ctx.directory:
        plan.items.append(
            Planned(
                ctx.authority,
                body,
                LegalBasis.NO_PERSONAL_DATA,
                Purpose.FUNDING_REQUEST,
                Role.NOTICE,
                refusal=Refusal(
                    RULE_FUNDING_OUTSIDE,
                    f"the child lives in {residence}, outside the region directory",
                ),
            )
        )
    else:
        _notice(ctx, plan, residence, body, Purpose.FUNDING_REQUEST, key)


def _completed(ctx: RecordContext, plan: RecordPlan) -> None:
    a = ctx.assessment
    if a.completed_on is None:
        return
    body = notifications.assessment_completed(a.case_ref, a.completed_on, ctx.authority)
    for x in sorted(plan_las(a) - {ctx.authority}):
        if x in ctx.directory:
            _notice(ctx, plan, x, body, Purpose.COORDINATION, f"ASSESSMENT_COMPLETED:{x}")


def _tac_invitations(ctx: RecordContext, plan: RecordPlan) -> None:
    a = ctx.assessment
    home = residence_la(a)
    if not home or home == ctx.authority or home not in ctx.directory:
        return
    for meeting in a.tac_meetings:
        held = meeting.held_on
        day = held.date() if isinstance(held, datetime) else held
        if day <= ctx.today:
            continue  # an invitation is for a meeting still to come
        child = special_category.child_for(a.child, Purpose.INVITE_TO_TAC, ctx.policy)
        body = notifications.tac_invitation(a.case_ref, child, day, meeting.venue, ctx.authority)
        _notice(
            ctx, plan, home, body, Purpose.INVITE_TO_TAC, f"TAC_INVITATION:{home}:{day.isoformat()}"
        )


def _out_of_area(ctx: RecordContext, plan: RecordPlan) -> None:
    for action in ctx.assessment.actions:
        owner_la, where = action.owner_la, action.delivery_la
        if not where or not owner_la or where == owner_la:
            continue
        owner = action.owner or "unnamed owner"
        if (practitioner_key(owner), where) in ctx.agreements:
            continue
        body = notifications.out_of_area(owner, owner_la, where, action.seq)
        for coordinator_la in dict.fromkeys((owner_la, where)):
            key = f"OUT_OF_AREA:{action.seq}:{where}:{coordinator_la}"
            if key in ctx.sent_notices or coordinator_la not in ctx.directory:
                continue
            plan.items.append(
                Planned(
                    coordinator_la,
                    body,
                    LegalBasis.NO_PERSONAL_DATA,
                    Purpose.COORDINATION,
                    Role.NOTICE,
                    notice_key=key,
                )
            )


def _service_gaps(ctx: RecordContext, plan: RecordPlan) -> None:
    for flag in ctx.assessment.flags:
        if flag.code != FlagCode.SERVICE_GAP or not flag.text:
            continue
        entry = IssueLogEntry(
            entry_id=issues_log.entry_id(ctx.authority, ctx.correlation_id, flag.text),
            kind=IssueKind.SERVICE_GAP,
            reported_by_la=ctx.authority,
            concerns_la=flag.la_code,
            description=flag.text,
            raised_on=ctx.today,
        )
        if entry.entry_id in ctx.known_issue_ids:
            continue
        found = issues_log.personal_data_in(entry.description, (ctx.assessment.child,))
        if found:
            plan.items.append(
                Planned(
                    ctx.authority,
                    replace(entry, description="(withheld: personal data)"),
                    LegalBasis.NO_PERSONAL_DATA,
                    Purpose.COORDINATION,
                    Role.NOTICE,
                    refusal=Refusal(
                        issues_log.RULE_PERSONAL_DATA,
                        f"the service-gap text contains {', '.join(found)}",
                    ),
                )
            )
            continue
        plan.issues.append(entry)
        for code in sorted(ctx.directory.authorities):
            if code != ctx.authority:
                plan.items.append(
                    Planned(
                        code,
                        entry,
                        LegalBasis.NO_PERSONAL_DATA,
                        Purpose.COORDINATION,
                        Role.NOTICE,
                        notice_key=f"ISSUE:{entry.entry_id}:{code}",
                    )
                )
