"""The dudley-csv adapter over the Dudley sample register and variations of it."""

from __future__ import annotations

import csv
import io
import resource
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
import yaml

from adapters import registry
from adapters.base import Converted, Rejected, Result
from adapters.dudley.adapter import DudleyCsvAdapter, create
from gateway.errors import MalformedInputError, MappingError, RecordError
from gateway.model import (
    CaseStatus,
    ConsentAction,
    ConsentRole,
    ConsentScope,
    Element,
    ElementAssessment,
    Gender,
    Identifier,
    Outcome,
    PlanAction,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"
MAPPING = ROOT / "config" / "adapters" / "dudley-csv.yaml"
REGION = frozenset({"330", "332", "333", "334", "335", "336"})
SOURCE = SAMPLE.name


@pytest.fixture(scope="module")
def adapter() -> DudleyCsvAdapter:
    return create(MAPPING, REGION)


def sample_table() -> tuple[list[str], list[dict[str, str]]]:
    text = SAMPLE.read_bytes().decode("cp1252")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or []), list(reader)


def to_bytes(header: list[str], rows: list[dict[str, str]], encoding: str = "cp1252") -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode(encoding)


def read(adapter: DudleyCsvAdapter, data: bytes, source: str = SOURCE) -> list[Result]:
    return list(adapter.read(io.BytesIO(data), source))


def converted(results: list[Result]) -> dict[str, Converted]:
    return {r.assessment.case_ref: r for r in results if isinstance(r, Converted)}


@pytest.fixture(scope="module")
def sample_results(adapter: DudleyCsvAdapter) -> list[Result]:
    with SAMPLE.open("rb") as stream:
        return list(adapter.read(stream, SOURCE))


# --- the sample rows --------------------------------------------------------


def test_row_1_carries_every_field_to_the_canonical_model(sample_results: list[Result]) -> None:
    result = converted(sample_results)["DUD-2026-00417"]
    assert (result.source, result.record) == (SOURCE, "2")
    a = result.assessment
    child = a.child
    assert (child.given_name, child.family_name) == ("Siobhán", "O\u2019Neill")
    assert child.date_of_birth == date(2014, 3, 14)
    assert child.gender is Gender.FEMALE
    assert child.identifiers == (
        Identifier("UPN", "J332412014017"),
        Identifier("NHS", "9990000018"),
    )
    assert child.address is not None
    assert (child.address.postcode, child.address.la_code) == ("WV14 0QL", "336")
    assert child.school is not None
    assert (child.school.name, child.school.la_code) == ("Castle High School", None)
    assert a.initiator is not None
    assert (a.initiator.name, a.initiator.role, a.initiator.organisation, a.initiator.la_code) == (
        "Karen Hale",
        "School nurse",
        "Dudley Public Health",
        "332",
    )
    assert a.started_on == date(2026, 9, 2)
    assert a.status is CaseStatus.OPEN
    assert a.outcome is Outcome.MULTI_AGENCY
    assert a.strengths == "Good friendships, enjoys drama"
    assert a.needs == "Health review; attendance support; housing advice"
    assert a.actions == (
        PlanAction(1, "Book asthma review at GP", "Karen Hale", "332", date(2026, 9, 30)),
        PlanAction(2, "Attendance plan with school", "Head of Year 8", "332", date(2026, 10, 15)),
        PlanAction(
            3, "Housing options referral", "Family support worker", "332", date(2026, 10, 31)
        ),
    )
    (lead,) = a.lead_professionals
    assert (lead.practitioner.name, lead.practitioner.organisation, lead.practitioner.la_code) == (
        "Karen Hale",
        "Dudley Public Health",
        "332",
    )
    (tac,) = a.tac_meetings
    assert tac.held_on == date(2026, 9, 23)
    assert result.share_with == ("336", "333")
    assert a.source_system == "dudley-csv"


