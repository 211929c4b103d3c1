""" "It is the child / young person's plan – the agencies cannot change it
without their consent" (guidance, Deliver, Principle 4).

A plan is its actions and lead professionals. A version whose plan differs
from the one last received (or sent) on the thread must carry a reference
to a consent for the change: one other than the consent the previous
version relied on.
"""

from __future__ import annotations

from gateway.errors import PolicyRefusal

RULE_PLAN_CHANGE = "plan.change-without-consent"


def plan_change_refusal(
    where: str,
    previous_digest: str | None,
    previous_consent_ref: str | None,
    digest: str,
    consent_ref: str | None,
) -> PolicyRefusal | None:
    """The refusal for a plan change without a consent for it, else None."""
    if not previous_digest or previous_digest == digest:
        return None
    if consent_ref is not None and consent_ref != previous_consent_ref:
        return None
    return PolicyRefusal(
        RULE_PLAN_CHANGE,
        f"{where}: the plan (actions or lead professional) changed without a reference to a "
        "consent for the change; it is the child's plan",
    )
