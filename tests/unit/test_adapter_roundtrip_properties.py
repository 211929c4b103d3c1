"""Property tests: random VALID records survive the round trip, for every adapter.

Each test takes a sample record as a template, puts random valid values in
the fields it varies (names, dates, codes, identifiers with correct check
digits, ratings, free text), and checks both directions:
local -> canonical -> local keeps every mapped field, and
canonical -> local -> canonical is identical. Random bytes never crash a reader.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters import registry
from adapters.base import Adapter, Converted, Result
from adapters.csv_cells import neutralise, restore
from gateway.errors import MalformedInputError
from gateway.identifiers import nhs_check_digit, upn_check_letter
from gateway.model import Assessment, Element

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
EXAMPLES = ROOT / "docs" / "examples"
REGION = frozenset({"330", "331", "332", "333", "334", "335", "336"})
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _adapters() -> dict[str, Adapter]:
    folder = Path(tempfile.mkdtemp(prefix="cafgw-adapters-"))
    shutil.copytree(ROOT / "config" / "adapters", folder, dirs_exist_ok=True)
    shutil.copy(EXAMPLES / "coventry-331" / "coventry-csv.yaml", folder)
    shutil.copy(EXAMPLES / "solihull-334" / "solihull-json.yaml", folder)
    built = {name: registry.create(name, folder, REGION) for name in registry.discover(folder)}
    shutil.rmtree(folder)
    return built


ADAPTERS = _adapters()

# --- random valid values --------------------------------------------------------

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéèöüñçÉ'-"
names = st.text(alphabet=LETTERS + " ", min_size=1, max_size=24).map(str.strip).filter(bool)
notes = (
    st.text(alphabet=LETTERS + " 0123456789.,;()%", min_size=2, max_size=60)
    .map(str.strip)
    .filter(lambda t: len(t) > 1)
)
days = st.dates(min_value=date(1995, 1, 1), max_value=date(2030, 12, 31))


@st.composite
def upns(draw: st.DrawFn) -> str:
    body = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=12, max_size=12)))
    return upn_check_letter("A" + body) + body


@st.composite
def nhs_numbers(draw: st.DrawFn) -> str:
    digits = draw(
        st.integers(100_000_000, 999_999_999)
        .map(str)
        .filter(lambda d: nhs_check_digit(d) is not None)
    )
    return digits + str(nhs_check_digit(digits))


def read(adapter: Adapter, data: bytes) -> list[Result]:
    return list(adapter.read(io.BytesIO(data), "random"))


# When a document was written (EHM's "exportedAt", Sandwell's "generated"): the clock at
# the write, not part of any record, so two writes a second apart differ there only.
WRITE_STAMP = re.compile(rb'("exportedAt": "|generated=")[^"]*"')


def unstamped(document: bytes) -> bytes:
    """``document`` without the time it was written."""
    return WRITE_STAMP.sub(rb'\1"', document)


def both_ways(adapter: Adapter, data: bytes) -> tuple[Assessment, bytes]:
    """The canonical record of ``data`` and its local form, after checking the round trip."""
    (first,) = read(adapter, data)
    assert isinstance(first, Converted), getattr(first, "problems", None)
    written = adapter.write([first.assessment])
    (again,) = read(adapter, written)
    assert isinstance(again, Converted)
    assert again.assessment == first.assessment  # canonical -> local -> canonical
    assert unstamped(adapter.write([again.assessment])) == unstamped(written)
    return first.assessment, written


# --- CSV: dudley-csv and the YAML-only coventry-csv -------------------------------


def csv_rows(data: bytes, encoding: str) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows, each data cell as the gateway's CSV readers see it: a cell the
    writer quoted so that no spreadsheet runs it as a formula ("'-0") reads as "-0"."""
    reader = csv.DictReader(io.StringIO(data.decode(encoding), newline=""))
    rows = [{k: restore(v) for k, v in row.items()} for row in reader]
    return list(reader.fieldnames or []), rows


def csv_bytes(header: list[str], row: dict[str, str], encoding: str) -> bytes:
    """A file holding ``row``, each value in the cell that reads back as it (``csv_rows``):
    a value such as "'-" (a quote, then a formula character) is written "''-", as the
    gateway's writers do, since a cell "'-" is the value "-" quoted against formulas."""
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\r\n")
    writer.writeheader()
    writer.writerow({k: neutralise(v) for k, v in row.items()})
    return out.getvalue().encode(encoding)


DUDLEY_HEADER, DUDLEY_ROWS = csv_rows(
    (DATA / "dudley-332" / "caf-register-2026-09.csv").read_bytes(), "cp1252"
)


