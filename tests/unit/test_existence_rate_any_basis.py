"""The asked gateway's budget of existence queries holds whatever basis a query claims:
the consent a query names cannot be checked there, and queries labelled CONSENT were
answered without limit (match, and the coordinator's contact): the oracle the
safeguarding budget closed (docs/security.md, "Existence queries"). Found by a review,
2026-12-06."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from policy_support import pump
from support.api_attacks import existence_region
from support.gateways import config_copy

from gateway.ledger import audit
from gateway.ledger.status import Direction, Status
from gateway.model import Child, Identifier, LegalBasis, Purpose
from gateway.policy import existence

pytestmark = pytest.mark.timeout(120)

KACPER = Child(
    "Kacper", "Nowak", date(2012, 7, 9), identifiers=(Identifier("UPN", "J336203317005"),)
)


def test_consent_basis_existence_queries_past_their_budget_are_refused(tmp_path: Path) -> None:
    config_copy(tmp_path, existence_consent_per_day=3)
    _, _, gw = existence_region(tmp_path)
    key = existence.read_key(gw.settings.policy.existence_key_file)
    for _ in range(6):  # as a gateway that checks nothing would send them
        env = gw.outbox.envelope(
            sender="334",
            recipient="336",
            body=existence.query_body(existence.keyed_hashes(key, KACPER)),
            correlation="probe",
            legal_basis=LegalBasis.CONSENT,
            purpose=Purpose.EXISTENCE_CHECK,
            consent_ref="whatever",
        )
        gw.ledger.record([gw.outbox.sign(env)])
    pump(gw)
    answered = [
        e for e in audit.entries(gw.ledger, "336") if e.event.action == "EXISTENCE_QUERY_ANSWERED"
    ]
    assert len(answered) == 3
    refused = [
        r
        for r in gw.ledger.find(authority="336", direction=Direction.INBOUND, limit=500)
        if r.sender == "334" and r.status is Status.QUARANTINED
    ]
    assert len(refused) == 3
    assert all("policy.existence_consent_per_day = 3" in (r.reason or "") for r in refused)
