"""The recall faces: the API recalls, corrects, lists outcomes and says "not ours";
another authority's message is a 404; the CLI shows the outcome per recipient."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from policy_support import envelope_of, pump
from retention_support import Clock, dudley_shared, region

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.envelope.codec import body_to_element
from gateway.ledger.status import Direction
from gateway.model import Assessment

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, dict[str, str], Gateway]:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    tokens = {code: keys.issue(code) for code in ("332", "333", "336")}
    return TestClient(create_app(gw, keys)), tokens, gw


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sent(gw: Gateway, recipient: str) -> str:
    return next(
        r.message_id
        for r in gw.ledger.find(authority="332", direction=Direction.OUTBOUND, limit=200)
        if r.recipient == recipient and r.message_type == "Assessment"
    )


def test_recall_through_the_api_shows_the_outcome_per_recipient(setup: tuple) -> None:
    client, tokens, gw = setup
    original = _sent(gw, "333")
    r = client.post(
        f"/v1/messages/{original}/recall",
        json={"reason": "MISDIRECTED", "explanation": "wrong authority"},
        headers=_auth(tokens["332"]),
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "SIGNED" and r.json()["recipient"] == "333"
    before = client.get(f"/v1/messages/{original}/recalls", headers=_auth(tokens["332"])).json()
    assert before[0]["outcome"] is None and "waiting" in before[0]["summary"]
    pump(gw)
    after = client.get("/v1/recalls", headers=_auth(tokens["332"])).json()
    assert [(o["original_id"], o["recipient"], o["outcome"]) for o in after] == [
        (original, "333", "DELIVERED")
    ]
    other = client.post(
        f"/v1/messages/{original}/recall",
        json={"reason": "OTHER"},
        headers=_auth(tokens["336"]),
    )
    assert other.status_code == 404


def test_a_correction_is_posted_as_the_corrected_body_and_refused_with_its_rule(
    setup: tuple,
) -> None:
    client, tokens, gw = setup
    original = _sent(gw, "336")
    [record] = gw.ledger.find(message_id=original, authority="332")
    env = envelope_of(gw, record)
    assert env is not None and isinstance(env.body, Assessment)
    xml = etree.tostring(body_to_element(replace(env.body, needs="GP review")))
    r = client.post(
        f"/v1/messages/{original}/correction",
        params={"explanation": "needs were wrong"},
        content=xml,
        headers=_auth(tokens["332"]),
    )
    assert r.status_code == 202, r.text
    receipt = next(
        m.message_id
        for m in gw.ledger.find(authority="332", direction=Direction.OUTBOUND, limit=200)
        if m.message_type == "Receipt"
    )
    refused = client.post(
        f"/v1/messages/{receipt}/correction",
        params={"explanation": "x"},
        content=xml,
        headers=_auth(tokens["332"]),
    )
    assert refused.status_code == 422 and refused.json()["rule"] == "recall.not-recallable"


def test_not_ours_through_the_api(setup: tuple) -> None:
    client, tokens, gw = setup
    original = _sent(gw, "333")
    r = client.post(f"/v1/inbox/{original}/not-ours", headers=_auth(tokens["333"]))
    assert r.status_code == 202, r.text
    assert r.json()["sender"] == "332" and r.json()["already_said"] is False
    again = client.post(f"/v1/inbox/{original}/not-ours", headers=_auth(tokens["333"]))
    assert again.status_code == 202, again.text
    assert again.json()["already_said"] is True
    assert again.json()["notice_id"] == r.json()["notice_id"]
    assert re.fullmatch(r".* \(for 333, key [0-9a-f]+\)", again.json()["said_by"])
    assert (
        client.post(f"/v1/inbox/{original}/not-ours", headers=_auth(tokens["336"])).status_code
        == 404
    )
    pump(gw)
    found = client.get(f"/v1/messages/{original}/recalls", headers=_auth(tokens["332"])).json()
    assert [o["reason"] for o in found] == ["MISDIRECTED"]


def test_the_dashboard_piece_for_recalls_is_served_and_reads_the_recalls_endpoint(
    setup: tuple,
) -> None:
    client, _, _ = setup
    r = client.get("/dashboard/static/recalls.js")
    assert r.status_code == 200
    assert "/v1/recalls" in r.text and "innerHTML" not in r.text
