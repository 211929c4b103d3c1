"""The sandwell-xml adapter: FWI question/answer form export <-> canonical assessments."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters import registry
from adapters.base import Adapter, Converted, Rejected, Result
from gateway.errors import MalformedInputError
from gateway.model import (
    CaseStatus,
    ConsentAction,
    ConsentScope,
    Element,
    FlagCode,
    Gender,
    Outcome,
    Purpose,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "sandwell-333" / "fwi-forms-20261005.xml"
REGION = ("330", "331", "332", "333", "334", "335", "336")


@pytest.fixture(scope="module")
def adapter() -> Adapter:
    return registry.create("sandwell-xml", ROOT / "config" / "adapters", REGION)


def read(adapter: Adapter, data: bytes, source: str = "fwi.xml") -> list[Result]:
    return list(adapter.read(io.BytesIO(data), source))


def converted(adapter: Adapter) -> dict[str, Converted]:
    results = read(adapter, SAMPLE.read_bytes())
    assert all(isinstance(r, Converted) for r in results), results
    return {r.record: r for r in results if isinstance(r, Converted)}


def test_every_sample_form_converts(adapter: Adapter) -> None:
    assert sorted(converted(adapter)) == ["FWI-553901", "FWI-553977"]


def test_subject_fields_reach_the_child(adapter: Adapter) -> None:
    child = converted(adapter)["FWI-553901"].assessment.child
    assert (child.given_name, child.family_name) == ("Chloé", "Adeyemi")
    assert child.date_of_birth == date(2013, 5, 17)
    assert child.gender is Gender.FEMALE
    assert (child.ethnicity, child.religion) == ("BAFR", "CHRISTIAN")
    assert child.identifier("UPN") == "L333200216031"
    assert child.identifier("NHS") == "9990000069"
    assert child.local_person_id == "P0093311"
    assert child.address is not None
    assert (child.address.postcode, child.address.la_code) == ("B69 4LT", "333")


def test_gender_code_one_is_male(adapter: Adapter) -> None:
    assert converted(adapter)["FWI-553977"].assessment.child.gender is Gender.MALE


def test_dates_state_author_and_source_system(adapter: Adapter) -> None:
    a = converted(adapter)["FWI-553901"].assessment
    assert (a.started_on, a.completed_on) == (date(2026, 9, 21), date(2026, 10, 2))
    assert a.status is CaseStatus.SUBMITTED
    assert a.initiator is not None
    assert (a.initiator.name, a.initiator.organisation, a.initiator.la_code) == (
        "Maria Lopes",
        "Sandwell Inclusion Support",
        "333",
    )
    assert a.source_system == "SMBC-FWI"


def test_question_codes_become_elements_and_summaries(adapter: Adapter) -> None:
    a = converted(adapter)["FWI-553901"].assessment
    assert {e.element: e.rating for e in a.elements} == {
        Element.HEALTH: 1,
        Element.EDUCATION: 3,
        Element.EMOTIONAL_AND_BEHAVIOURAL_DEVELOPMENT: 2,
        Element.BASIC_CARE: 1,
        Element.ENSURING_SAFETY: 1,
        Element.HOUSING: 2,
        Element.EMPLOYMENT_AND_INCOME: 2,
    }
    notes = {e.element: e.notes for e in a.elements}
    assert notes[Element.HOUSING] == "Temporary accommodation since July."
    assert notes[Element.BASIC_CARE] is None
    assert a.strengths == "Creative, good attendance (96%)."
    assert a.needs == "Specialist literacy support; stable housing."
    assert a.outcome is Outcome.MULTI_AGENCY


def test_consent_purposes_become_scopes_with_the_named_la(adapter: Adapter) -> None:
    result = converted(adapter)["FWI-553901"]
    consent = result.assessment.consent
    assert consent is not None and consent.given and consent.given_by == "Funmi Adeyemi"
    assert consent.scopes == (
        ConsentScope.RECORD,
        ConsentScope.SHARE_WITHIN_LA,
        ConsentScope.SHARE_CROSS_BORDER,
        ConsentScope.INVITE_TO_TAC,
    )
    assert consent.named_las == ("334",) and result.share_with == ("334",)
    assert result.consent is not None and result.consent.action is ConsentAction.GIVEN


def test_consent_not_given_is_a_refusal_with_nothing_to_share(adapter: Adapter) -> None:
    result = converted(adapter)["FWI-553977"]
    assert result.consent is not None and result.consent.action is ConsentAction.REFUSED
    assert result.share_with == ()
    assert result.assessment.consent is not None
    assert not result.assessment.consent.active_scopes()


def test_actions_meeting_and_lead_professional(adapter: Adapter) -> None:
    a = converted(adapter)["FWI-553901"].assessment
    assert [(x.seq, x.owner, x.owner_la, x.due) for x in a.actions] == [
        (1, "Gary Hinds", "334", date(2026, 10, 31)),
        (2, "Sandwell Housing Options", "333", date(2026, 11, 15)),
    ]
    (meeting,) = a.tac_meetings
    assert meeting.held_on == date(2026, 10, 2) and meeting.venue == "Elmdon Fields Academy"
    assert [(p.name, p.role, p.la_code) for p in meeting.attendees][1] == (
        "Gary Hinds",
        "SENCO",
        "334",
    )
    (lead,) = a.lead_professionals
    assert (lead.practitioner.name, lead.practitioner.la_code, lead.from_date) == (
        "Gary Hinds",
        "334",
        date(2026, 10, 2),
    )


def test_service_gap_flag_keeps_la_and_text(adapter: Adapter) -> None:
    (flag,) = converted(adapter)["FWI-553901"].assessment.flags
    assert (flag.code, flag.la_code) == (FlagCode.SERVICE_GAP, "334")
    assert flag.text == "No dyslexia outreach service for out-of-area pupils"


def test_significant_harm_flags_name_the_decision_and_the_authority(adapter: Adapter) -> None:
    result = converted(adapter)["FWI-553977"]
    harm, notify = result.assessment.flags
    assert harm.code is FlagCode.SIGNIFICANT_HARM
    assert (harm.decided_by, harm.decided_by_role, harm.inform_family) == (
        "Jo Franklin",
        "MASH duty manager",
        False,
    )
    assert harm.reason == "Informing family likely to expose child to further risk"
    assert harm.text is not None and harm.text.startswith("Referred to MASH")
    assert (notify.code, notify.la_code) == (FlagCode.NOTIFY_AUTHORITY, "330")
    assert result.assessment.outcome is Outcome.SAFEGUARDING_REFERRAL
    assert result.purpose is Purpose.SAFEGUARDING_REFERRAL


def _edited(old: bytes, new: bytes) -> bytes:
    data = SAMPLE.read_bytes()
    assert old in data
    return data.replace(old, new, 1)


def test_unknown_code_rejects_only_that_form(adapter: Adapter) -> None:
    data = _edited(b'<Field name="GENDER">2</Field>', b'<Field name="GENDER">7</Field>')
    data = data.replace(b'code="DEV.EMO" score="2"', b'code="DEV.MOOD" score="2"')
    rejected, ok = read(adapter, data, "bad.xml")
    assert isinstance(rejected, Rejected) and isinstance(ok, Converted)
    found = {(p.source, p.record, p.field, p.value) for p in rejected.problems}
    assert found == {
        ("bad.xml", "FWI-553901", "Form/Subject[1]/Field[@name='GENDER']", "7"),
        ("bad.xml", "FWI-553901", "Form/Answers/Q[@code='DEV.MOOD']", "DEV.MOOD"),
    }


def test_bad_dates_and_identifiers_are_field_problems(adapter: Adapter) -> None:
    data = _edited(b"02-DEC-2010", b"31-FEB-2010").replace(b"Z333513017009", b"A333513017009")
    data = data.replace(b'<Dates started="29-SEP-2026"/>', b'<Dates started="2026-09-29"/>')
    _, rejected = read(adapter, data)
    assert isinstance(rejected, Rejected)
    assert {p.field for p in rejected.problems} == {
        "Form/Subject[1]/Field[@name='DOB']",
        "Form/Subject[1]/Field[@name='UPN']",
        "Form/Dates[1]/@started",
    }


def test_a_form_without_subject_is_rejected_not_the_file(adapter: Adapter) -> None:
    data = SAMPLE.read_bytes()
    start, end = data.index(b'<Subject personId="P0093405"'), data.rindex(b"</Subject>") + 10
    rejected = read(adapter, data[:start] + data[end:])[1]
    assert isinstance(rejected, Rejected)
    assert [p.field for p in rejected.problems] == ["Form/Subject"]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (SAMPLE.read_bytes()[:1500], "line"),
        (_edited(b"</Answers>", b"</Answer>"), "line 35, column 14: not well-formed"),
        (SAMPLE.read_bytes().replace(b"ISO-8859-1", b"UTF-8"), "line 5"),
        (b'<?xml version="1.0"?><Forms/>', "root element is 'Forms'"),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE FWIExport [<!ENTITY x "boom">]>\n'
            b"<FWIExport><Form id='1'>&x;</Form></FWIExport>",
            "DOCTYPE",
        ),
        (b"", "line"),
    ],
    ids=["truncated", "mismatched-tag", "wrong-encoding", "wrong-root", "dtd", "empty"],
)
def test_malformed_file_is_one_clear_error(adapter: Adapter, data: bytes, where: str) -> None:
    with pytest.raises(MalformedInputError) as caught:
        read(adapter, data, "broken.xml")
    assert str(caught.value).startswith("broken.xml: ")
    assert where in str(caught.value)


def _values(form: etree._Element) -> list[tuple[str, str]]:
    """(path, value) of every attribute and text of a form; Field/Q steps carry their key."""
    found: list[tuple[str, str]] = []

    def walk(element: etree._Element, path: str) -> None:
        for key, raw in element.attrib.items():
            name, value = str(key), str(raw)
            found.append(
                (f"{path}/@{name}", value.upper() if path.endswith("[POSTCODE]") else value)
            )
        if element.text and element.text.strip():
            text = element.text.strip()
            found.append((path, text.upper() if path.endswith("[POSTCODE]") else text))
        for number, sub in enumerate(element, start=1):
            tag, label = str(sub.tag), sub.get("name") or sub.get("code")
            step = f"{tag}[{label}]" if tag in ("Field", "Q") else f"{tag}[{number}]"
            walk(sub, f"{path}/{step}")

    walk(form, "Form")
    return found


@pytest.mark.parametrize("index", [0, 1], ids=["FWI-553901", "FWI-553977"])
def test_local_to_canonical_to_local_keeps_every_mapped_field(adapter: Adapter, index: int) -> None:
    original = etree.fromstring(SAMPLE.read_bytes()).findall("Form")[index]
    result = read(adapter, SAMPLE.read_bytes())[index]
    assert isinstance(result, Converted)
    written = etree.fromstring(adapter.write([result.assessment])).findall("Form")[0]
    assert sorted(_values(written)) == sorted(_values(original))


def test_canonical_to_local_to_canonical_is_identical(adapter: Adapter) -> None:
    first = [r.assessment for r in converted(adapter).values()]
    second = read(adapter, adapter.write(first))
    assert [r.assessment for r in second if isinstance(r, Converted)] == first


def test_written_file_is_iso_8859_1(adapter: Adapter) -> None:
    data = adapter.write([converted(adapter)["FWI-553901"].assessment])
    assert data.startswith(b"<?xml version='1.0' encoding='ISO-8859-1'?>")
    assert "Chloé".encode("latin-1") in data


def test_any_canonical_assessment_can_be_written_for_sandwell(adapter: Adapter) -> None:
    ehm = registry.create("wolverhampton-json", ROOT / "config" / "adapters", REGION)
    data = (ROOT / "tests/data/wolverhampton-336/ehm-export-2026-10-01.json").read_bytes()
    assessments = [r.assessment for r in read(ehm, data) if isinstance(r, Converted)]
    back = read(adapter, adapter.write(assessments))
    assert [type(r) for r in back] == [Converted, Converted]
    first = back[0]
    assert isinstance(first, Converted)
    assert len(first.assessment.elements) == 19
    assert first.assessment.carers == assessments[0].carers
    assert first.share_with == ("335",)


class _FormStream(io.RawIOBase):
    """An export of ``count`` copies of one form, made up as it is read."""

    def __init__(self, form: bytes, count: int) -> None:
        self.parts = self._parts(form, count)
        self.pending = b""

    @staticmethod
    def _parts(form: bytes, count: int) -> Iterator[bytes]:
        yield b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<FWIExport source="SMBC-FWI">\n'
        for _ in range(count):
            yield form
        yield b"</FWIExport>\n"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while len(self.pending) < len(buffer):
            part = next(self.parts, None)
            if part is None:
                break
            self.pending += part
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


_MEASURE = """
import io, resource, sys
sys.path.insert(0, {tests!r})
from test_sandwell_adapter import ROOT, REGION, SAMPLE, _FormStream
from adapters import registry
adapter = registry.create("sandwell-xml", ROOT / "config" / "adapters", REGION)
data = SAMPLE.read_bytes()
form = data[data.index(b"<Form ") : data.index(b"</Form>") + 7]
count = 0
for result in adapter.read(io.BufferedReader(_FormStream(form, {count})), "big.xml"):
    count += 1
