"""The canonical field reference is generated from the model; mapping errors name the
valid fields; an export may name authorities ("Dudley") where a code is expected."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

from adapters import registry
from adapters.base import Converted, Rejected
from adapters.generic import reference
from adapters.generic.fields import all_targets
from gateway.errors import MappingError

ROOT = Path(__file__).resolve().parents[2]
COVENTRY = ROOT / "docs" / "examples" / "coventry-331"
REGION = frozenset({"330", "331", "332", "333", "334", "335", "336"})


def test_the_field_reference_in_docs_adapters_md_is_the_one_generated_from_the_model() -> None:
    page = (ROOT / "docs" / "adapters.md").read_text(encoding="utf-8")
    assert reference.replace_in(page) == page, (
        "docs/adapters.md is out of date: run cafgw adapters fields --write docs/adapters.md"
    )


@pytest.mark.parametrize("target", all_targets())
def test_every_target_a_mapping_may_fill_is_a_field_of_the_model(target: str) -> None:
    example = (
        target.replace("<Element>", "Health")
        .replace("<Scope>", "RECORD")
        .replace("<scheme>", "LOCAL")
    )
    assert reference.model_field(example).startswith("Assessment.")


def test_a_target_naming_no_model_field_is_found_out() -> None:
    with pytest.raises(LookupError, match="has no field 'sex'"):
        reference.model_field("Child.sex")


def test_the_reference_lists_what_the_model_has_but_no_mapping_fills() -> None:
    left = reference.unfilled()
    assert "Assessment.tac_meetings[].attendees[].name" in left
    assert "Assessment.child.gender" not in left
    assert "Assessment.lead_professionals[].practitioner.name" not in left


def _coventry(tmp_path: Path, edit: dict[str, object]) -> Path:
    folder = tmp_path / "adapters"
    folder.mkdir()
    data = yaml.safe_load((COVENTRY / "coventry-csv.yaml").read_text(encoding="utf-8"))
    for key, value in edit.items():
        where, _, last = key.rpartition(".")
        node = data
        for step in where.split(".") if where else []:
            node = node[step]
        node[last] = value
    (folder / "coventry-csv.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return folder


def test_a_misspelt_target_is_refused_naming_the_nearest_and_every_valid_child_field(
    tmp_path: Path,
) -> None:
    folder = _coventry(tmp_path, {"fields.mapped.BIRTH_DATE": "Child.date_of_brith"})
    with pytest.raises(MappingError) as refused:
        registry.create("coventry-csv", folder, REGION)
    said = str(refused.value)
    assert "fields.mapped.BIRTH_DATE: 'Child.date_of_brith' is not a canonical field" in said
    assert "did you mean Child.date_of_birth?" in said
    for valid in ("Child.gender", "Child.identifiers.UPN", "Child.school.la_code"):
        assert valid in said
    assert "Assessment.case_ref" not in said  # only the names beside the one meant


def test_authority_names_in_an_export_are_read_as_dfe_codes_and_written_back_as_names(
    tmp_path: Path,
) -> None:
    folder = _coventry(tmp_path, {"codes.la": {"names": "dfe", "decode": {"Cov": "331"}}})
    adapter = registry.create("coventry-csv", folder, REGION)
    text = (COVENTRY / "caf-cases-2026-10.csv").read_text(encoding="utf-8").splitlines()
    header, first = text[0], text[1]
    named = first.replace(",CV1 5FB,331,", ",CV1 5FB,Coventry,").replace(
        "RECORD|SHARE_LA|XBORDER,330,", "RECORD|SHARE_LA|XBORDER,Birmingham|Dudley,"
    )
    unknown = first.replace(",CV1 5FB,331,", ",CV1 5FB,Atlantis,").replace("COV-1001", "COV-9")
    data = "\r\n".join([header, named, unknown]).encode("utf-8") + b"\r\n"
    got = list(adapter.read(io.BytesIO(data), "export.csv"))
    assert isinstance(got[0], Converted), got[0]
    a = got[0].assessment
    assert a.child.address is not None and a.child.address.la_code == "331"
    assert a.consent is not None and a.consent.named_las == ("330", "332")
    assert isinstance(got[1], Rejected)
    assert any(
        p.field == "HOME_LA" and "nor an authority name of codes.la" in p.reason
        for p in got[1].problems
    )
    written = adapter.write([a]).decode("utf-8")
    assert ",Cov," in written  # the local spelling comes first when written back
    assert "Birmingham|Dudley" in written


def test_an_la_name_list_must_name_real_dfe_codes(tmp_path: Path) -> None:
    folder = _coventry(tmp_path, {"codes.la": {"decode": {"Gotham": "999"}}})
    with pytest.raises(MappingError, match=r"codes.la.decode.Gotham: '999' is not a canonical"):
        registry.create("coventry-csv", folder, REGION)


def test_a_copy_of_the_reference_is_written_between_the_markers_only(tmp_path: Path) -> None:
    page = tmp_path / "adapters.md"
    page.write_text(f"# Intro\n\n{reference.BEGIN}\nold\n{reference.END}\n\n## After\n")
    done = reference.replace_in(page.read_text())
    assert done.startswith("# Intro\n\n" + reference.BEGIN)
    assert "old" not in done and done.endswith(f"{reference.END}\n\n## After\n")
    assert "| `Child.gender` |" in done
