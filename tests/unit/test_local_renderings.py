"""Every message type has a documented local rendering, chosen per authority in
authorities.yaml: GET /v1/inbox?format=local serves it, and the JSON form reads back
into exactly the message that was signed."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from lxml import etree
from pydantic import ValidationError
from support.gateways import memory_gateway

from gateway import model_json
from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.model import Envelope, MessageType
from gateway.settings import Authority
from tests.unit.test_codec import ENVELOPES

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]


def parse(data: bytes) -> etree._Element:
    return xmlsafe.parse(data, max_bytes=10_000_000, max_depth=100)


EXAMPLES = {
    element_to_envelope(parse(p.read_bytes())).header.message_type.value: p
    for p in sorted((ROOT / "schemas" / "examples").glob("*.xml"))
}
INBOX_TYPES = sorted(t for t in EXAMPLES if t != MessageType.RECEIPT.value)


def _receive(gw: Gateway, authority: str, data: bytes) -> Envelope:
    """``data`` recorded as received and verified for ``authority`` (in its inbox)."""
    env = element_to_envelope(parse(data))
    gw.ledger.record(
        [
            NewMessage(
                message_id=str(uuid.uuid4()),
                direction=Direction.INBOUND,
                authority=authority,
                sender=env.header.sender,
                recipient=authority,
                message_type=env.header.message_type.value,
                correlation_id=env.header.correlation_id,
                legal_basis=env.header.legal_basis.value,
                statuses=((Status.RECEIVED, None), (Status.VERIFIED, None)),
                body=data,
            )
        ]
    )
    return env


def _pull(gw: Gateway, authority: str) -> list[dict[str, Any]]:
    keys = ApiKeys(gw.settings.api_keys_file)
    client = TestClient(create_app(gw, keys))
    got = client.get(
        "/v1/inbox",
        params={"format": "local", "limit": "100"},
        headers={"Authorization": f"Bearer {keys.issue(authority)}"},
    )
    assert got.status_code == 200, got.text
    return list(got.json())


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    return memory_gateway(tmp_path, ("334", "336"))


@pytest.mark.parametrize("message_type", INBOX_TYPES)
def test_each_message_type_round_trips_through_the_inbox_in_its_json_form(
    gw: Gateway, message_type: str
) -> None:
    # Solihull (334) has no adapter: every type comes in the documented JSON form.
    sent = _receive(gw, "334", EXAMPLES[message_type].read_bytes())
    (item,) = _pull(gw, "334")
    assert item["format"] == "local" and item["message_type"] == message_type
    assert item["content_type"] == "application/json; charset=utf-8"
    assert base64.b64decode(item["content_base64"]).decode("utf-8") == item["content"]
    form = json.loads(item["content"])
    assert form["format"] == "cafgw-local-json/1" and form["message_type"] == message_type
    assert form["message_id"] == sent.header.message_id
    assert form["sender"] == sent.header.sender
    assert model_json.decode_body(message_type, form["body"]) == sent.body


def test_a_type_the_authoritys_format_has_a_place_for_comes_in_that_format(
    gw: Gateway,
) -> None:
    # Wolverhampton (336) has the EHM JSON adapter: assessments and recall notices in it,
    # everything else in the JSON form.
    for kind in ("Assessment", "Recall", "ConsentChange", "Dispute"):
        _receive(gw, "336", EXAMPLES[kind].read_bytes())
    served = {i["message_type"]: i for i in _pull(gw, "336")}
    assert "episodes" in json.loads(served["Assessment"]["content"])
    assert json.loads(served["Recall"]["content"])["cafgwNotice"]["notice"] == "RECALLED"
    for kind in ("ConsentChange", "Dispute"):
        assert json.loads(served[kind]["content"])["format"] == "cafgw-local-json/1"


def test_an_authority_chooses_each_types_rendering_in_authorities_yaml(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("334", "336"))
    directory = gw.settings.directory
    chosen = directory.authorities["336"].model_copy(
        update={"local_formats": {"Assessment": "json", "Notification": "canonical"}}
    )
    changed = directory.model_copy(update={"authorities": {**directory.authorities, "336": chosen}})
    gw.reconfigure(
        gw.settings.model_copy(update={"directory": changed}), gw.adapters, gw.verifier.trust
    )
    for kind in ("Assessment", "Notification"):
        _receive(gw, "336", EXAMPLES[kind].read_bytes())
    served = {i["message_type"]: i for i in _pull(gw, "336")}
    assert json.loads(served["Assessment"]["content"])["format"] == "cafgw-local-json/1"
    notification = served["Notification"]
    assert notification["format"] == "canonical"
    assert "local_formats" in notification["note"]
    assert etree.fromstring(notification["content"].encode()).tag.endswith("Envelope")


def test_a_rendering_the_authority_cannot_have_is_refused_when_the_directory_is_read() -> None:
    base: dict[str, Any] = {
        "code": "334",
        "name": "Solihull",
        "coordinator": {"name": "c"},
        "line_manager": {"name": "m"},
    }
    with pytest.raises(ValidationError, match=r"local_formats\.Dispute: an adapter writes only"):
        Authority(**base, adapter="wolverhampton-json", local_formats={"Dispute": "adapter"})
    with pytest.raises(ValidationError, match="adapter, but the authority has none"):
        Authority(**base, local_formats={"Assessment": "adapter"})
    with pytest.raises(ValidationError, match=r"local_formats\.Memo: not a message type"):
        Authority(**base, local_formats={"Memo": "json"})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ENVELOPES)
def test_the_json_form_of_any_valid_message_reads_back_to_the_same_body(env: Envelope) -> None:
    form = json.loads(json.dumps(model_json.envelope_form(env)))
    assert model_json.decode_body(form["message_type"], form["body"]) == env.body
