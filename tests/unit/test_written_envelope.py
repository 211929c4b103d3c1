"""An outbound Envelope written in C14N and parsed (``codec.written_envelope``) is the
Envelope lxml builds element by element, and carries the same content digest.

The signature covers the Envelope's C14N; the content digest decides which local
records are the same. Both must be what they were when the element was built
with lxml, for every message type, and where the canonical writer steps aside
(text XML cannot carry), signing must give lxml's answer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import cast

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree
from support.gateways import memory_gateway

from gateway.envelope.codec import (
    body_octets,
    element_to_envelope,
    envelope_to_element,
    written_envelope,
)
from gateway.envelope.codec.canonical import NotPlain
from gateway.errors import SchemaError
from gateway.model import (
    BODY_TYPE,
    Assessment,
    Envelope,
    Notification,
)
from gateway.outbox import content_digest
from tests.unit.test_canonical_body import awkward_notification
from tests.unit.test_codec import ENVELOPES, EXAMPLES, _load, _minimal_assessment


def _c14n(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, method="c14n", exclusive=True))


def _assert_same_as_lxml(env: Envelope) -> None:
    root, body = written_envelope(env)
    assert _c14n(root) == _c14n(envelope_to_element(env))
    assert body == body_octets(env.body)
    assert element_to_envelope(root) == env


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_envelope_is_the_one_lxml_builds_with_the_same_body_octets(
    path: Path,
) -> None:
    _assert_same_as_lxml(element_to_envelope(_load(path)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ENVELOPES)
def test_random_envelopes_of_every_type_are_the_ones_lxml_builds(env: Envelope) -> None:
    _assert_same_as_lxml(env)


def test_text_and_attributes_needing_escapes_come_back_as_they_were_written() -> None:
    body = awkward_notification()
    header = element_to_envelope(_load(EXAMPLES[0])).header
    header = dataclasses.replace(
        header, correlation_id="c&<>\r1", message_type=BODY_TYPE[Notification]
    )
    _assert_same_as_lxml(Envelope(header, body))


def test_text_xml_cannot_carry_is_left_to_lxml_whose_error_names_the_element(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332",))
    template = element_to_envelope(_load(EXAMPLES[0]))
    header = dataclasses.replace(
        template.header, sender="332", recipient="336", message_type=BODY_TYPE[Assessment]
    )
    env = Envelope(header, _minimal_assessment(strengths="bell\x07"))
    with pytest.raises(NotPlain):
        written_envelope(env)
    with pytest.raises(SchemaError, match="/Assessment/Strengths"):
        gw.outbox.sign(env)


def test_bytes_as_text_are_left_to_lxml_and_signed_as_the_same_text(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path, ("332",))
    template = element_to_envelope(_load(EXAMPLES[0]))
    header = dataclasses.replace(
        template.header, sender="332", recipient="336", message_type=BODY_TYPE[Assessment]
    )
    env = Envelope(header, _minimal_assessment(strengths=cast(str, b"R&D <ok>")))
    with pytest.raises(NotPlain):
        written_envelope(env)
    signed = gw.outbox.sign(env)
    as_text = Envelope(header, _minimal_assessment(strengths="R&D <ok>"))
    assert signed.content_digest == content_digest(as_text.body)
    assert element_to_envelope(gw.verifier.verify(signed.body or b"").root) == as_text


def test_a_signed_message_carries_the_content_digest_of_its_body(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path, ("332",))
    template = element_to_envelope(_load(EXAMPLES[0]))
    header = dataclasses.replace(
        template.header, sender="332", recipient="336", message_type=BODY_TYPE[Assessment]
    )
    env = Envelope(header, _minimal_assessment(strengths="R&D <ok>"))
    signed = gw.outbox.sign(env)
    assert signed.content_digest == content_digest(env.body)
    assert element_to_envelope(gw.verifier.verify(signed.body).root) == env


def test_an_envelope_the_parser_will_not_take_is_left_to_lxml(tmp_path: Path) -> None:
    # libxml2 takes no text node past 10 MB without huge_tree: an outbound message
    # that large is written by lxml, as before, not failed with the parser's error.
    gw = memory_gateway(tmp_path, ("332",))
    template = element_to_envelope(_load(EXAMPLES[0]))
    header = dataclasses.replace(
        template.header, sender="332", recipient="336", message_type=BODY_TYPE[Assessment]
    )
    env = Envelope(header, _minimal_assessment(strengths="x" * 10_000_001))
    with pytest.raises(NotPlain):
        written_envelope(env)
    signed = gw.outbox.sign(env)
    assert signed.content_digest == content_digest(env.body)
    assert signed.body is not None and b"x" * 10_000_001 in signed.body
