"""Who a converted local record may be sent to, and on what basis.

Consent is required, not a trigger: the practitioner names recipients and a
purpose; each recipient gets the record only if the child's consent, at the
moment of sending, covers sharing across the border with that authority.
A record without such consent is held locally (``HELD_LOCAL``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.model import ConsentRecord, ConsentScope, LegalBasis, Purpose

RULE_NO_CONSENT = "consent.not-given"
RULE_NO_CROSS_BORDER = "consent.no-cross-border-scope"
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


@dataclass(frozen=True)
class SharingDecision:
    sends: tuple[SendPlan, ...]
    held: Refusal | None
    refused: tuple[Refusal, ...]


def consent_ref(sender: str, case_ref: str, consent: ConsentRecord) -> str:
    """A reference to the consent a send relies on."""
    when = consent.recorded_at.isoformat() if consent.recorded_at else "undated"
    return f"{sender}/{case_ref}/consent/{when}"


def decide(
    sender: str,
    case_ref: str,
    consent: ConsentRecord | None,
    requested: tuple[str, ...],
    purpose: Purpose = Purpose.SHARE_CROSS_BORDER,
) -> SharingDecision:
    """Apply the consent rules to a practitioner's request to share."""
    if consent is None or not consent.given:
        return SharingDecision(
            (), Refusal(RULE_NO_CONSENT, "consent to record and share was not given"), ()
        )
    active = consent.active_scopes()
    if ConsentScope.SHARE_CROSS_BORDER not in active:
        return SharingDecision(
            (),
            Refusal(RULE_NO_CROSS_BORDER, "consent does not cover sharing across the border"),
            (),
        )
    targets = [code for code in dict.fromkeys(requested) if code != sender]
    if not targets:
        return SharingDecision(
            (), Refusal(RULE_NO_RECIPIENTS, "no other authority was named to share with"), ()
        )
    ref = consent_ref(sender, case_ref, consent)
    sends, refused = [], []
    for code in targets:
        if consent.named_las and code not in consent.named_las:
            refused.append(
                Refusal(
                    RULE_NOT_NAMED,
                    f"consent names {', '.join(consent.named_las)}, not {code}",
                    code,
                )
            )
            continue
        sends.append(SendPlan(code, LegalBasis.CONSENT, purpose, ref))
    return SharingDecision(tuple(sends), None, tuple(refused))
