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

from gateway.model import ConsentAction, ConsentChange, ConsentRecord, FlagCode, LegalBasis, Purpose
from gateway.policy import notices, notifications, special_category
from gateway.policy.governing import governing, involved_las, moved_to
from gateway.policy.planning import (
    RULE_UNKNOWN_RECIPIENT,
    Planned,
    RecordContext,
    RecordPlan,
    Role,
    consent_id,
    coverage,
)
from gateway.policy.safeguarding import plan_referral
from gateway.policy.sharing import (
    RULE_NO_CONSENT,
    RULE_NO_RECIPIENTS,
    Refusal,
    SendPlan,
    plan_send,
)

__all__ = ["Planned", "RecordContext", "RecordPlan", "Role", "plan_record"]


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
        plan_referral(
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
    blocked = [x for x in involved if coverage(ctx, x, Purpose.COORDINATION) is not None]
    covered = [x for x in involved if x not in blocked]
    if blocked:
        reasons = sorted(
            {str(coverage(ctx, x, Purpose.COORDINATION)).split(":")[0] for x in blocked}
        )
        notices.self_notice(
            ctx,
            plan,
            notifications.consent_needed(a.case_ref, blocked, reasons),
            f"CONSENT_NEEDED:{','.join(blocked)}:{consent_id(ctx)}",
        )
    if covered:
        body = notifications.cross_border_identified(
            a.case_ref, ctx.directory.get(ctx.authority), covered
        )
        notices.self_notice(ctx, plan, body, "CROSS_BORDER:self")
        for x in covered:
            notices.notice(ctx, plan, x, body, Purpose.COORDINATION, f"CROSS_BORDER:{x}")
    notices.moved(ctx, plan, covered)
    notices.governing_switch(ctx, plan, gov, covered)
    notices.funding(ctx, plan, gov)
    notices.completed(ctx, plan)
    notices.tac_invitations(ctx, plan)
    notices.out_of_area(ctx, plan)
    notices.service_gaps(ctx, plan)
    return plan


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