assert count == {count}
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_rss_kib(count: int) -> int:
    """Peak RSS of a fresh process converting ``count`` forms (lxml memory is not in
    tracemalloc, so this is measured from outside)."""
    code = _MEASURE.format(tests=str(Path(__file__).parent), count=count)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return int(done.stdout.split()[-1])


def test_memory_does_not_grow_with_the_number_of_forms() -> None:
    small, large = _peak_rss_kib(500), _peak_rss_kib(20_000)  # 1.3 MB vs 53 MB of XML
    assert large - small < 20_000, (small, large)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_never_crash_read(adapter: Adapter, data: bytes) -> None:
    try:
        results = read(adapter, data)
    except MalformedInputError:
        return
    assert all(isinstance(r, Converted | Rejected) for r in results)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_attribute_or_text_value_gives_converted_or_rejected(
    adapter: Adapter, data: st.DataObject
) -> None:
    root = etree.fromstring(SAMPLE.read_bytes())
    elements = [e for e in root.iter() if e is not root]
    element = data.draw(st.sampled_from(elements))
    value = data.draw(
        st.text(st.characters(codec="latin-1", exclude_categories=["Cc", "Cs"]), max_size=12)
    )
    names = [*element.attrib, None]
    name = data.draw(st.sampled_from(names))
    if name is None:
        element.text = value
    else:
        element.set(name, value)
    document = etree.tostring(root, encoding="ISO-8859-1")
    assert isinstance(document, bytes)
    for result in read(adapter, document):
        assert isinstance(result, Converted | Rejected)