@SETTINGS
@given(
    given_name=names,
    family_name=names,
    dob=days,
    gender=st.sampled_from(["M", "F", ""]),
    upn=upns(),
    nhs=nhs_numbers(),
    health=st.one_of(st.sampled_from(["Y", "N", ""]), notes),
    conclusion=st.sampled_from(["NEEDS_MULTI_AGENCY", "NEEDS_SINGLE_AGENCY", "NO_FURTHER_ACTION"]),
    action=notes,
    due=days,
)
@example(  # a value that starts with a quote and then a formula character (CI, 2026-12-04)
    given_name="'-",
    family_name="'=x",
    dob=date(2000, 1, 1),
    gender="",
    upn="A123456789012",
    nhs="9434765919",
    health="",
    conclusion="NO_FURTHER_ACTION",
    action="'-",
    due=date(2000, 1, 1),
)
def test_random_valid_dudley_rows_survive_the_round_trip(
    given_name: str,
    family_name: str,
    dob: date,
    gender: str,
    upn: str,
    nhs: str,
    health: str,
    conclusion: str,
    action: str,
    due: date,
) -> None:
    row = dict(DUDLEY_ROWS[0]) | {
        "FORENAME": given_name,
        "SURNAME": family_name,
        "DOB": dob.strftime("%d/%m/%Y"),
        "GENDER": gender,
        "UPN": upn,
        "NHS_NO": nhs,
        "DEV_HEALTH": health,
        "CONCLUSION": conclusion,
        "ACTION_2": action,
        "ACTION_2_DUE": due.strftime("%d/%m/%Y"),
    }
    assessment, written = both_ways(ADAPTERS["dudley-csv"], csv_bytes(DUDLEY_HEADER, row, "cp1252"))
    assert (assessment.child.given_name, assessment.child.date_of_birth) == (given_name, dob)
    header, (back,) = csv_rows(written, "cp1252")
    assert header == DUDLEY_HEADER
    assert back == row  # local -> canonical -> local keeps every mapped column


COVENTRY_CSV = (EXAMPLES / "coventry-331" / "caf-cases-2026-10.csv").read_bytes()
COVENTRY_HEADER, COVENTRY_ROWS = csv_rows(COVENTRY_CSV, "utf-8")


@SETTINGS
@given(
    given_name=names,
    family_name=names,
    dob=days,
    sex=st.sampled_from(["M", "F", "O", "U"]),
    upn=upns(),
    nhs=nhs_numbers(),
    score=st.integers(1, 4),
    outcome=st.sampled_from(["NFA", "Single", "TAC", "CP"]),
    interpreter=st.sampled_from(["Yes", "No"]),
    carer=names,
    strengths=notes,
)
def test_random_valid_rows_of_a_yaml_only_csv_adapter_survive_the_round_trip(
    given_name: str,
    family_name: str,
    dob: date,
    sex: str,
    upn: str,
    nhs: str,
    score: int,
    outcome: str,
    interpreter: str,
    carer: str,
    strengths: str,
) -> None:
    row = dict(COVENTRY_ROWS[0]) | {
        "FIRST_NAME": given_name,
        "LAST_NAME": family_name,
        "BIRTH_DATE": dob.strftime("%d.%m.%Y"),
        "SEX": sex,
        "UPN": upn,
        "NHS_NUMBER": nhs,
        "HEALTH_SCORE": str(score),
        "OUTCOME": outcome,
        "INTERPRETER": interpreter,
        "CARER2_NAME": carer,
        "STRENGTHS": strengths,
        "LAST_EDITED_BY": "",  # ignored, with why: not carried
    }
    assessment, written = both_ways(
        ADAPTERS["coventry-csv"], csv_bytes(COVENTRY_HEADER, row, "utf-8")
    )
    assert [c.name for c in assessment.carers][1] == carer
    assert assessment.elements[0].rating == score
    header, (back,) = csv_rows(written, "utf-8")
    assert header == COVENTRY_HEADER
    assert back == row


# --- JSON: wolverhampton-json and the YAML-only solihull-json ---------------------

EHM = json.loads((DATA / "wolverhampton-336" / "ehm-export-2026-10-01.json").read_bytes())


@SETTINGS
@given(
    given_name=names,
    family_name=names,
    dob=days,
    sex=st.sampled_from(["M", "F", "X", "U"]),
    ratings=st.lists(st.integers(1, 4), min_size=19, max_size=19),
    health_notes=notes,
    strengths=notes,
)
def test_random_valid_wolverhampton_episodes_survive_the_round_trip(
    given_name: str,
    family_name: str,
    dob: date,
    sex: str,
    ratings: list[int],
    health_notes: str,
    strengths: str,
) -> None:
    episode = copy.deepcopy(EHM["episodes"][0])
    child = episode["child"]
    child["names"]["given"], child["names"]["family"] = given_name, family_name
    child["birthDate"], child["sex"] = dob.isoformat(), sex
    for dimension, rating in zip(
        episode["assessment"]["dimensions"].values(), ratings, strict=True
    ):
        dimension["rating"] = rating
    episode["assessment"]["dimensions"]["Health"]["notes"] = health_notes
    episode["assessment"]["strengths"] = strengths
    document = {"system": EHM["system"], "localAuthority": EHM["localAuthority"]}
    document["episodes"] = [episode]
    assessment, written = both_ways(
        ADAPTERS["wolverhampton-json"], json.dumps(document).encode("utf-8")
    )
    assert [e.rating for e in assessment.elements] == ratings
    back = json.loads(written)["episodes"][0]
    assert back["child"]["names"]["given"] == given_name
    assert back["child"]["names"]["family"] == family_name
    assert (back["child"]["birthDate"], back["child"]["sex"]) == (dob.isoformat(), sex)
    assert [d["rating"] for d in back["assessment"]["dimensions"].values()] == ratings
    assert back["assessment"]["dimensions"]["Health"]["notes"] == health_notes
    assert back["assessment"]["strengths"] == strengths


