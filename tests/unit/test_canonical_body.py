"""A body written straight to C14N (``codec.canonical``) is byte for byte what lxml writes.

The content digest (``outbox.content_digest``) decides which local records
are the same; received records are digested with the canonical writer, and
every digest already in a ledger was taken from lxml's tree. The two writings
must never differ, and where the canonical writer steps aside (text XML cannot
carry), the answer must be lxml's.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from gateway.envelope.codec import body_octets, body_to_element, element_to_envelope
from gateway.envelope.codec.canonical import Canonical, NotPlain
from gateway.errors import SchemaError
from gateway.model import (
    Body,
    Child,
    Detail,
    Envelope,
    Identifier,
    Notification,
    NotificationType,
    TacMeeting,
)
from gateway.outbox import content_digest, digest
from tests.unit.test_codec import ENVELOPES, EXAMPLES, _load, _minimal_assessment

NS = "{urn:caf-exchange:1}"


def _lxml_octets(body: Body) -> bytes:
    return bytes(etree.tostring(body_to_element(body), method="c14n"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_body_is_written_to_the_same_octets_as_lxml_writes(path: Path) -> None:
    body = element_to_envelope(_load(path)).body
    assert body_octets(body) == _lxml_octets(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ENVELOPES)
def test_random_bodies_of_every_type_are_written_to_the_same_octets_as_lxml_writes(
    env: Envelope,
) -> None:
    assert body_octets(env.body) == _lxml_octets(env.body)


def test_text_and_attributes_needing_escapes_are_written_as_lxml_writes_them() -> None:
    awkward = "a & b < c > d \"e\" 'f' \t tab \n line \r return ]]> done"
    body = Notification(
        type=NotificationType.SERVICE_GAP,
        case_ref="R&D<1>",
        summary=awkward,
        child=Child(
            given_name=awkward,
            family_name="O’Neill 😀",
            identifiers=(Identifier(scheme='x&<"\t\n\r>', value=awkward),),
        ),
        details=(Detail(name=awkward, value=awkward), Detail(name="", value="")),
    )
    assert body_octets(body) == _lxml_octets(body)
    assert content_digest(body) == digest(_lxml_octets(body))


def test_every_character_the_canonical_writer_takes_lxml_takes_too() -> None:
    # Otherwise a record lxml would refuse could get a digest instead of an error.
    element = etree.Element(NS + "X")
    canonical = Canonical("X")
    for point in [*range(0x10000), 0x10000, 0x1F600, 0x10FFFF]:
        char = chr(point)
        try:
            canonical.text = char
            canonical.set("a", char)
        except NotPlain:
            continue
        element.text = char  # raises ValueError if lxml refuses it
        element.set("a", char)


@pytest.mark.parametrize("text", ["bell\x07", "nul\x00", "\ufffe", "\udc80"])
def test_text_the_canonical_writer_leaves_to_lxml_gets_lxml_s_answer(text: str) -> None:
    body = _minimal_assessment(strengths=text)
    try:
        expected = digest(_lxml_octets(body))
    except (SchemaError, ValueError) as exc:
        with pytest.raises(type(exc)):
            content_digest(body)
        return
    assert content_digest(body) == expected


def test_text_xml_cannot_carry_still_gives_a_schema_error_naming_the_element() -> None:
    with pytest.raises(SchemaError, match="/Assessment/Strengths"):
        content_digest(_minimal_assessment(strengths="bell\x07"))


def test_a_writer_s_own_refusal_still_names_the_element() -> None:
    # A datetime without an offset is refused by the writer itself, not by lxml.
    meeting = TacMeeting(held_on=datetime(2026, 9, 24, 8, 15))
    body = dataclasses.replace(_minimal_assessment(), tac_meetings=(meeting,))
    with pytest.raises(SchemaError, match="TacMeeting"):
        content_digest(body)
