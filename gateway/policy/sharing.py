"""Whether the consent in force covers one send: recipient and purpose.

Consent is required, not a trigger: the practitioner names recipients and a
purpose; each recipient gets personal data only if the child's consent, at
the moment of sending, covers that purpose and names (or does not limit)
that authority. Sends within the authority itself need SHARE_WITHIN_LA.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.model import ConsentScope, LegalBasis, Purpose
from gateway.policy.consent import LOCAL, Effective
from gateway.settings import PolicySettings

RULE_NO_CONSENT = "consent.not-given"
RULE_NO_CROSS_BORDER = "consent.no-cross-border-scope"
RULE_NO_SCOPE = "consent.scope-not-covered"
RULE_NOT_NAMED = "consent.recipient-not-named"
RULE_NO_RECIPIENTS = "sharing.no-recipients"


@dataclass(frozen=True)
class SendPlan:
    recipient: str
    legal_basis: LegalBasis
    purpose: Purpose
    consent_ref: str | None


@dataclass(frozen=True)
class Refusal:
    """A recipient (or the whole record, recipient None) that may not be sent to."""

    rule: str
    reason: str
    recipient: str | None = None

    def __str__(self) -> str:
        return f"{self.rule}: {self.reason}"


def covers(
    consent: Effective,
    policy: PolicySettings,
    sender: str,
    recipient: str,
    purpose: Purpose,
) -> Refusal | None:
    """None if ``consent`` covers sending to ``recipient`` for ``purpose``, else why not."""
    if not consent.given:
        return Refusal(RULE_NO_CONSENT, "consent to record and share was not given", recipient)
    active = consent.active_scopes()
    if recipient == sender:
        if ConsentScope.SHARE_WITHIN_LA in active:
            return None
        return Refusal(
            RULE_NO_SCOPE, "consent does not cover sharing within the authority", recipient
        )
    wanted = policy.scopes_for(purpose)
    if not any(scope in active for scope in wanted):
        rule = RULE_NO_CROSS_BORDER if ConsentScope.SHARE_CROSS_BORDER in wanted else RULE_NO_SCOPE
        names = " or ".join(s.value for s in wanted)
        return Refusal(rule, f"consent does not cover {purpose.value} ({names})", recipient)
    named = set(consent.named_las)
    entry = consent.entry
    if entry is not None and entry.source != LOCAL:
        named.add(entry.source)  # the authority that obtained the consent already holds the data
    if consent.named_las and recipient not in named:
        return Refusal(
            RULE_NOT_NAMED,
            f"consent names {', '.join(consent.named_las)}, not {recipient}",
            recipient,
        )
    return None


def plan_send(
    consent: Effective, policy: PolicySettings, sender: str, recipient: str, purpose: Purpose
) -> SendPlan | Refusal:
    """A CONSENT-basis send plan, or the refusal."""
    refusal = covers(consent, policy, sender, recipient, purpose)
    if refusal is not None:
        return refusal
    return SendPlan(recipient, LegalBasis.CONSENT, purpose, consent.reference(sender))