def test_row_1_elements_keep_concerns_and_notes(sample_results: list[Result]) -> None:
    elements = {
        e.element: e for e in converted(sample_results)["DUD-2026-00417"].assessment.elements
    }
    assert elements[Element.HEALTH] == ElementAssessment(
        Element.HEALTH, concern=True, notes="Asthma, missed appointments"
    )
    assert elements[Element.EDUCATION].notes == "Attendance 81% this term"
    assert elements[Element.BASIC_CARE] == ElementAssessment(Element.BASIC_CARE, concern=True)
    assert elements[Element.GUIDANCE_AND_BOUNDARIES] == ElementAssessment(
        Element.GUIDANCE_AND_BOUNDARIES, concern=False
    )
    assert elements[Element.EMPLOYMENT_AND_INCOME].notes == "Universal Credit"
    assert elements[Element.WIDER_FAMILY].notes == "Maternal grandmother nearby"
    assert Element.IDENTITY not in elements  # empty cell: not recorded


def test_row_1_consent_covers_cross_border_sharing_with_the_named_las(
    sample_results: list[Result],
) -> None:
    result = converted(sample_results)["DUD-2026-00417"]
    consent = result.assessment.consent
    assert consent is not None
    assert consent.given
    assert (consent.given_by, consent.role, consent.role_text) == (
        "Mary O\u2019Neill",
        ConsentRole.PARENT,
        "Mother",
    )
    assert not consent.gillick_competent
    assert consent.recorded_at == date(2026, 9, 2)
    assert consent.scopes == (
        ConsentScope.RECORD,
        ConsentScope.SHARE_WITHIN_LA,
        ConsentScope.SHARE_CROSS_BORDER,
    )
    assert consent.named_las == ("336", "333")
    assert result.consent is not None
    assert result.consent.action is ConsentAction.GIVEN
    assert result.consent.consent == consent


def test_row_2_gillick_competent_child_consents_within_dudley_only(
    sample_results: list[Result],
) -> None:
    result = converted(sample_results)["DUD-2026-00418"]
    consent = result.assessment.consent
    assert consent is not None
    assert (consent.role, consent.gillick_competent) == (ConsentRole.CHILD, True)
    assert consent.scopes == (ConsentScope.RECORD, ConsentScope.SHARE_WITHIN_LA)
    assert result.share_with == ()
    assert result.assessment.outcome is Outcome.SINGLE_AGENCY
    assert [a.description for a in result.assessment.actions] == ["SALT referral"]
    assert result.assessment.tac_meetings == ()


def test_row_3_consent_not_given_is_a_refusal_with_no_scopes(
    sample_results: list[Result],
) -> None:
    result = converted(sample_results)["DUD-2026-00419"]
    consent = result.assessment.consent
    assert consent is not None
    assert not consent.given
    assert consent.active_scopes() == frozenset()
    assert consent.named_las == ()
    assert result.share_with == ()
    assert result.consent is not None
    assert result.consent.action is ConsentAction.REFUSED
    assert result.assessment.status is CaseStatus.CLOSED
    assert result.assessment.outcome is Outcome.NO_FURTHER_ACTION
    assert result.assessment.child.date_of_birth == date(2016, 2, 29)


BAD_ROW_PROBLEMS = {
    ("UPN", "UPN check letter is X, expected J", "X332412014017"),
    ("NHS_NO", "NHS number must be 10 digits, got 8", "99900000"),
    ("DOB", "no such day (expected a real date as dd/mm/yyyy)", "31/04/2014"),
    ("GENDER", "unknown gender code (known: M, F)", "Q"),
    ("POSTCODE", "not a UK postcode", "NOT A POSTCODE"),
    ("HOME_LA", "999 is not a DfE LA code", "999"),
    ("DATE_STARTED", "date in ISO form, expected dd/mm/yyyy", "2026-09-15"),
    ("CONSENT_GIVEN", "must be Y or N", "MAYBE"),
    ("SHARE_XBORDER", "cross-border sharing is marked but consent was not given", "Y"),
    ("INITIATED_BY", "no initiating practitioner", None),
}


def test_the_bad_row_reports_exactly_its_ten_problems(sample_results: list[Result]) -> None:
    (rejected,) = [r for r in sample_results if isinstance(r, Rejected)]
    assert (rejected.source, rejected.record) == (SOURCE, "5")
    got = [(p.field, p.reason, p.value) for p in rejected.problems]
    assert len(got) == len(BAD_ROW_PROBLEMS)
    assert set(got) == BAD_ROW_PROBLEMS
    assert all((p.source, p.record) == (SOURCE, "5") for p in rejected.problems)


