"""The canonical XSD: examples validate everywhere, bad documents are named precisely."""

from __future__ import annotations

import enum
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from lxml import etree

import gateway.model as model
from gateway.envelope.schema import SCHEMA_PATH, SchemaValidator
from gateway.errors import ConfigError, SchemaError

ROOT = Path(__file__).resolve().parents[2]
XSD = ROOT / "schemas" / "caf-exchange-1.xsd"
EXAMPLES = sorted((ROOT / "schemas" / "examples").glob("*.xml"))
NS = "{urn:caf-exchange:1}"
XS = "{http://www.w3.org/2001/XMLSchema}"
DS = "http://www.w3.org/2000/09/xmldsig#"

VALIDATOR = SchemaValidator()
needs_xmllint = pytest.mark.skipif(shutil.which("xmllint") is None, reason="xmllint not installed")


def _load(name: str) -> etree._Element:
    path = ROOT / "schemas" / "examples" / name
    return etree.parse(str(path), etree.XMLParser(resolve_entities=False)).getroot()


def _xmllint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["xmllint", "--noout", "--nonet", "--schema", str(XSD), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_schema_path_is_the_xsd_of_the_repository() -> None:
    assert SCHEMA_PATH == XSD
    assert XSD.is_file()


def test_there_is_an_example_of_every_body() -> None:
    assert {p.name for p in EXAMPLES} == {
        "assessment.xml",
        "consent-change.xml",
        "notification.xml",
        "dispute.xml",
        "issue-log-entry.xml",
        "evaluation.xml",
        "receipt.xml",
        "recall.xml",
        "correction.xml",
        "access-notice.xml",
        "erasure-request.xml",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_with_lxml(path: Path) -> None:
    VALIDATOR.validate(_load(path.name))


@needs_xmllint
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_with_xmllint(path: Path) -> None:
    result = _xmllint(path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_with_xmlschema(path: Path) -> None:
    assert VALIDATOR.explain(path.read_bytes()) == []


def test_every_code_list_of_the_model_is_an_enumeration_of_the_xsd() -> None:
    xsd = etree.parse(str(XSD)).getroot()
    enumerations = {
        t.get("name"): [e.get("value") for e in t.iter(f"{XS}enumeration")]
        for t in xsd.iter(f"{XS}simpleType")
        if t.find(f"{XS}restriction/{XS}enumeration") is not None
    }
    code_lists = {
        name: [m.value for m in obj]
        for name, obj in vars(model).items()
        if isinstance(obj, type)
        and issubclass(obj, enum.StrEnum)
        and obj.__module__ == model.__name__
    }
    enumerations["Element"] = enumerations.pop("ElementName")
    assert enumerations == code_lists


def test_a_signature_at_the_end_of_the_envelope_is_accepted() -> None:
    root = _load("receipt.xml")
    sig = etree.SubElement(root, f"{{{DS}}}Signature")
    etree.SubElement(sig, f"{{{DS}}}SignedInfo")
    VALIDATOR.validate(root)


# --- invalid documents -------------------------------------------------------------


def _set(path: str, value: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        el = root.find(path)
        assert el is not None, path
        el.text = value

    return change


def _drop_body(root: etree._Element) -> None:
    root.remove(root[1])


def _second_body(root: etree._Element) -> None:
    root.append(_load("issue-log-entry.xml")[1])


def _repeat_element(root: etree._Element) -> None:
    elements = root.find(f"{NS}Assessment/{NS}Elements")
    assert elements is not None
    elements.append(etree.fromstring(etree.tostring(elements[0])))


def _upn_as_local_scheme(root: etree._Element) -> None:
    ids = root.find(f"{NS}Assessment/{NS}Child/{NS}Identifiers")
    assert ids is not None
    etree.SubElement(ids, f"{NS}Identifier", scheme="UPN").text = "not-a-upn"


def _rating_five(root: etree._Element) -> None:
    element = root.findall(f"{NS}Assessment/{NS}Elements/{NS}Element")[1]
    rating = etree.Element(f"{NS}Rating")
    rating.text = "5"
    element.insert(0, rating)


def _signature_before_body(root: etree._Element) -> None:
    root.insert(1, etree.Element(f"{{{DS}}}Signature"))


INVALID = {
    "bad enum": (
        "assessment.xml",
        _set(f"{NS}Assessment/{NS}Child/{NS}Gender", "F"),
        "/Envelope/Assessment/Child/Gender",
    ),
    "bad LA code": ("receipt.xml", _set(f"{NS}Header/{NS}Sender", "33"), "/Envelope/Header/Sender"),
    "missing body": ("receipt.xml", _drop_body, "/Envelope"),
    "two bodies": ("receipt.xml", _second_body, "/Envelope/IssueLogEntry"),
    "bad UPN": (
        "assessment.xml",
        _set(f"{NS}Assessment/{NS}Child/{NS}Identifiers/{NS}UPN", "J33241201401"),
        "/Envelope/Assessment/Child/Identifiers/UPN",
    ),
    "UPN disguised as a local scheme": (
        "assessment.xml",
        _upn_as_local_scheme,
        "/Envelope/Assessment/Child/Identifiers/Identifier",
    ),
    "bad NHS number": (
        "assessment.xml",
        _set(f"{NS}Assessment/{NS}Child/{NS}Identifiers/{NS}NHS", "99900000"),
        "/Envelope/Assessment/Child/Identifiers/NHS",
    ),
    "message id not in canonical form": (
        "notification.xml",
        _set(f"{NS}Header/{NS}MessageId", "5E0F9B1C-7D2A-4E3B-8F6C-1A2B3C4D5E6F"),
        "/Envelope/Header/MessageId",
    ),
    "rating out of range": (
        "assessment.xml",
        _rating_five,
        "/Envelope/Assessment/Elements/Element[2]/Rating",
    ),
    "bad boolean": (
        "assessment.xml",
        _set(f"{NS}Assessment/{NS}Elements/{NS}Element/{NS}Concern", "maybe"),
        "/Envelope/Assessment/Elements/Element[1]/Concern",
    ),
    "instant without offset": (
        "receipt.xml",
        _set(f"{NS}Header/{NS}CreatedAt", "2026-09-24T08:15:00"),
        "/Envelope/Header/CreatedAt",
    ),
    "date with a time zone": (
        "issue-log-entry.xml",
        _set(f"{NS}IssueLogEntry/{NS}RaisedOn", "2026-10-05Z"),
        "/Envelope/IssueLogEntry/RaisedOn",
    ),
    "element assessed twice": ("assessment.xml", _repeat_element, "/Envelope/Assessment/Elements"),
    "signature before the body": ("receipt.xml", _signature_before_body, "/Envelope"),
}


@pytest.mark.parametrize(("example", "change", "path"), INVALID.values(), ids=INVALID.keys())
def test_an_invalid_document_gives_a_schema_error_naming_the_element(
    example: str, change: Callable[[etree._Element], None], path: str
) -> None:
    root = _load(example)
    change(root)
    with pytest.raises(SchemaError) as info:
        VALIDATOR.validate(root, message_id="m-1")
    assert any(path in p for p in info.value.problems), info.value.problems
    assert info.value.message_id == "m-1"
    assert str(info.value).startswith("message m-1: ")


@pytest.mark.parametrize(("example", "change", "path"), INVALID.values(), ids=INVALID.keys())
def test_explain_names_the_element_of_an_invalid_document(
    example: str, change: Callable[[etree._Element], None], path: str
) -> None:
    root = _load(example)
    change(root)
    problems = VALIDATOR.explain(etree.tostring(root))
    assert any(path in p for p in problems), problems


@needs_xmllint
@pytest.mark.parametrize(("example", "change", "path"), INVALID.values(), ids=INVALID.keys())
def test_xmllint_rejects_every_invalid_document(
    example: str, change: Callable[[etree._Element], None], path: str, tmp_path: Path
) -> None:
    root = _load(example)
    change(root)
    target = tmp_path / "doc.xml"
    target.write_bytes(etree.tostring(root))
    assert _xmllint(target).returncode != 0


def test_problems_carry_the_line_of_the_element() -> None:
    original = (ROOT / "schemas" / "examples" / "receipt.xml").read_bytes()
    line = original[: original.index(b"<Recipient>")].count(b"\n") + 1
    root = etree.fromstring(original.replace(b"<Recipient>332<", b"<Recipient>3x2<"))
    with pytest.raises(SchemaError) as info:
        VALIDATOR.validate(root)
    assert info.value.problems[0].startswith(f"line {line}: /Envelope/Header/Recipient: ")


def test_explain_reports_a_document_that_is_not_well_formed() -> None:
    problems = VALIDATOR.explain(b"<Envelope xmlns='urn:caf-exchange:1'><Header>")
    assert len(problems) == 1
    assert "not well-formed" in problems[0]


def test_a_missing_schema_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="canonical schema"):
        SchemaValidator(tmp_path / "missing.xsd")


def test_one_validator_can_be_shared_by_threads() -> None:
    good = _load("receipt.xml")
    bad = _load("receipt.xml")
    _set(f"{NS}Header/{NS}Sender", "33")(bad)

    def check(i: int) -> bool:
        root = good if i % 2 else bad
        try:
            VALIDATOR.validate(root)
        except SchemaError as exc:
            return "/Envelope/Header/Sender" in exc.problems[0]
        return root is good

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(check, range(200)))
