"""cafgw adapters new NAME --from-sample FILE: a draft mapping from a sample export's header,
targets guessed by name, TODO for the rest; refused until each TODO is decided."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adapters.base import Converted, Rejected
from adapters.generic.draft import draft
from gateway.cli import app
from gateway.errors import MappingError
from gateway.services import adapter_admin

DATA = Path(__file__).resolve().parents[1] / "data"  # copies of /work/shared/samples
DUDLEY = DATA / "dudley-332" / "caf-register-2026-09.csv"
WOLVERHAMPTON = DATA / "wolverhampton-336" / "ehm-export-2026-10-01.json"


@pytest.fixture
def dudley(tmp_path: Path) -> Path:
    return Path(shutil.copy(DUDLEY, tmp_path / "walsall-export.csv"))


def test_a_draft_from_a_csv_header_guesses_targets_by_name_and_marks_the_rest_todo(
    dudley: Path,
) -> None:
    made = draft("walsall-csv", "335", dudley.read_bytes(), dudley.name)
    data = yaml.safe_load(made.text)
    mapped = data["fields"]["mapped"]
    assert data["kind"] == "csv" and data["authority"] == "335"
    assert data["encoding"] == "cp1252"  # the sample's Windows-1252 bytes
    assert data["date_formats"] == ["%d/%m/%Y"]
    assert mapped["CAF_REF"] == "Assessment.case_ref"
    assert mapped["DOB"] == "Child.date_of_birth"
    assert mapped["SURNAME"] == "Child.family_name"
    assert mapped["NHS_NO"] == "Child.identifiers.NHS"
    assert mapped["SHARE_XBORDER"] == "ConsentRecord.scopes.SHARE_CROSS_BORDER"
    assert mapped["ACTION_{n}_DUE"] == "Assessment.actions.due"  # numbered columns: one group
    assert mapped["DEV_HEALTH"] == "TODO"
    assert "DEV_HEALTH" in made.todo and "CAF_REF" in made.guessed
    assert data["codes"]["gender"]["decode"] == {"F": "FEMALE", "M": "MALE", "Q": "TODO"}


def test_a_draft_from_a_json_export_maps_record_paths_and_its_framework_elements() -> None:
    made = draft("ehm-draft", "336", WOLVERHAMPTON.read_bytes(), WOLVERHAMPTON.name)
    data = yaml.safe_load(made.text)
    mapped = data["fields"]["mapped"]
    assert data["kind"] == "json" and data["records"] == "episodes"
    assert mapped["episodes[].child.names.family"] == "Child.family_name"
    assert mapped["episodes[].child.sex"] == "Child.gender"
    assert mapped["episodes[].plan[].due"] == "Assessment.actions.due"
    assert mapped["episodes[].events[].detail.laCode"] == "Assessment.events.la_code"
    assert (
        mapped["episodes[].assessment.dimensions.Health.rating"]
        == "Assessment.elements.Health.rating"
    )
    assert mapped["episodes[].tacMeetings[].leadProfessionalAgreed.name"] == "TODO"
    assert data["fields"]["ignored"]["exportedAt"].startswith("TODO")
    assert "ConsentRecord.given" in made.missing  # the export has no such field: say so


def test_a_draft_is_refused_by_validation_until_every_todo_is_decided(dudley: Path) -> None:
    made = draft("walsall-csv", "335", dudley.read_bytes(), dudley.name)
    with pytest.raises(MappingError, match="'TODO' is not a canonical"):
        adapter_admin.validate_mapping(made.text, "walsall-csv.yaml")
    json_draft = draft("ehm-draft", "336", WOLVERHAMPTON.read_bytes(), WOLVERHAMPTON.name)
    data = yaml.safe_load(json_draft.text)
    data["fields"]["mapped"] = {k: v for k, v in data["fields"]["mapped"].items() if v != "TODO"}
    with pytest.raises(MappingError, match=r"fields\.ignored\.exportedAt: say why"):
        adapter_admin.validate_mapping(yaml.safe_dump(data), "ehm-draft.yaml")


def test_a_draft_with_its_todos_decided_converts_the_sample(dudley: Path) -> None:
    data = yaml.safe_load(draft("walsall-csv", "335", dudley.read_bytes(), dudley.name).text)
    fields = data["fields"]
    todo = [k for k, v in fields["mapped"].items() if v == "TODO"]
    fields["ignored"] = {k: "element notes are kept locally" for k in todo}
    fields["mapped"] = {k: v for k, v in fields["mapped"].items() if v != "TODO"}
    data["codes"]["gender"]["decode"]["Q"] = "NOT_KNOWN"
    data["codes"]["consent_role"]["decode"] = {
        "Mother": "PARENT",
        "Child (Gillick competent)": "CHILD",
    }
    data["codes"]["outcome"]["decode"].update(
        NEEDS_MULTI_AGENCY="MULTI_AGENCY", NEEDS_SINGLE_AGENCY="SINGLE_AGENCY"
    )
    text = yaml.safe_dump(data, allow_unicode=True)
    with adapter_admin.draft_adapter(text, "walsall-csv.yaml") as adapter:
        results = list(adapter.read(io.BytesIO(dudley.read_bytes()), dudley.name))
    good = [r for r in results if isinstance(r, Converted)]
    assert [r.assessment.case_ref for r in good][:2] == ["DUD-2026-00417", "DUD-2026-00418"]
    bad = [r for r in results if isinstance(r, Rejected)]
    assert len(bad) == 1  # the sample's deliberately broken last row


def test_cafgw_adapters_new_writes_the_draft_and_will_not_overwrite_it(
    dudley: Path, tmp_path: Path
) -> None:
    out = tmp_path / "walsall-csv.yaml"
    args = ["adapters", "new", "walsall-csv", "--from-sample", str(dudley), "--out", str(out)]
    made = CliRunner().invoke(app, [*args, "--authority", "335"])
    assert made.exit_code == 0, made.output
    assert "fields guessed" in made.output and "TODO" in made.output
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["name"] == "walsall-csv"
    again = CliRunner().invoke(app, [*args, "--authority", "335"])
    assert again.exit_code == 1 and "--force" in again.output