def test_problems_read_as_file_row_column_reason_value(sample_results: list[Result]) -> None:
    (rejected,) = [r for r in sample_results if isinstance(r, Rejected)]
    shown = {str(p) for p in rejected.problems}
    assert f"{SOURCE}:5:UPN: UPN check letter is X, expected J (X332412014017)" in shown
    assert f"{SOURCE}:5:INITIATED_BY: no initiating practitioner" in shown


def test_good_rows_convert_beside_the_bad_row(sample_results: list[Result]) -> None:
    assert [type(r).__name__ for r in sample_results] == [
        "Converted",
        "Converted",
        "Converted",
        "Rejected",
    ]
    assert [r.record for r in sample_results] == ["2", "3", "4", "5"]


def test_mapping_maps_or_ignores_exactly_the_sample_header(adapter: DudleyCsvAdapter) -> None:
    header, _ = sample_table()
    m = adapter.mapping
    declared = set(m.mapped) | set(m.ignored)
    expanded = {c for c in declared if "{n}" not in c} | {
        p.replace("{n}", str(n)) for p in declared if "{n}" in p for n in (1, 2, 3)
    }
    assert expanded == set(header)
    assert m.header_for(3) == header


# --- other row contents -----------------------------------------------------


def variant(**changes: str) -> bytes:
    header, rows = sample_table()
    return to_bytes(header, [{**rows[0], **changes}])


def test_share_with_must_name_region_authorities_with_dfe_codes(
    adapter: DudleyCsvAdapter,
) -> None:
    (result,) = read(adapter, variant(SHARE_WITH="336;860;999"))
    assert isinstance(result, Rejected)
    assert {(p.field, p.reason, p.value) for p in result.problems} == {
        ("SHARE_WITH", "860 is not an authority in the region directory", "860"),
        ("SHARE_WITH", "999 is not a DfE LA code", "999"),
    }


def test_home_la_outside_the_region_needs_only_a_dfe_code(adapter: DudleyCsvAdapter) -> None:
    (result,) = read(adapter, variant(HOME_LA="860", POSTCODE="st16 2lq"))
    assert isinstance(result, Converted)
    address = result.assessment.child.address
    assert address is not None
    assert (address.la_code, address.postcode) == ("860", "ST16 2LQ")


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("CONCLUSION", "MAYBE_LATER", "unknown outcome code"),
        ("STATUS", "PENDING", "unknown status code"),
        ("CONSENT_BY_ROLE", "Neighbour", "unknown consent_role code"),
        ("ACTION_2_DUE", "31/09/2026", "no such day"),
        ("LEAD_PROF_LA", "1234", "1234 is not a DfE LA code"),
        ("TAC_DATE", "23-09-2026", "not a date as dd/mm/yyyy"),
    ],
)
def test_an_unknown_code_or_bad_date_names_column_and_value(
    adapter: DudleyCsvAdapter, column: str, value: str, reason: str
) -> None:
    (result,) = read(adapter, variant(**{column: value}))
    assert isinstance(result, Rejected)
    (problem,) = result.problems
    assert (problem.field, problem.value) == (column, value)
    assert problem.reason.startswith(reason)


def test_any_number_of_action_groups_is_read(adapter: DudleyCsvAdapter) -> None:
    header, rows = sample_table()
    extra = ["ACTION_4", "ACTION_4_OWNER", "ACTION_4_DUE", "ACTION_12", "ACTION_12_OWNER"]
    extra.append("ACTION_12_DUE")
    row = {**rows[0], "ACTION_2": "", "ACTION_2_OWNER": "", "ACTION_2_DUE": ""}
    row |= {"ACTION_4": "Fourth", "ACTION_4_OWNER": "", "ACTION_4_DUE": ""}
    row |= {"ACTION_12": "Twelfth", "ACTION_12_OWNER": "TAC", "ACTION_12_DUE": "01/12/2026"}
    (result,) = read(adapter, to_bytes(header + extra, [row]))
    assert isinstance(result, Converted)
    actions = result.assessment.actions
    assert [(a.seq, a.description) for a in actions] == [
        (1, "Book asthma review at GP"),
        (3, "Housing options referral"),
        (4, "Fourth"),
        (12, "Twelfth"),
    ]
    assert actions[2].owner is None
    assert actions[2].owner_la is None
    assert actions[3].due == date(2026, 12, 1)


