"""Every read of a child's record is audited naming the key's holder; the disclosures
report answers who saw and who received the child's data; keys are rate-limited."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.ledger import audit
from gateway.ledger.status import Direction
from gateway.ledger.tables import messages
from tests.policy_support import DUDLEY, memory_gateway, pump, submit

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def region(tmp_path: Path) -> tuple[TestClient, ApiKeys, Gateway]:
    gw = memory_gateway(tmp_path, ("332", "333", "336"))
    submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), DUDLEY.name)
    pump(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    return TestClient(create_app(gw, keys)), keys, gw


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _child_of_assessment(gw: Gateway, authority: str) -> str:
    query = select(messages.c.child_key).where(
        messages.c.authority == authority,
        messages.c.direction == Direction.INBOUND.value,
        messages.c.message_type == "Assessment",
        messages.c.child_key.is_not(None),
    )
    with gw.ledger.transaction() as conn:
        return str(conn.execute(query).scalars().first())


def test_pulling_the_inbox_records_who_read_which_childs_record(region: tuple) -> None:
    client, keys, gw = region
    key = keys.issue("336", holder="Priya Shah", holder_role="case system operator")
    served = client.get("/v1/inbox?format=local", headers=_auth(key))
    assert served.status_code == 200, served.text
    reads = [e for e in audit.entries(gw.ledger, "336") if e.event.action == "READ"]
    assert {e.event.message_id for e in reads} == {i["message_id"] for i in served.json()}
    assessment = next(i for i in served.json() if i["message_type"] == "Assessment")
    (read,) = [e for e in reads if e.event.message_id == assessment["message_id"]]
    assert read.event.actor.startswith("Priya Shah (case system operator, for 336")
    assert read.event.detail == "inbox (local format)"
    assert read.event.child_key == _child_of_assessment(gw, "336")
    assert read.event.counterparty == "332"
    assert audit.verify(gw.ledger) == []


def test_the_disclosures_report_names_who_received_and_who_saw_the_child(region: tuple) -> None:
    client, keys, gw = region
    child = _child_of_assessment(gw, "336")
    reader = keys.issue("336", holder="Priya Shah", holder_role="CAF coordinator")
    assert client.get(f"/v1/children/{child}/consent", headers=_auth(reader)).status_code in (
        200,
        404,
    )
    assert client.get("/v1/inbox", headers=_auth(reader)).status_code == 200
    # At Dudley, who received the child's assessment: Wolverhampton and Sandwell.
    dudley = keys.issue("332", holder="Sam Patel", holder_role="CAF coordinator")
    sent = client.get(f"/v1/children/{child}/disclosures", headers=_auth(dudley))
    assert sent.status_code == 200, sent.text
    received = {(e["counterparty"], e["action"]) for e in sent.json()["received"]}
    assert {("336", "DISCLOSURE"), ("333", "DISCLOSURE")} <= received
    # At Wolverhampton, who saw it: the key holder who pulled the inbox.
    seen = client.get(f"/v1/children/{child}/disclosures", headers=_auth(reader)).json()["seen"]
    assert any(e["actor"].startswith("Priya Shah (CAF coordinator") and e["detail"] == "inbox"
               for e in seen)  # fmt: skip
    # and that the report itself was read (a read of the child's data too)
    assert any(e["detail"] == "disclosures" for e in seen)
    # Another authority's key learns nothing about Wolverhampton's readers.
    other = client.get(f"/v1/children/{child}/disclosures", headers=_auth(dudley)).json()
    assert not any("Priya" in e["actor"] for e in other["seen"])


def test_a_key_over_its_rate_gets_429_with_retry_after(region: tuple) -> None:
    client, keys, _ = region
    key = keys.issue("336", holder="Busy script", holder_role="service", rate_per_minute=3)
    calm = keys.issue("336", holder="Someone else", holder_role="coordinator")
    for _ in range(3):
        assert client.get("/v1/messages", headers=_auth(key)).status_code == 200
    refused = client.get("/v1/messages", headers=_auth(key))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "3 requests per minute" in refused.json()["detail"]
    # the limit is per key: another holder is not slowed down
    assert client.get("/v1/messages", headers=_auth(calm)).status_code == 200


def test_an_expired_or_unknown_key_is_401(region: tuple) -> None:
    client, keys, _ = region
    issued = keys.issue_key("336", holder="Jo", holder_role="x")
    keys.revoke(issued.record.key_id, "test")
    refused = client.get("/v1/inbox", headers=_auth(issued.key))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
