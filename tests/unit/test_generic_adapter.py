"""Declarative (YAML-only) adapters: the worked examples of docs/adapters.md, end to end."""

from __future__ import annotations

import csv
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from adapters import registry
from adapters.base import Adapter, Converted, Rejected, Result
from adapters.generic.fields import all_targets
from gateway.errors import MalformedInputError, MappingError, RecordError, UnknownAdapterError
from gateway.model import (
    CaseStatus,
    ConsentScope,
    Element,
    FlagCode,
    Gender,
    Outcome,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
COVENTRY = EXAMPLES / "coventry-331"
COVENTRY_MAPPING = COVENTRY / "coventry-csv.yaml"
COVENTRY_CSV = COVENTRY / "caf-cases-2026-10.csv"
SOLIHULL = EXAMPLES / "solihull-334"
SOLIHULL_MAPPING = SOLIHULL / "solihull-json.yaml"
SOLIHULL_JSON = SOLIHULL / "cases-2026-10.json"
REGION = frozenset({"330", "331", "332", "333", "334", "335", "336"})


@pytest.fixture
def adapters_dir(tmp_path: Path) -> Path:
    """An adapters directory as an administrator would make it: built-ins plus two YAML files."""
    folder = tmp_path / "adapters"
    shutil.copytree(ROOT / "config" / "adapters", folder)
    shutil.copy(COVENTRY_MAPPING, folder)
    shutil.copy(SOLIHULL_MAPPING, folder)
    return folder


@pytest.fixture
def coventry(adapters_dir: Path) -> Adapter:
    return registry.create("coventry-csv", adapters_dir, REGION)


@pytest.fixture
def solihull(adapters_dir: Path) -> Adapter:
    return registry.create("solihull-json", adapters_dir, REGION)


def read(adapter: Adapter, data: bytes, source: str = "export") -> list[Result]:
    return list(adapter.read(io.BytesIO(data), source))


def rows(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"), newline="")))


# --- registry -----------------------------------------------------------------


def test_the_registry_finds_yaml_mappings_by_their_kind_key(adapters_dir: Path) -> None:
    (adapters_dir / "notes.yaml").write_text("just: a note\n", encoding="utf-8")
    assert registry.discover(adapters_dir) == [
        "coventry-csv",
        "dudley-csv",
        "sandwell-xml",
        "solihull-json",
        "wolverhampton-json",
    ]


def test_built_in_adapters_still_build_beside_generic_ones(adapters_dir: Path) -> None:
    built = {name: registry.create(name, adapters_dir, REGION) for name in registry.names()}
    assert {a.authority for a in built.values()} == {"332", "333", "336"}


def test_an_unknown_adapter_name_lists_the_known_ones(adapters_dir: Path) -> None:
    with pytest.raises(UnknownAdapterError, match="coventry-csv"):
        registry.create("nowhere-csv", adapters_dir, REGION)


def test_a_mapping_name_must_match_its_file_name(adapters_dir: Path) -> None:
    shutil.copy(COVENTRY_MAPPING, adapters_dir / "coventry-v2.yaml")
    with pytest.raises(MappingError, match=r"name: 'coventry-csv' must match"):
        registry.create("coventry-v2", adapters_dir, REGION)


# --- the Coventry CSV example ----------------------------------------------------


def test_coventry_good_rows_convert_and_the_bad_row_reports_every_problem(
    coventry: Adapter,
) -> None:
    results = read(coventry, COVENTRY_CSV.read_bytes(), COVENTRY_CSV.name)
    assert [type(r) for r in results] == [Converted, Converted, Rejected]
    bad = results[2]
    assert isinstance(bad, Rejected)
    assert [str(p) for p in bad.problems] == [
        "caf-cases-2026-10.csv:4:UPN: UPN check letter is Q, expected N (Q331200109990)",
        "caf-cases-2026-10.csv:4:BIRTH_DATE: no such day (expected a real date as dd.mm.yyyy) "
        "(31.04.2016)",
        "caf-cases-2026-10.csv:4:SEX: unknown gender code (known: M, F, O, U) (X)",
        "caf-cases-2026-10.csv:4:ETHNIC_CODE: unknown ethnicity code (known: WBRI, WIRI, WOTH, "
        "MWBC, AIND, APKN, BAFR, CHNE, NOBT) (ZZZ)",
        "caf-cases-2026-10.csv:4:INTERPRETER: must be Yes or No (Maybe)",
        "caf-cases-2026-10.csv:4:CONSENT_SCOPES: unknown consent_scope code (known: RECORD, "
        "SHARE_LA, XBORDER, TAC) (GOSSIP)",
        "caf-cases-2026-10.csv:4:SHARE_LAS: 999 is not a DfE LA code (999)",
        "caf-cases-2026-10.csv:4:HEALTH_SCORE: rating must be a whole number from 1 to 4 (5)",
    ]


def test_coventry_row_carries_every_mapped_column_to_the_canonical_model(
    coventry: Adapter,
) -> None:
    first = read(coventry, COVENTRY_CSV.read_bytes())[0]
    assert isinstance(first, Converted)
    a = first.assessment
    assert (a.case_ref, a.status, a.outcome) == ("COV-1001", CaseStatus.OPEN, Outcome.MULTI_AGENCY)
    assert a.child.gender is Gender.FEMALE and a.child.ethnicity == "BAFR"
    assert a.child.identifier("NHS") == "9990001057"  # spaces removed
    assert a.child.interpreter_needed is False and a.child.language == "English"
    assert a.carers[0].name == "Grace Okafor" and a.carers[0].relationship == "Mother"
    assert [(e.element, e.rating) for e in a.elements] == [
        (Element.HEALTH, 2),
        (Element.EDUCATION, 3),
        (Element.HOUSING, 1),
    ]
    assert [x.description for x in a.actions] == [
        "Asthma plan with school nurse",
        "Attendance mentor",
    ]
    assert a.flags[0].code is FlagCode.SERVICE_GAP
    assert a.consent is not None
    assert ConsentScope.SHARE_CROSS_BORDER in a.consent.scopes
    assert first.share_with == ("330",)
    assert first.consent is not None
    assert a.source_system == "Coventry CAF case list"


def test_coventry_round_trip_keeps_every_mapped_column(coventry: Adapter) -> None:
    original = rows(COVENTRY_CSV.read_bytes())[:2]
    good = [
        r.assessment for r in read(coventry, COVENTRY_CSV.read_bytes()) if isinstance(r, Converted)
    ]
    written = coventry.write(good)
    back = rows(written)
    mapped = [c for c in original[0] if c != "LAST_EDITED_BY"]
    for before, after in zip(original, back, strict=True):
        expected = {c: before[c].replace("999 000 1057", "9990001057") for c in mapped}
        assert {c: after[c] for c in mapped} == expected
    again = [r.assessment for r in read(coventry, written) if isinstance(r, Converted)]
    assert again == good


def test_a_canonical_assessment_from_another_authority_is_written_for_coventry(
    coventry: Adapter, adapters_dir: Path
) -> None:
    ehm = registry.create("wolverhampton-json", adapters_dir, REGION)
    data = (ROOT / "tests/data/wolverhampton-336/ehm-export-2026-10-01.json").read_bytes()
    first = next(r for r in read(ehm, data) if isinstance(r, Converted))
    back = read(coventry, coventry.write([first.assessment]))
    assert isinstance(back[0], Converted)
    assert back[0].assessment.child.given_name == first.assessment.child.given_name
    assert len(back[0].assessment.carers) == len(first.assessment.carers)


def test_a_value_coventry_has_no_code_for_is_named_when_writing(coventry: Adapter) -> None:
    first = read(coventry, COVENTRY_CSV.read_bytes())[0]
    assert isinstance(first, Converted)
    bad = replace(first.assessment, child=replace(first.assessment.child, ethnicity="GYPS"))
    with pytest.raises(RecordError, match="coventry-csv:COV-1001:ETHNIC_CODE: no ethnicity code"):
        coventry.write([bad])


def test_a_csv_with_a_missing_column_is_one_clear_error(coventry: Adapter) -> None:
    text = COVENTRY_CSV.read_text(encoding="utf-8").replace("SEX,", "", 1)
    with pytest.raises(MalformedInputError, match=r"SEX missing from the header"):
        read(coventry, text.encode())


def test_an_unknown_column_must_be_mapped_or_ignored(coventry: Adapter) -> None:
    text = COVENTRY_CSV.read_text(encoding="utf-8").replace("LAST_EDITED_BY", "LAST_EDITED_BY,X", 1)
    with pytest.raises(MalformedInputError, match="column X not known to the mapping"):
        read(coventry, text.encode())


def test_a_file_in_the_wrong_encoding_is_one_clear_error(coventry: Adapter) -> None:
    data = COVENTRY_CSV.read_text(encoding="utf-8").encode("utf-16")
    with pytest.raises(MalformedInputError, match=r"not valid utf-8|NUL byte"):
        read(coventry, data)


# --- the Solihull JSON example -----------------------------------------------------


def test_solihull_records_convert_with_groups_events_and_withdrawals(solihull: Adapter) -> None:
    results = read(solihull, SOLIHULL_JSON.read_bytes(), SOLIHULL_JSON.name)
    good, bad = results
    assert isinstance(good, Converted)
    a = good.assessment
    assert a.child.address is not None and a.child.address.postcode == "B91 3QW"
    assert a.consent is not None
    assert a.consent.active_scopes() == {ConsentScope.RECORD, ConsentScope.SHARE_WITHIN_LA}
    assert a.actions[0].owner_la == "334" and a.events[0].at.tzinfo is not None
    assert isinstance(bad, Rejected)
    assert [str(p) for p in bad.problems] == [
        "cases-2026-10.json:SOL-89:child.shoeSize: not in the mapping solihull-json; map or "
        "ignore cases[].child.shoeSize there (3)",
        "cases-2026-10.json:SOL-89:state: unknown status code (known: draft, open, closed) "
        "(archived)",
        "cases-2026-10.json:SOL-89:opened: not a date as yyyy-mm-dd (28/09/2026)",
    ]


def test_solihull_round_trip_keeps_every_mapped_path(solihull: Adapter) -> None:
    original = json.loads(SOLIHULL_JSON.read_bytes())["cases"][0]
    good = [
        r.assessment for r in read(solihull, SOLIHULL_JSON.read_bytes()) if isinstance(r, Converted)
    ]
    written = json.loads(solihull.write(good))["cases"][0]
    del original["ui"]  # ignored, with why
    original["child"]["home"]["postcode"] = "B91 3QW"  # normalised
    assert written == original
    again = [r.assessment for r in read(solihull, solihull.write(good)) if isinstance(r, Converted)]
    assert again == good


def test_an_unmapped_top_level_key_is_one_clear_error(solihull: Adapter) -> None:
    with pytest.raises(MalformedInputError, match="top-level key 'secret' is not in the mapping"):
        read(solihull, b'{"cases": [], "secret": 1}')


def test_truncated_json_is_one_clear_error(solihull: Adapter) -> None:
    with pytest.raises(MalformedInputError, match="line"):
        read(solihull, SOLIHULL_JSON.read_bytes()[:300])


# --- bad mappings name the key ----------------------------------------------------


def edited(source: Path, tmp_path: Path, edit: dict[str, object]) -> Path:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    for dotted, value in edit.items():
        *parents, last = dotted.split("/")
        target = data
        for key in parents:
            target = target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"kind": "xls"}, "kind: must be one of csv, json"),
        ({"encoding": "klingon-1"}, "encoding: 'klingon-1'"),
        ({"authority": "999"}, "authority:"),
        ({"fields/mapped/SEX": "Child.shoe_size"}, "fields.mapped.SEX: 'Child.shoe_size'"),
        ({"fields/mapped/CASE_NO": None}, "no field maps to Assessment.case_ref"),
        (
            {"codes/gender": None},
            "fields.mapped.SEX: Child.gender needs the code list codes.gender",
        ),
        ({"codes/outcome/decode/TAC": "LOTS"}, "codes.outcome.decode.TAC"),
        ({"codes/shoes": {"decode": {"A": "B"}}}, "codes.shoes: not a code list"),
        ({"true_tokens": [True]}, "true_tokens: quote the tokens"),
        ({"date_formats": ["%Q"]}, "date_formats: '%Q'"),
        ({"fields/mapped/CASE_{n}": "Assessment.case_ref"}, "fields.mapped.CASE_{n}"),
        ({"fields/mapped/ACTION{n}_TEXT": None}, "Assessment.actions.description"),
        ({"fields/ignored/LAST_EDITED_BY": " "}, "fields.ignored.LAST_EDITED_BY: say why"),
        ({"min_groups/Assessment.events": 2}, "min_groups.Assessment.events"),
    ],
)
def test_a_bad_csv_mapping_is_refused_naming_the_key(
    tmp_path: Path, edit: dict[str, object], named: str
) -> None:
    path = edited(COVENTRY_MAPPING, tmp_path, edit)
    with pytest.raises(
        MappingError, match=named.replace(".", r"\.").replace("{", r"\{").replace("(", r"\(")
    ):
        registry.create("coventry-csv", tmp_path, REGION)
    assert path.exists()


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"fields/mapped/cases[].plan[].what": None}, "Assessment.actions.description"),
        ({"fields/mapped/child.first": "Child.given_name"}, "must start with cases[]."),
        ({"fields/mapped/cases[].a[].b[].c": "Assessment.actions.owner"}, "nested lists"),
        ({"encoding": "latin-1"}, "a JSON export must be utf-8"),
        ({"records": None}, "records must be a string"),
    ],
)
def test_a_bad_json_mapping_is_refused_naming_the_key(
    tmp_path: Path, edit: dict[str, object], named: str
) -> None:
    edited(SOLIHULL_MAPPING, tmp_path, edit)
    with pytest.raises(MappingError, match=named.replace(".", r"\.").replace("[", r"\[")):
        registry.create("solihull-json", tmp_path, REGION)


def test_every_documented_target_is_listed_in_docs() -> None:
    docs = (ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
    missing = [t for t in all_targets() if f"`{t}`" not in docs]
    assert missing == []