def test_an_action_without_description_is_a_problem(adapter: DudleyCsvAdapter) -> None:
    (result,) = read(adapter, variant(ACTION_2=""))
    assert isinstance(result, Rejected)
    assert [(p.field, p.reason) for p in result.problems] == [
        ("ACTION_2", "action has no description")
    ]


# --- whole-file faults ------------------------------------------------------


def test_a_missing_required_column_is_malformed_input(adapter: DudleyCsvAdapter) -> None:
    header, rows = sample_table()
    header.remove("DOB")
    data = to_bytes(header, [{k: v for k, v in r.items() if k != "DOB"} for r in rows])
    with pytest.raises(MalformedInputError, match=rf"^{SOURCE}: required column DOB missing"):
        read(adapter, data)


def test_an_incomplete_action_group_is_malformed_input(adapter: DudleyCsvAdapter) -> None:
    header, rows = sample_table()
    header.remove("ACTION_2_DUE")
    data = to_bytes(header, [{k: v for k, v in r.items() if k != "ACTION_2_DUE"} for r in rows])
    with pytest.raises(MalformedInputError, match="ACTION_2_DUE"):
        read(adapter, data)


def test_an_unknown_column_is_malformed_input(adapter: DudleyCsvAdapter) -> None:
    header, rows = sample_table()
    data = to_bytes([*header, "ETHNICITY"], [{**r, "ETHNICITY": "A1"} for r in rows])
    with pytest.raises(MalformedInputError, match="ETHNICITY not known to the mapping"):
        read(adapter, data)


def test_a_byte_outside_windows_1252_is_malformed_input_naming_its_offset(
    adapter: DudleyCsvAdapter,
) -> None:
    data = SAMPLE.read_bytes()
    offset = data.index(b"Castle")
    broken = data[:offset] + b"\x81" + data[offset + 1 :]
    with pytest.raises(MalformedInputError) as caught:
        read(adapter, broken)
    assert str(caught.value).startswith(
        f"{SOURCE}: byte 0x81 at offset {offset} (line 2) is not valid cp1252"
    )


def test_a_file_saved_as_utf8_is_malformed_input(adapter: DudleyCsvAdapter) -> None:
    utf8 = SAMPLE.read_bytes().decode("cp1252").encode("utf-8")
    with pytest.raises(MalformedInputError, match=r"\(line 2\) are UTF-8, but the file must be"):
        read(adapter, utf8)


def test_a_utf16_file_is_malformed_input(adapter: DudleyCsvAdapter) -> None:
    utf16 = SAMPLE.read_bytes().decode("cp1252").encode("utf-16")
    with pytest.raises(MalformedInputError, match=SOURCE):
        read(adapter, utf16)


@pytest.mark.parametrize("cut", ["Attendance plan", '"Health review; attendance'])
def test_a_truncated_file_is_malformed_input(adapter: DudleyCsvAdapter, cut: str) -> None:
    data = SAMPLE.read_bytes()
    truncated = data[: data.index(cut.encode("cp1252")) + len(cut)]
    with pytest.raises(MalformedInputError, match=r"row 2 .*\(is the file truncated\?\)"):
        read(adapter, truncated)


def test_an_empty_file_is_malformed_input(adapter: DudleyCsvAdapter) -> None:
    with pytest.raises(MalformedInputError, match="the file is empty"):
        read(adapter, b"")


def test_blank_lines_are_skipped_but_counted(adapter: DudleyCsvAdapter) -> None:
    data = SAMPLE.read_bytes().replace(b"\r\nDUD-2026-00418", b"\r\n\r\nDUD-2026-00418")
    assert [r.record for r in read(adapter, data)] == ["2", "4", "5", "6"]


# --- writing ----------------------------------------------------------------


def test_round_trip_keeps_every_mapped_column(
    adapter: DudleyCsvAdapter, sample_results: list[Result]
) -> None:
    header, rows = sample_table()
    good = [r.assessment for r in sample_results if isinstance(r, Converted)]
    written = adapter.write(good)
    assert written.startswith(",".join(header).encode("cp1252") + b"\r\n")
    again = csv.DictReader(io.StringIO(written.decode("cp1252"), newline=""))
    assert list(again.fieldnames or []) == header
    assert list(again) == rows[:3]
    reread = [r.assessment for r in read(adapter, written) if isinstance(r, Converted)]
    assert reread == good


