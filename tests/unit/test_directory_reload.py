"""A change to authorities.yaml is put in force like an adapter reload: checked in full first,
refused with the file and key named (the directory in force unchanged), audited with who asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from support.gateways import config_copy, settings_for
from typer.testing import CliRunner

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.cli import app
from gateway.context import Gateway, build
from gateway.ledger import audit
from gateway.transport.memory import MemoryTransport

pytestmark = pytest.mark.timeout(60)

COVENTRY = {
    "name": "Coventry City Council",
    "adapter": None,
    "coordinator": {"name": "Coventry CAF Co-ordinator"},
    "line_manager": {"name": "Coventry Early Help Service Manager"},
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return config_copy(tmp_path)


@pytest.fixture
def gw(tmp_path: Path, config: Path) -> Gateway:
    settings = settings_for(tmp_path, ("332",), config=config, keys_for=("332",))
    return build(settings, MemoryTransport())


def _edit(config: Path, change: Any) -> None:
    path = config / "authorities.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data["authorities"])
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def _call(gw: Gateway, role: str = "admin", **params: str) -> Any:
    keys = ApiKeys(gw.settings.api_keys_file)
    key = keys.issue(None, "admin") if role == "admin" else keys.issue("332")
    client = TestClient(create_app(gw, keys))
    auth = {"Authorization": f"Bearer {key}"}
    return client.post("/v1/admin/authorities/reload", params=params, headers=auth), client, auth


def _audited(gw: Gateway, action: str) -> list[audit.AuditEvent]:
    return [e.event for e in audit.entries(gw.ledger) if e.event.action == action]


def test_a_changed_authorities_yaml_is_put_in_force_by_a_reload_without_a_restart(
    gw: Gateway, config: Path
) -> None:
    def change(authorities: dict[str, Any]) -> None:
        authorities["331"] = COVENTRY
        authorities["336"]["coordinator"]["email"] = "new.coordinator@wolverhampton.example"

    _edit(config, change)
    assert "331" not in gw.settings.directory  # nothing happens before the reload
    answer, client, auth = _call(gw, requested_by="Jo Bloggs")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["reloaded"] is True
    assert (body["added"], body["removed"], body["changed"]) == (["331"], [], ["336"])
    assert gw.settings.directory.get("331").name == "Coventry City Council"
    listed = client.get("/v1/admin/authorities", headers=auth).json()
    assert "331" in {a["code"] for a in listed}
    (entry,) = _audited(gw, "DIRECTORY_RELOAD")
    assert entry.actor.startswith("Jo Bloggs (") and entry.authority == "332"
    assert "added 331" in (entry.detail or "") and "changed 336" in (entry.detail or "")


def test_an_invalid_authorities_yaml_is_refused_naming_the_key_and_nothing_changes(
    gw: Gateway, config: Path
) -> None:
    before = gw.settings.directory
    _edit(config, lambda a: a.update({"331": {"name": "Coventry City Council"}}))
    answer, _, _ = _call(gw)
    assert answer.status_code == 422
    body = answer.json()
    assert body["reloaded"] is False and "unchanged" in body["note"]
    assert "authorities.yaml: authorities.331.coordinator: Field required" in body["detail"]
    assert gw.settings.directory is before
    (refused,) = _audited(gw, "DIRECTORY_REFUSED")
    assert "authorities.331.coordinator" in (refused.detail or "")


def test_a_directory_without_an_authority_this_gateway_hosts_is_refused(
    gw: Gateway, config: Path
) -> None:
    _edit(config, lambda a: a.pop("332"))
    answer, _, _ = _call(gw)
    assert answer.status_code == 422
    assert "hosted: '332' is not in authorities.yaml" in answer.json()["detail"]
    assert "332" in gw.settings.directory


def test_a_directory_naming_an_adapter_that_is_not_loaded_is_refused(
    gw: Gateway, config: Path
) -> None:
    _edit(config, lambda a: a["334"].update({"adapter": "solihull-json"}))
    answer, _, _ = _call(gw)
    assert answer.status_code == 422
    assert "authorities.334.adapter: no adapter named 'solihull-json'" in answer.json()["detail"]


def test_a_directory_pinning_a_certificate_file_that_is_missing_is_refused(
    gw: Gateway, config: Path
) -> None:
    _edit(config, lambda a: a["336"].update({"certificate": "certs/336-missing.pem"}))
    answer, _, _ = _call(gw)
    assert answer.status_code == 422
    assert "authorities.336.certificate" in answer.json()["detail"]
    assert gw.verifier.trust is gw.outbox.trust  # the store in force was not replaced


def test_only_an_admin_may_reload_the_directory(gw: Gateway) -> None:
    answer, _, _ = _call(gw, role="la")
    assert answer.status_code == 403


def test_cafgw_authorities_validate_checks_a_change_without_putting_it_in_force(
    gw: Gateway, config: Path, tmp_path: Path
) -> None:
    changed = tmp_path / "authorities-new.yaml"
    data = yaml.safe_load((config / "authorities.yaml").read_text(encoding="utf-8"))
    data["authorities"]["331"] = COVENTRY
    changed.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {
        "CAFGW_KEYS_DIR": str(tmp_path / "keys"),
        "CAFGW_API_KEYS_FILE": str(tmp_path / "api-keys.json"),
        "CAFGW_HOSTED": '["332"]',
    }
    args = ["authorities", "validate", str(changed), "--config", str(config)]
    ok = CliRunner().invoke(app, args, env=env)
    assert ok.exit_code == 0, ok.output
    assert "valid, against the directory in force" in ok.output and "added 331" in ok.output
    data["authorities"]["331"] = {"name": "no coordinator"}
    changed.write_text(yaml.safe_dump(data), encoding="utf-8")
    bad = CliRunner().invoke(app, args, env=env)
    assert bad.exit_code == 2 and "authorities.331.coordinator" in bad.output
