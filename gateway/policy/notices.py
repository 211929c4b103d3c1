"""The notices the guidance asks for when a record is submitted: the authority's
own coordinator is told of cross-border issues, the counterpart coordinators
of the case, a move, a change of governing authority (and the family, in its
language), a funding request to where the child lives, a completed assessment,
TAC invitations, services delivered out of area, and service gaps to the
regional issues log. Each notice is sent once per thread (``notice_key``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from gateway.cases.store import practitioner_key
from gateway.model import (
    Assessment,
    Body,
    Flag,
    FlagCode,
    IssueKind,
    IssueLogEntry,
    LegalBasis,
    Outcome,
    PlanAction,
    Purpose,
)
from gateway.policy import issues_log, notifications, special_category
from gateway.policy.governing import (
    Governing,
    family_language,
    moved_to,
    plan_digest,
    plan_las,
    residence_la,
)
from gateway.policy.planning import Planned, RecordContext, RecordPlan, Role, coverage
from gateway.policy.sharing import Refusal, plan_send

RULE_FUNDING_OUTSIDE = "funding.residence-outside-region"


def self_notice(ctx: RecordContext, plan: RecordPlan, body: Body, key: str) -> None:
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


def notice(
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


def moved(ctx: RecordContext, plan: RecordPlan, covered: list[str]) -> None:
    a = ctx.assessment
    moved, moved_on = moved_to(a)
    if not moved or moved == ctx.authority or moved not in ctx.directory:
        return
    review_by = ctx.today + timedelta(days=ctx.policy.review_after_days)
    if coverage(ctx, moved, Purpose.CASE_TRANSFER) is not None:
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
    notice(
        ctx,
        plan,
        moved,
        notifications.case_transfer(a.case_ref, origin, moved, moved_on, review_by),
        Purpose.CASE_TRANSFER,
        f"CASE_TRANSFER:{moved}",
    )
    moved_body = notifications.child_moved(a.case_ref, origin, moved, review_by)
    self_notice(ctx, plan, moved_body, f"CHILD_MOVED:self:{moved}")
    for x in covered:
        if x != moved:
            notice(ctx, plan, x, moved_body, Purpose.COORDINATION, f"CHILD_MOVED:{x}:{moved}")


def governing_switch(
    ctx: RecordContext, plan: RecordPlan, gov: Governing, covered: list[str]
) -> None:
    if not gov.switched or gov.lead is None:
        return
    a = ctx.assessment
    body = notifications.governing_changed(
        a.case_ref, gov.initiating_la, gov.la, gov.lead.name, gov.since, a.child_views
    )
    self_notice(ctx, plan, body, f"GOVERNING:self:{gov.la}")
    for x in covered:
        notice(ctx, plan, x, body, Purpose.COORDINATION, f"GOVERNING:{x}:{gov.la}")
    if plan.inform_family is False or gov.la not in ctx.directory:
        return
    language, interpreter = family_language(a)
    self_notice(
        ctx,
        plan,
        notifications.family_notice(a.case_ref, ctx.directory.get(gov.la), language, interpreter),
        f"FAMILY_NOTICE:{gov.la}",
    )


def funding(ctx: RecordContext, plan: RecordPlan, gov: Governing) -> None:
    a = ctx.assessment
    residence = residence_la(a)
    if a.outcome != Outcome.MULTI_AGENCY or not a.actions or not residence:
        return
    lead_la = gov.lead.la_code if gov.lead else gov.la
    body = notifications.funding_request(a.case_ref, residence, lead_la, len(a.actions))
    key = f"FUNDING_REQUEST:{residence}:{plan_digest(a)[:16]}"
    if residence == ctx.authority:
        self_notice(ctx, plan, body, key)
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
        notice(ctx, plan, residence, body, Purpose.FUNDING_REQUEST, key)


def completed(ctx: RecordContext, plan: RecordPlan) -> None:
    a = ctx.assessment
    if a.completed_on is None:
        return
    body = notifications.assessment_completed(a.case_ref, a.completed_on, ctx.authority)
    for x in sorted(plan_las(a) - {ctx.authority}):
        if x in ctx.directory:
            notice(ctx, plan, x, body, Purpose.COORDINATION, f"ASSESSMENT_COMPLETED:{x}")


def tac_invitations(ctx: RecordContext, plan: RecordPlan) -> None:
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
        notice(
            ctx, plan, home, body, Purpose.INVITE_TO_TAC, f"TAC_INVITATION:{home}:{day.isoformat()}"
        )


def _out_of_area(assessment: Assessment) -> Iterator[tuple[PlanAction, str, str, str]]:
    """The record's actions delivered outside their owner's area: (action, owner's
    authority, delivering authority, practitioner key of the owner)."""
    for action in assessment.actions:
        owner_la, where = action.owner_la, action.delivery_la
        if not where or not owner_la or where == owner_la:
            continue
        yield action, owner_la, where, practitioner_key(action.owner or "unnamed owner")


def agreements_asked(assessment: Assessment) -> frozenset[tuple[str, str]]:
    """The (practitioner key, delivery LA) agreements ``out_of_area`` asks about for
    this record: the only ones the accepting transaction reads (issue 14)."""
    return frozenset((key, where) for _, _, where, key in _out_of_area(assessment))


def out_of_area(ctx: RecordContext, plan: RecordPlan) -> None:
    for action, owner_la, where, key in _out_of_area(ctx.assessment):
        if (key, where) in ctx.agreements:
            continue
        owner = action.owner or "unnamed owner"
        body = notifications.out_of_area(owner, owner_la, where, action.seq)
        for coordinator_la in dict.fromkeys((owner_la, where)):
            notice_key = f"OUT_OF_AREA:{action.seq}:{where}:{coordinator_la}"
            if notice_key in ctx.sent_notices or coordinator_la not in ctx.directory:
                continue
            plan.items.append(
                Planned(
                    coordinator_la,
                    body,
                    LegalBasis.NO_PERSONAL_DATA,
                    Purpose.COORDINATION,
                    Role.NOTICE,
                    notice_key=notice_key,
                )
            )


def _service_gaps(
    authority: str, correlation_id: str, assessment: Assessment
) -> Iterator[tuple[Flag, str, str]]:
    """The record's service gaps: (flag, its text, its issues-log entry id)."""
    for flag in assessment.flags:
        if flag.code != FlagCode.SERVICE_GAP or not flag.text:
            continue
        yield flag, flag.text, issues_log.entry_id(authority, correlation_id, flag.text)


def issue_ids_asked(authority: str, correlation_id: str, assessment: Assessment) -> frozenset[str]:
    """The issues-log entries ``service_gaps`` asks about for this record: the only
    ones the accepting transaction reads (issue 14)."""
    return frozenset(i for _, _, i in _service_gaps(authority, correlation_id, assessment))


def service_gaps(ctx: RecordContext, plan: RecordPlan) -> None:
    for flag, text, entry_id in _service_gaps(ctx.authority, ctx.correlation_id, ctx.assessment):
        entry = IssueLogEntry(
            entry_id=entry_id,
            kind=IssueKind.SERVICE_GAP,
            reported_by_la=ctx.authority,
            concerns_la=flag.la_code,
            description=text,
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