def test_writing_adds_action_groups_as_needed(adapter: DudleyCsvAdapter) -> None:
    header, rows = sample_table()
    (result,) = read(adapter, to_bytes(header, rows[:1]))
    assert isinstance(result, Converted)
    more = tuple(PlanAction(n, f"Step {n}") for n in range(1, 6))
    written = adapter.write([replace(result.assessment, actions=more)])
    first = written.split(b"\r\n", 1)[0].decode()
    assert "ACTION_5,ACTION_5_OWNER,ACTION_5_DUE,LEAD_PROF" in first
    (back,) = read(adapter, written)
    assert isinstance(back, Converted)
    assert [a.description for a in back.assessment.actions] == [f"Step {n}" for n in range(1, 6)]


def test_writing_a_value_dudley_has_no_code_for_names_it(
    adapter: DudleyCsvAdapter, sample_results: list[Result]
) -> None:
    a = converted(sample_results)["DUD-2026-00417"].assessment
    bad = replace(a, outcome=Outcome.SAFEGUARDING_REFERRAL)
    with pytest.raises(RecordError) as caught:
        adapter.write([bad])
    (problem,) = caught.value.problems
    assert (problem.record, problem.field, problem.value) == (
        "DUD-2026-00417",
        "CONCLUSION",
        "SAFEGUARDING_REFERRAL",
    )


def test_writing_a_name_windows_1252_cannot_hold_is_refused(
    adapter: DudleyCsvAdapter, sample_results: list[Result]
) -> None:
    a = converted(sample_results)["DUD-2026-00418"].assessment
    bad = replace(a, child=replace(a.child, given_name="Łukasz"))
    with pytest.raises(RecordError, match="FORENAME: character 'Ł' cannot be written in cp1252"):
        adapter.write([bad])


# --- mapping file -----------------------------------------------------------


def broken_mapping(tmp_path: Path, edit: dict[str, object]) -> Path:
    data = yaml.safe_load(MAPPING.read_text(encoding="utf-8"))
    for dotted, value in edit.items():
        *parents, last = dotted.split(".")
        target = data
        for key in parents:
            target = target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    path = tmp_path / "dudley-csv.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"fields.mapped.DEV_HEALTH": "Assessment.elements.Wellbeing"}, "fields.mapped.DEV_HEALTH"),
        ({"fields.mapped.DOB": None}, "Child.date_of_birth"),
        ({"encoding": "klingon-1"}, "encoding"),
        ({"codes.outcome.decode.NO_FURTHER_ACTION": "NOTHING"}, "codes.outcome.decode"),
        ({"consent_scopes.given": ["RECORD", "GOSSIP"]}, "consent_scopes.given"),
        ({"authority": "999"}, "authority"),
    ],
)
def test_a_bad_mapping_file_names_the_key(
    tmp_path: Path, edit: dict[str, object], named: str
) -> None:
    with pytest.raises(MappingError, match=named.replace(".", r"\.")):
        create(broken_mapping(tmp_path, edit), REGION)


def test_the_registry_builds_the_dudley_adapter() -> None:
    built = registry.create("dudley-csv", MAPPING.parent, REGION)
    assert (built.name, built.authority) == ("dudley-csv", "332")


# --- volume -----------------------------------------------------------------


def generated_rows(count: int) -> Iterator[bytes]:
    data = SAMPLE.read_bytes()
    head, row = data.split(b"\r\n")[:2]
    yield head + b"\r\n"
    for n in range(count):
        yield row.replace(b"DUD-2026-00417", f"DUD-{n:09d}".encode()) + b"\r\n"


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def test_a_100k_row_file_streams_with_flat_memory(
    adapter: DudleyCsvAdapter, tmp_path: Path
) -> None:
    path = tmp_path / "big.csv"
    with path.open("wb") as out:
        out.writelines(generated_rows(100_000))
    size = path.stat().st_size
    count, before = 0, peak_rss_bytes()
    with path.open("rb") as stream:
        for result in adapter.read(stream, path.name):
            assert isinstance(result, Converted)
            count += 1
    assert count == 100_000
    assert size > 50_000_000
    assert peak_rss_bytes() - before < 20_000_000  # far less than the file: it streamed
