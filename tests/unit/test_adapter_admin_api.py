"""Admin HTTP endpoints for adapters: list, validate, dry-run, reload."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway, build
from gateway.envelope.keys import ensure_identity
from gateway.settings import load_settings
from gateway.transport.memory import MemoryTransport

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
COVENTRY = ROOT / "docs" / "examples" / "coventry-331"
SOLIHULL = ROOT / "docs" / "examples" / "solihull-334"


class Admin:
    def __init__(self, gw: Gateway) -> None:
        keys = ApiKeys(gw.settings.api_keys_file)
        self.admin = keys.issue(None, "admin")
        self.la = keys.issue("332")
        self.client = TestClient(create_app(gw, keys))

    def call(self, method: str, path: str, *, as_la: bool = False, **kw: Any) -> Any:
        key = self.la if as_la else self.admin
        return self.client.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kw)


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    adapters = tmp_path / "adapters"
    shutil.copytree(ROOT / "config" / "adapters", adapters)
    shutil.copy(COVENTRY / "coventry-csv.yaml", adapters)
    settings = load_settings(
        ROOT / "config",
        env={},
        overrides={
            "hosted": ["332"],
            "database": {"url": f"sqlite:///{tmp_path / 'ledger.db'}"},
            "keys_dir": str(tmp_path / "keys"),
            "api_keys_file": str(tmp_path / "api-keys.json"),
            "adapters_dir": str(adapters),
        },
    )
    ensure_identity("332", "Dudley", settings.keys_dir)
    return build(settings, MemoryTransport())


@pytest.fixture
def api(gw: Gateway) -> Admin:
    return Admin(gw)


def test_admin_lists_every_adapter_with_its_version_and_kind(api: Admin) -> None:
    answer = api.call("GET", "/v1/admin/adapters")
    assert answer.status_code == 200
    assert answer.json() == [
        {"name": "coventry-csv", "version": "1", "authority": "331", "kind": "csv"},
        {"name": "dudley-csv", "version": "1", "authority": "332", "kind": "built-in"},
        {"name": "sandwell-xml", "version": "1.0", "authority": "333", "kind": "built-in"},
        {"name": "wolverhampton-json", "version": "1.0", "authority": "336", "kind": "built-in"},
    ]


def test_an_authority_key_cannot_use_the_admin_endpoints(api: Admin) -> None:
    assert api.call("GET", "/v1/admin/adapters", as_la=True).status_code == 403
    assert api.call("POST", "/v1/admin/adapters/reload", as_la=True).status_code == 403


def test_a_valid_mapping_validates_without_being_put_in_force(api: Admin, gw: Gateway) -> None:
    body = (SOLIHULL / "solihull-json.yaml").read_bytes()
    answer = api.call("POST", "/v1/admin/adapters/validate", content=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["valid"] is True and answer.json()["kind"] == "json"
    assert "solihull-json" not in gw.adapters.by_name


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        (b"SEX: Child.gender", b"SEX: Child.sex", "fields.mapped.SEX"),
        (b"kind: csv", b"kind: xls", "kind: must be one of csv, json"),
        (b"TAC: MULTI_AGENCY", b"TAC: LOTS", "codes.outcome.decode.TAC"),
    ],
)
def test_an_invalid_mapping_is_refused_naming_the_key(
    api: Admin, old: bytes, new: bytes, named: str
) -> None:
    body = (COVENTRY / "coventry-csv.yaml").read_bytes().replace(old, new)
    answer = api.call("POST", "/v1/admin/adapters/validate", content=body)
    assert answer.status_code == 422
    assert answer.json()["valid"] is False
    assert named in answer.json()["detail"]


def test_a_built_in_mapping_is_validated_by_its_own_loader(api: Admin) -> None:
    body = (ROOT / "config" / "adapters" / "dudley-csv.yaml").read_bytes()
    good = api.call("POST", "/v1/admin/adapters/validate", content=body)
    assert good.status_code == 200 and good.json()["name"] == "dudley-csv"
    bad = body.replace(b"encoding: cp1252", b"encoding: klingon")
    answer = api.call("POST", "/v1/admin/adapters/validate", content=bad)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("mapping: encoding:")


def test_a_dry_run_returns_canonical_xml_and_every_error_and_records_nothing(
    api: Admin, gw: Gateway
) -> None:
    data = (COVENTRY / "caf-cases-2026-10.csv").read_bytes()
    answer = api.call(
        "POST",
        "/v1/admin/adapters/dry-run",
        params={"adapter": "coventry-csv", "authority": "331", "source": "cases.csv"},
        content=data,
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["converted"], report["rejected"]) == (2, 1), report["errors"]
    assert [r["case_ref"] for r in report["records"]] == ["COV-1001", "COV-1002"]
    assert "<CaseRef>COV-1001</CaseRef>" in report["records"][0]["canonical"]
    assert len(report["errors"]) == 8
    assert all(e.startswith("cases.csv:4:") for e in report["errors"])
    assert "cases.csv:4:ETHNIC_CODE: unknown ethnicity code" in report["errors"][3]
    assert gw.ledger.find(limit=10) == []


def test_a_dry_run_of_a_malformed_file_is_one_clear_400(api: Admin) -> None:
    data = (COVENTRY / "caf-cases-2026-10.csv").read_bytes().replace(b"SEX,", b"", 1)
    answer = api.call(
        "POST",
        "/v1/admin/adapters/dry-run",
        params={"adapter": "coventry-csv", "authority": "331"},
        content=data,
    )
    assert answer.status_code == 400
    assert "SEX missing from the header" in answer.json()["detail"]


def test_a_dry_run_with_an_unknown_adapter_is_refused(api: Admin) -> None:
    answer = api.call(
        "POST",
        "/v1/admin/adapters/dry-run",
        params={"adapter": "nowhere-csv", "authority": "331"},
        content=b"x",
    )
    assert answer.status_code == 400 and "nowhere-csv" in answer.json()["detail"]


def test_reload_puts_a_new_mapping_in_force_without_a_restart(api: Admin, gw: Gateway) -> None:
    shutil.copy(SOLIHULL / "solihull-json.yaml", gw.settings.adapters_dir)
    answer = api.call("POST", "/v1/admin/adapters/reload")
    assert answer.status_code == 200, answer.text
    assert "solihull-json" in [a["name"] for a in answer.json()["adapters"]]
    assert gw.adapters.get("solihull-json").authority == "334"


def test_a_failing_reload_names_the_key_and_keeps_the_previous_mappings(
    api: Admin, gw: Gateway
) -> None:
    before = gw.adapters.by_name
    path = gw.settings.adapters_dir / "coventry-csv.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("SEX: Child.gender", "SEX: Child.sex"),
        encoding="utf-8",
    )
    answer = api.call("POST", "/v1/admin/adapters/reload")
    assert answer.status_code == 422
    assert "fields.mapped.SEX" in answer.json()["detail"]
    assert answer.json()["reloaded"] is False
    assert gw.adapters.by_name is before
    assert gw.adapters.get("coventry-csv").version == "1"
