"""Decoding takes an element's children by local name (``codec.xml.Fields``), with the
local names it has met kept by tag: what it refuses, it refuses every time, and a
peer's document cannot grow that memory without bound."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from gateway.envelope.codec import element_to_envelope
from gateway.envelope.codec import xml as codec_xml
from gateway.errors import SchemaError

EXAMPLE = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "assessment.xml"
NS = "urn:caf-exchange:1"


def _example() -> etree._Element:
    return etree.parse(str(EXAMPLE), etree.XMLParser(resolve_entities=False)).getroot()


def _child_of_body(name: str) -> etree._Element:
    """The example Assessment with one more element, ``name`` (a Clark name), in its body."""
    root = _example()
    body = root[1]
    body.insert(1, etree.Element(name))
    return root


@pytest.mark.parametrize("attempt", [1, 2])
def test_an_element_of_another_namespace_is_refused_naming_it_every_time(attempt: int) -> None:
    with pytest.raises(SchemaError, match="unexpected namespace"):
        element_to_envelope(_child_of_body("{urn:not-ours}CaseRef"))


@pytest.mark.parametrize("attempt", [1, 2])
def test_an_element_given_twice_is_refused_every_time(attempt: int) -> None:
    with pytest.raises(SchemaError, match="only once"):
        element_to_envelope(_child_of_body(f"{{{NS}}}CaseRef"))


def test_a_comment_among_the_children_is_passed_over() -> None:
    root = _example()
    root[1].insert(1, etree.Comment("a note"))
    assert element_to_envelope(root) == element_to_envelope(_example())


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The names kept, empty for this test and the process's own again after it."""
    kept: dict[str, str] = {}
    monkeypatch.setattr(codec_xml, "_LOCAL_NAMES", kept)
    return kept


def test_names_a_peer_makes_up_are_refused_and_the_names_kept_stay_bounded(
    names: dict[str, str],
) -> None:
    root = _example()
    body = root[1]
    for n in range(3 * codec_xml._LOCAL_NAMES_MAX):
        body.append(etree.Element(f"{{{NS}}}Made{n}"))
    with pytest.raises(SchemaError, match="unexpected element"):
        element_to_envelope(root)
    assert len(names) == codec_xml._LOCAL_NAMES_MAX
    assert element_to_envelope(_example()).body is not None  # known names still read


def test_a_long_name_a_peer_makes_up_is_refused_and_not_kept(names: dict[str, str]) -> None:
    long_name = "N" * 40_000  # libxml2 takes names up to 50,000 bytes
    with pytest.raises(SchemaError, match="unexpected element"):
        element_to_envelope(_child_of_body(f"{{{NS}}}{long_name}"))
    assert names and all(len(name) <= codec_xml._LOCAL_NAME_MAX_CHARS for name in names.values())
