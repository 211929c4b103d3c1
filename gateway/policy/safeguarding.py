"""Significant harm: the record goes on the SAFEGUARDING basis, with a named
approver and reason, to the authorities the record says must be notified;
never downgraded to another basis, and without approval nothing goes.

"If any practitioner involved in a Common Assessment at any stage identifies
that a child or young person is at risk of Significant Harm, she/he will
follow their local safeguarding procedures. It is best practice to inform the
child/young person and family that that is happening unless doing so is
likely to expose the child/young person to further risk." (guidance, Deliver,
Principle 4)"""

from __future__ import annotations

from gateway.model import LegalBasis, Purpose, Safeguarding
from gateway.policy import notifications, special_category
from gateway.policy.notices import self_notice
from gateway.policy.planning import (
    RULE_UNKNOWN_RECIPIENT,
    Planned,
    RecordContext,
    RecordPlan,
    Role,
)
from gateway.policy.sharing import Refusal

RULE_SAFEGUARDING_APPROVAL = "safeguarding.approval"
RULE_SAFEGUARDING_NO_RECIPIENT = "safeguarding.no-recipient"


def plan_referral(
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
        self_notice(
            ctx,
            plan,
            notifications.cross_border_identified(
                a.case_ref, ctx.directory.get(ctx.authority), known
            ),
            "CROSS_BORDER:self",
        )
