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

from gateway.errors import PolicyRefusal
from gateway.ledger import audit
from gateway.ledger.status import Direction, Status
from gateway.model import Child, Identifier, LegalBasis, Purpose
from gateway.policy import existence
from gateway.services import coordination

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


def test_the_asking_gateway_holds_its_own_users_to_the_consent_budget(tmp_path: Path) -> None:
    # The asked gateway would quarantine the query past it: said at once, and recorded
    # REJECTED here, as past the safeguarding budget.
    config_copy(tmp_path, existence_consent_per_day=2)
    _, _, gw = existence_region(tmp_path)
    for _ in range(2):
        assert coordination.ask_existence(gw, "336", "335", KACPER).status is Status.SIGNED
    with pytest.raises(PolicyRefusal) as refused:
        coordination.ask_existence(gw, "336", "335", KACPER)
    assert refused.value.rule == "existence.rate"
    assert "policy.existence_consent_per_day = 2" in refused.value.reason
    rejected = [
        r
        for r in gw.ledger.find(authority="336", direction=Direction.OUTBOUND, limit=500)
        if r.recipient == "335" and r.status is Status.REJECTED
    ]
    assert len(rejected) == 1 and "existence.rate" in (rejected[0].reason or "")
