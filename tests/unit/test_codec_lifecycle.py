"""The lifecycle bodies' codec: what the examples say, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from gateway.envelope.codec import element_to_envelope, envelope_to_bytes
from gateway.envelope.schema import SchemaValidator
from gateway.errors import SchemaError
from gateway.model import (
    ActionTaken,
    Correction,
    ErasureGround,
    ErasureRequest,
    Notification,
    Recall,
    RecallReason,
    Receipt,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "schemas" / "examples"
NS = "{urn:caf-exchange:1}"


def _root(name: str) -> etree._Element:
    return etree.parse(str(EXAMPLES / name), etree.XMLParser(resolve_entities=False)).getroot()


def test_the_recall_example_names_the_original_by_id_and_digest() -> None:
    body = element_to_envelope(_root("recall.xml")).body
    assert isinstance(body, Recall)
    assert body.original.message_id == "3f6c2a9e-5b1d-4c8e-9a7f-0d2e4b6a8c10"
    assert body.reason == RecallReason.MISDIRECTED and body.follows is None


def test_the_correction_example_carries_the_whole_replacement() -> None:
    body = element_to_envelope(_root("correction.xml")).body
    assert isinstance(body, Correction) and isinstance(body.replacement, Notification)
    assert body.replacement.child is not None
    assert str(body.replacement.child.date_of_birth) == "2014-03-14"


def test_an_erasure_request_lists_every_message_and_refuses_none() -> None:
    root = _root("erasure-request.xml")
    body = element_to_envelope(root).body
    assert isinstance(body, ErasureRequest) and body.ground == ErasureGround.CONSENT_WITHDRAWN
    assert len(body.messages) == 2
    request = root.find(f"{NS}ErasureRequest")
    assert request is not None
    for message in request.findall(f"{NS}Message"):
        request.remove(message)
    with pytest.raises(SchemaError, match="Message"):
        element_to_envelope(root)


def test_a_correction_with_two_replacements_is_refused_by_the_schema_and_the_codec() -> None:
    root = _root("correction.xml")
    holder = root.find(f"{NS}Correction/{NS}Replacement")
    assert holder is not None
    holder.append(etree.fromstring(etree.tostring(holder[0])))
    with pytest.raises(SchemaError):
        SchemaValidator().validate(root)
    with pytest.raises(SchemaError, match="exactly one body"):
        element_to_envelope(root)


def test_a_receipt_item_can_say_what_was_done_and_when_it_was_handed_over() -> None:
    env = element_to_envelope(_root("receipt.xml"))
    assert isinstance(env.body, Receipt)
    text = envelope_to_bytes(env).replace(
        b"<Outcome>ACCEPTED</Outcome>",
        b"<Outcome>ACCEPTED</Outcome><Action>PASSED_ON</Action>"
        b"<HandedOverAt>2026-09-24T08:20:11Z</HandedOverAt>",
    )
    root = etree.fromstring(text)
    SchemaValidator().validate(root)
    item = element_to_envelope(root).body.items[0]  # type: ignore[union-attr]
    assert item.action == ActionTaken.PASSED_ON and item.handed_over_at is not None
