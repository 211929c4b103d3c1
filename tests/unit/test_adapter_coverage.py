"""Every field the samples carry is either mapped or deliberately ignored by its mapping YAML."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from adapters.codelists import FieldCoverage
from adapters.sandwell import mapping as sandwell_mapping
from adapters.wolverhampton import mapping as wolverhampton_mapping

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
MAPPINGS = ROOT / "config" / "adapters"
EHM = DATA / "wolverhampton-336" / "ehm-export-2026-10-01.json"
FWI = DATA / "sandwell-333" / "fwi-forms-20261005.xml"


def json_paths(value: object, path: str = "") -> Iterator[str]:
    """Dotted key paths of every leaf, list indices collapsed to ``[]``."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for item in value:
            yield from json_paths(item, f"{path}[]")
    else:
        yield path


def xml_step(element: etree._Element) -> str:
    if element.tag == "Field":
        return f"Field[@name='{element.get('name')}']"
    if element.tag == "Q":
        return f"Q[@code='{element.get('code')}']"
    return str(element.tag)


def xml_paths(element: etree._Element, parent: str = "") -> Iterator[str]:
    """Element paths with text, attribute paths, Field/Q steps keyed by name/code."""
    path = f"{parent}/{xml_step(element)}" if parent else str(element.tag)
    if element.text and element.text.strip():
        yield path
    for key in element.attrib:
        name = str(key)
        if (element.tag, name) not in (("Field", "name"), ("Q", "code")):
            yield f"{path}/@{name}"
    for child in element:
        yield from xml_paths(child, path)


def ehm_coverage() -> FieldCoverage:
    return wolverhampton_mapping.load_settings(MAPPINGS / "wolverhampton-json.yaml").coverage


def fwi_coverage() -> FieldCoverage:
    return sandwell_mapping.load_settings(MAPPINGS / "sandwell-xml.yaml").coverage


def test_every_wolverhampton_sample_field_is_mapped_or_ignored() -> None:
    paths = set(json_paths(json.loads(EHM.read_bytes())))
    assert len(paths) > 60
    coverage = ehm_coverage()
    assert sorted(p for p in paths if not coverage.covers(p)) == []


def test_every_sandwell_sample_field_is_mapped_or_ignored() -> None:
    paths = set(xml_paths(etree.parse(str(FWI)).getroot()))
    assert "FWIExport/Form/Subject/Field[@name='NHSNO']" in paths
    assert "FWIExport/Form/Answers/Q[@code='DEV.EDU']/@score" in paths
    coverage = fwi_coverage()
    assert sorted(p for p in paths if not coverage.covers(p)) == []


def test_every_wolverhampton_dimension_name_is_in_the_code_list() -> None:
    codes = wolverhampton_mapping.load_settings(MAPPINGS / "wolverhampton-json.yaml").codes
    for episode in json.loads(EHM.read_bytes())["episodes"]:
        for name in episode["assessment"]["dimensions"]:
            assert codes.dimension.decode(name) is not None, name


def test_every_sandwell_question_code_is_in_a_code_list() -> None:
    codes = sandwell_mapping.load_settings(MAPPINGS / "sandwell-xml.yaml").codes
    for q in etree.parse(str(FWI)).getroot().iter("Q"):
        code = q.get("code") or ""
        assert codes.question.decode(code) or codes.summary.decode(code), code


@pytest.mark.parametrize("coverage", [ehm_coverage, fwi_coverage], ids=["ehm", "fwi"])
def test_no_field_is_both_mapped_and_ignored_and_each_says_why(coverage: object) -> None:
    assert callable(coverage)
    fields: FieldCoverage = coverage()
    assert not set(fields.mapped) & set(fields.ignored)
    assert all(note.strip() for note in (*fields.mapped.values(), *fields.ignored.values()))


def test_a_field_missing_from_the_mapping_is_caught() -> None:
    document = json.loads(EHM.read_bytes())
    document["episodes"][0]["child"]["shoeSize"] = 4
    coverage = ehm_coverage()
    assert [p for p in json_paths(document) if not coverage.covers(p)] == [
        "episodes[].child.shoeSize"
    ]
