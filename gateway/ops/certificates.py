"""How long the signing certificates of the hosted authorities remain valid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.context import Gateway

# Warn this many days before a certificate expires (peers must re-pin a new one).
WARN_DAYS = 30


@dataclass(frozen=True)
class CertificateStatus:
    authority: str
    not_after: datetime
    days_left: float
    warning: bool


def hosted_certificates(gw: Gateway, now: datetime | None = None) -> list[CertificateStatus]:
    """Expiry of each hosted authority's signing certificate, soonest first."""
    now = now or gw.clock()
    found = []
    for code, signer in sorted(gw.signers.items()):
        not_after = signer.certificate.not_valid_after_utc
        days = (not_after - now).total_seconds() / 86400
        found.append(CertificateStatus(code, not_after, round(days, 2), days <= WARN_DAYS))
    return sorted(found, key=lambda c: c.days_left)


def pinned_certificates(gw: Gateway, now: datetime | None = None) -> list[CertificateStatus]:
    """When trust in each authority's pinned certificates ends, soonest first.

    During a key rotation an authority has two pinned certificates; trust in
    it ends with the later one, so that is the one reported.
    """
    now = now or gw.clock()
    trust = gw.verifier.trust
    found = []
    for code in sorted(trust.codes()):
        not_after = max(c.not_valid_after_utc for c in trust.certificates_for(code))
        days = (not_after - now).total_seconds() / 86400
        found.append(CertificateStatus(code, not_after, round(days, 2), days <= WARN_DAYS))
    return sorted(found, key=lambda c: c.days_left)
