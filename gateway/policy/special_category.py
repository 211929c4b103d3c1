"""Special category data (ethnicity, religion, health notes) leaves only where
the purpose needs it; ``config/policy.yaml`` says which purposes need which."""

from __future__ import annotations

from dataclasses import replace

from gateway.model import Assessment, Child, ConsentChange, Element, Notification, Purpose
from gateway.settings import PolicySettings


def child_for(child: Child, purpose: Purpose | None, policy: PolicySettings) -> Child:
    """``child`` without the special category fields ``purpose`` does not need."""
    allowed = policy.special_fields(purpose)
    return replace(
        child,
        ethnicity=child.ethnicity if "ethnicity" in allowed else None,
        religion=child.religion if "religion" in allowed else None,
    )


def identity_only(child: Child) -> Child:
    """Just enough to recognise the child: names, date of birth, identifiers."""
    return Child(
        given_name=child.given_name,
        family_name=child.family_name,
        date_of_birth=child.date_of_birth,
        gender=child.gender,
        identifiers=child.identifiers,
    )


def assessment_for(a: Assessment, purpose: Purpose | None, policy: PolicySettings) -> Assessment:
    """``a`` as it may leave for ``purpose``."""
    allowed = policy.special_fields(purpose)
    elements = a.elements
    if "health_notes" not in allowed:
        elements = tuple(
            replace(e, notes=None) if e.element == Element.HEALTH else e for e in a.elements
        )
    return replace(a, child=child_for(a.child, purpose, policy), elements=elements)


def consent_change_for(
    c: ConsentChange, purpose: Purpose | None, policy: PolicySettings
) -> ConsentChange:
    return replace(c, child=child_for(c.child, purpose, policy))


def notification_for(
    n: Notification, purpose: Purpose | None, policy: PolicySettings
) -> Notification:
    if n.child is None:
        return n
    return replace(n, child=child_for(n.child, purpose, policy))
