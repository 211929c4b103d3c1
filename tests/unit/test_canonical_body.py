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
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from gateway.envelope.codec import body_octets, body_to_element, element_to_envelope
from gateway.envelope.codec.canonical import Canonical, NotPlain
from gateway.errors import SchemaError
from gateway.model import (
    NAMESPACE,
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
NSMAP: Any = {None: NAMESPACE}


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


def awkward_notification() -> Notification:
    """A body whose text and attributes need every escape C14N has."""
    awkward = "a & b < c > d \"e\" 'f' \t tab \n line \r return ]]> done"
    return Notification(
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


def test_text_and_attributes_needing_escapes_are_written_as_lxml_writes_them() -> None:
    body = awkward_notification()
    assert body_octets(body) == _lxml_octets(body)
    assert content_digest(body) == digest(_lxml_octets(body))


def test_every_code_point_is_written_as_lxml_writes_it_or_left_to_lxml() -> None:
    # As text, as the text of a leaf taken back (``[-1]``) and in attributes: the
    # two writers accept the same characters and write them to the same octets,
    # so a record lxml would refuse can never get a digest instead of an error.
    def lxml_octets(s: str) -> bytes:
        root = etree.Element(NS + "R", nsmap=NSMAP)
        child = etree.SubElement(root, NS + "C")
        child.text = s
        child.set("a", s)
        child.set("b", "x" + s)
        etree.SubElement(root, NS + "D").text = s
        return bytes(etree.tostring(root, method="c14n"))

    def canonical_octets(s: str) -> bytes:
        root = Canonical("R")
        root.leaf("C", s)
        child = root[-1]
        child.set("a", s)
        child.set("b", "x" + s)
        root.leaf("D", s)
        return root.octets()

    def points(start: int, stop: int) -> list[str]:
        # A run of code points at once; each point alone where the run is refused.
        run = "".join(map(chr, range(start, stop)))
        try:
            lxml_octets(run)
            canonical_octets(run)
        except (ValueError, TypeError, NotPlain):
            return [chr(p) for p in range(start, stop)]
        return [run]

    differ, only_canonical = [], []
    for s in (t for start in range(0, 0x110000, 256) for t in points(start, start + 256)):
        try:
            ours: bytes | None = canonical_octets(s)
        except NotPlain:
            ours = None
        try:
            theirs: bytes | None = lxml_octets(s)
        except (ValueError, TypeError):
            theirs = None
        if ours is not None and theirs is None:
            only_canonical.append(s)
        elif ours is not None and ours != theirs:
            differ.append(s)
    assert (differ, only_canonical) == ([], [])


def test_a_writer_reading_text_back_or_using_another_lxml_api_gets_lxml_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    element = Canonical("X")
    element.text = "R&D"
    with pytest.raises(NotPlain):
        _ = element.text
    body = _minimal_assessment(strengths="R&D")
    expected = digest(_lxml_octets(body))

    def reads_back(body: Body) -> bytes:
        raise AttributeError("'Canonical' object has no attribute 'attrib'")

    monkeypatch.setattr("gateway.outbox.body_octets", reads_back)
    assert content_digest(body) == expected


def test_text_left_to_lxml_is_not_carried_into_the_error() -> None:
    # The record's text must not reach a logged traceback through the fallback.
    with pytest.raises(SchemaError) as info:
        content_digest(_minimal_assessment(strengths="Jane Doe\x07"))
    chain = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(repr(exc.args))
        exc = exc.__cause__ or exc.__context__
    assert not any("Jane" in part for part in chain[1:])


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


def test_a_value_that_is_not_a_str_is_left_to_lxml_by_every_writing_primitive() -> None:
    # The patterns match text only: bytes raised TypeError, which no fallback caught.
    element = Canonical("X")
    with pytest.raises(NotPlain, match="bytes is not text"):
        element.leaf("Y", cast(str, b"R&D"))
    with pytest.raises(NotPlain, match="bytes is not text"):
        element.set("y", cast(str, b"R&D"))
    with pytest.raises(NotPlain, match="int is not text"):
        element.text = cast(str, 7)


def test_ascii_bytes_as_text_get_the_digest_lxml_gives_them() -> None:
    # No field of the model is bytes; a writer handed some gets lxml's answer, which
    # takes ASCII bytes as the same text.
    body = _minimal_assessment(strengths=cast(str, b"R&D <ok>"))
    assert content_digest(body) == digest(_lxml_octets(body))
    assert content_digest(body) == content_digest(_minimal_assessment(strengths="R&D <ok>"))


def test_bytes_lxml_refuses_as_text_give_the_schema_error_naming_the_element() -> None:
    with pytest.raises(SchemaError, match="/Assessment/Strengths"):
        content_digest(_minimal_assessment(strengths=cast(str, b"caf\xc3\xa9")))


def test_text_xml_cannot_carry_still_gives_a_schema_error_naming_the_element() -> None:
    with pytest.raises(SchemaError, match="/Assessment/Strengths"):
        content_digest(_minimal_assessment(strengths="bell\x07"))


def test_a_writer_s_own_refusal_still_names_the_element() -> None:
    # A datetime without an offset is refused by the writer itself, not by lxml.
    meeting = TacMeeting(held_on=datetime(2026, 9, 24, 8, 15))
    body = dataclasses.replace(_minimal_assessment(), tac_meetings=(meeting,))
    with pytest.raises(SchemaError, match="TacMeeting"):
        content_digest(body)