SOLIHULL = json.loads((EXAMPLES / "solihull-334" / "cases-2026-10.json").read_bytes())


@SETTINGS
@given(
    given_name=names,
    family_name=names,
    dob=days,
    sex=st.sampled_from(["M", "F", "X", "U"]),
    health=st.integers(1, 4),
    safety=st.integers(1, 4),
    steps=st.lists(st.tuples(notes, days), min_size=1, max_size=4),
)
def test_random_valid_records_of_a_yaml_only_json_adapter_survive_the_round_trip(
    given_name: str,
    family_name: str,
    dob: date,
    sex: str,
    health: int,
    safety: int,
    steps: list[tuple[str, date]],
) -> None:
    record = copy.deepcopy(SOLIHULL["cases"][0])
    del record["ui"]  # ignored, with why: not carried
    record["child"]["home"]["postcode"] = "B91 3QW"
    record["child"] |= {"first": given_name, "last": family_name, "dob": dob.isoformat()}
    record["child"]["sex"] = sex
    record["scores"] = {"health": health, "safety": safety}
    record["plan"] = [
        {"what": what, "who": "Priya Nair", "whoLa": "334", "by": by.isoformat()}
        for what, by in steps
    ]
    assessment, written = both_ways(
        ADAPTERS["solihull-json"], json.dumps({"cases": [record]}).encode("utf-8")
    )
    assert [a.description for a in assessment.actions] == [what for what, _ in steps]
    assert json.loads(written)["cases"][0] == record


# --- XML: sandwell-xml ------------------------------------------------------------

FWI = (DATA / "sandwell-333" / "fwi-forms-20261005.xml").read_bytes()
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def fwi_day(day: date) -> str:
    return f"{day.day:02d}-{MONTHS[day.month - 1]}-{day.year}"


@SETTINGS
@given(
    given_name=names,
    family_name=names,
    dob=days,
    gender=st.sampled_from(["1", "2", "9"]),
    upn=upns(),
    nhs=nhs_numbers(),
    score=st.integers(1, 4),
    answer=notes,
)
def test_random_valid_sandwell_forms_survive_the_round_trip(
    given_name: str,
    family_name: str,
    dob: date,
    gender: str,
    upn: str,
    nhs: str,
    score: int,
    answer: str,
) -> None:
    root = etree.fromstring(FWI)
    form = root.findall("Form")[0]
    for child in root.findall("Form")[1:]:
        root.remove(child)
    values = {
        "FORENAME": given_name,
        "SURNAME": family_name,
        "DOB": fwi_day(dob),
        "GENDER": gender,
        "UPN": upn,
        "NHSNO": nhs,
    }
    for field in form.iter("Field"):
        if field.get("name") in values:
            field.text = values[str(field.get("name"))]
    question = next(q for q in form.iter("Q") if q.get("code") == "DEV.EDU")
    question.set("score", str(score))
    question.text = answer
    data = etree.tostring(root, xml_declaration=True, encoding="ISO-8859-1")
    assessment, written = both_ways(ADAPTERS["sandwell-xml"], data)
    education = next(e for e in assessment.elements if e.element is Element.EDUCATION)
    assert (education.rating, education.notes) == (score, answer)
    back = etree.fromstring(written).findall("Form")[0]
    found = {str(f.get("name")): f.text for f in back.iter("Field")}
    assert {k: found[k] for k in values} == values
    (q,) = [q for q in back.iter("Q") if q.get("code") == "DEV.EDU"]
    assert (q.get("score"), q.text) == (str(score), answer)


# --- random bytes -------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(ADAPTERS)), data=st.binary(max_size=300))
def test_random_bytes_never_crash_any_adapter(name: str, data: bytes) -> None:
    try:
        results = read(ADAPTERS[name], data)
    except MalformedInputError as exc:
        assert str(exc).startswith("random")
        return
    assert all(r.source == "random" for r in results)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["coventry-csv", "dudley-csv"]),
    cut=st.integers(1, 400),
    junk=st.binary(max_size=20),
)
def test_damaged_csv_exports_give_results_or_one_clear_error(
    name: str, cut: int, junk: bytes
) -> None:
    sample = (
        COVENTRY_CSV
        if name == "coventry-csv"
        else csv_bytes(DUDLEY_HEADER, DUDLEY_ROWS[0], "cp1252")
    )
    try:
        results = read(ADAPTERS[name], sample[:cut] + junk + sample[cut:])
    except MalformedInputError as exc:
        assert str(exc).startswith("random")
        return
    assert all(r.source == "random" for r in results)
