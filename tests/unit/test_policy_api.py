"""The policy faces: consent, case and issues-log queries; a refusal is a 422 with the rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from policy_support import SANDWELL, WOLVERHAMPTON, envelope_of, memory_gateway, pump, submit

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.envelope.codec import envelope_to_bytes
from gateway.ledger.status import Direction
from gateway.model import LegalBasis, Purpose

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, dict[str, str], object]:
    gw = memory_gateway(tmp_path)
    submit(gw, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), WOLVERHAMPTON.name)
    submit(gw, "333", "sandwell-xml", SANDWELL.read_bytes(), SANDWELL.name)
    pump(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    tokens = {code: keys.issue(code) for code in ("333", "334", "336")}
    return TestClient(create_app(gw, keys)), tokens, gw


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_consent_of_a_child_shows_the_withdrawal_and_its_history(setup: tuple) -> None:
    client, tokens, _ = setup
    r = client.get("/v1/children/9990000050/consent", headers=_auth(tokens["336"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["given"] is True and body["withdrawn_scopes"] == ["SHARE_CROSS_BORDER"]
    assert "SHARE_CROSS_BORDER" not in body["active_scopes"]
    assert [h["source"] for h in body["history"]] == ["LOCAL"]
    other = client.get("/v1/children/9990000050/consent", headers=_auth(tokens["333"]))
    assert other.status_code == 404


def test_a_case_shows_governing_authority_leads_parties_and_notifications(setup: tuple) -> None:
    client, tokens, gw = setup
    thread = next(
        r.correlation_id
        for r in gw.ledger.find(authority="333", limit=200)
        if r.case_ref == "FWI-553901"
    )
    r = client.get(f"/v1/cases/{thread}", headers=_auth(tokens["333"]))
    assert r.status_code == 200, r.text
    case = r.json()
    assert (case["initiating_la"], case["governing_la"], case["funding_requests_to"]) == (
        "333",
        "334",
        "333",
    )
    assert case["parties"] == ["333", "334"]
    assert [(x["name"], x["la_code"]) for x in case["lead_professionals"]] == [
        ("Gary Hinds", "334")
    ]
    assert "GOVERNING_AUTHORITY_CHANGED" in [e["kind"] for e in case["log"]]
    assert "NOTICE_SENT:FUNDING_REQUEST" in [e["kind"] for e in case["log"]]
    assert client.get(f"/v1/cases/{thread}", headers=_auth(tokens["336"])).status_code == 404


def test_every_authoritys_coordinators_can_read_the_issues_log(setup: tuple) -> None:
    client, tokens, _ = setup
    for code in ("333", "334", "336"):
        r = client.get("/v1/issues-log", headers=_auth(tokens[code]))
        assert r.status_code == 200
        assert [e["kind"] for e in r.json()] == ["SERVICE_GAP"]


def test_a_submission_refused_by_policy_is_a_422_naming_the_rule_and_recorded_rejected(
    setup: tuple,
) -> None:
    client, tokens, gw = setup
    (held,) = [
        r
        for r in gw.ledger.find(authority="336", limit=200)
        if r.case_ref == "EHM-77245" and r.status.value == "HELD_LOCAL"
    ]
    env = envelope_of(gw, held)
    assert env is not None
    attempt = gw.outbox.envelope(
        sender="336",
        recipient="332",
        body=env.body,
        correlation=held.correlation_id,
        legal_basis=LegalBasis.CONSENT,
        purpose=Purpose.CASE_TRANSFER,
        consent_ref="336/EHM-77245/consent/2026-08-04T12:20:00+00:00",
    )
    r = client.post(
        "/v1/messages",
        content=envelope_to_bytes(attempt),
        headers={**_auth(tokens["336"]), "Content-Type": "application/xml"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["rule"] == "consent.no-cross-border-scope"
    (row,) = gw.ledger.find(
        message_id=attempt.header.message_id, authority="336", direction=Direction.OUTBOUND
    )
    assert row.status.value == "REJECTED" and row.reason.startswith("consent.no-cross-border-scope")


def test_an_existence_query_is_asked_and_answered_through_the_api(setup: tuple) -> None:
    client, tokens, gw = setup
    r = client.post(
        "/v1/existence-queries",
        headers=_auth(tokens["334"]),
        json={
            "recipient": "336",
            "given_name": "Kacper",
            "family_name": "Nowak",
            "date_of_birth": "2012-07-09",
            "upn": "J336203317005",
            "safeguarding_approver": "Solihull MASH manager",
            "safeguarding_reason": "sibling at risk",
        },
    )
    assert r.status_code == 202, r.text
    query = r.json()["message_id"]
    pump(gw)
    answer = client.get(f"/v1/existence-queries/{query}", headers=_auth(tokens["334"])).json()
    assert answer["answer"].startswith("match=true; coordinator=Wolverhampton CAF Co-ordinator")
    refused = client.post(
        "/v1/existence-queries",
        headers=_auth(tokens["334"]),
        json={"recipient": "336", "given_name": "Kacper", "family_name": "Nowak"},
    )
    assert refused.status_code == 422 and refused.json()["rule"] == "consent.existence-check"
