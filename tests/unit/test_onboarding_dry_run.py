"""Onboarding: a draft mapping is tried on an export without installing it, and the dry run
shows what policy would do with each record (sent where, held or refused why) exactly as a
real send then does, while keeping nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ops_helpers import make_gateway
from typer.testing import CliRunner

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.cli import app
from gateway.context import Gateway
from gateway.ledger import audit
from gateway.ledger.status import Status
from gateway.services import outbound, preview

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"
COVENTRY = ROOT / "docs" / "examples" / "coventry-331"


def _counts(gw: Gateway) -> tuple[int, int]:
    return len(gw.ledger.find(limit=10_000, with_history=False)), len(audit.entries(gw.ledger))


def test_the_preview_says_what_a_real_send_then_does_and_keeps_nothing(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, hosted=("332", "333", "336"))
    before = _counts(gw)
    adapter = gw.adapters.get("dudley-csv")
    seen = preview.preview(gw, adapter, "332", io.BytesIO(DUDLEY.read_bytes()), DUDLEY.name)
    assert _counts(gw) == before  # no message, no audit entry, no consent entry kept
    with DUDLEY.open("rb") as stream:
        real = outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)

    def shape(report):  # type: ignore[no-untyped-def]
        return [(o.record, o.kind, o.status, o.recipients, o.reasons) for o in report.outcomes]

    assert shape(seen) == shape(real)
    assert {o.status for o in seen.outcomes} >= {Status.SIGNED, Status.HELD_LOCAL, Status.REJECTED}
    held = [o for o in seen.outcomes if o.status == Status.HELD_LOCAL]
    assert all(o.reasons for o in held)  # held why: the rule


class Admin:
    def __init__(self, gw: Gateway, tmp_path: Path) -> None:
        keys = ApiKeys(tmp_path / "api-keys.json")
        self.headers = {"Authorization": "Bearer " + keys.issue(None, "admin")}
        self.client = TestClient(create_app(gw, keys))


def test_a_draft_mapping_is_tried_on_an_export_over_the_api_without_installing_it(
    tmp_path: Path,
) -> None:
    gw = make_gateway(tmp_path, hosted=("332",))
    admin = Admin(gw, tmp_path)
    assert "coventry-csv" not in gw.adapters.by_name
    answer = admin.client.post(
        "/v1/admin/adapters/draft/dry-run",
        params={"authority": "331"},
        headers=admin.headers,
        files={
            "mapping": ("coventry-csv.yaml", (COVENTRY / "coventry-csv.yaml").read_bytes()),
            "export": ("caf-cases-2026-10.csv", (COVENTRY / "caf-cases-2026-10.csv").read_bytes()),
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["converted"] == 2 and body["rejected"] == 1
    assert any(e.startswith("caf-cases-2026-10.csv:4:") for e in body["errors"])
    assert body["policy"]["previewed"] is False  # 331 is not hosted here
    assert "coventry-csv" not in gw.adapters.by_name
    broken = admin.client.post(
        "/v1/admin/adapters/draft/dry-run",
        params={"authority": "331"},
        headers=admin.headers,
        files={"mapping": ("x.yaml", b"kind: csv\nname: x\n"), "export": ("e.csv", b"A\n")},
    )
    assert broken.status_code == 422 and "x.yaml" in broken.json()["detail"]


def test_the_api_dry_run_of_a_hosted_authority_shows_what_policy_would_do(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, hosted=("332", "333", "336"))
    admin = Admin(gw, tmp_path)
    answer = admin.client.post(
        "/v1/admin/adapters/dry-run",
        params={"adapter": "dudley-csv", "authority": "332", "source": DUDLEY.name},
        headers={**admin.headers, "Content-Type": "application/octet-stream"},
        content=DUDLEY.read_bytes(),
    )
    assert answer.status_code == 200, answer.text
    policy = answer.json()["policy"]
    assert policy["previewed"] and policy["sent"] == 1 and policy["held"] == 2
    sent = next(o for o in policy["outcomes"] if o["outcome"] == "SIGNED")
    assert sent["recipients"] == ["336", "333"]
    reasons = [r for o in policy["outcomes"] if o["outcome"] == "HELD_LOCAL" for r in o["reasons"]]
    assert any(r.startswith("consent.not-given") for r in reasons)
    assert gw.ledger.find(limit=10) == []


def test_the_cli_dry_run_prints_each_records_fate_and_sends_nothing(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, hosted=("332", "333", "336"))
    result = CliRunner().invoke(
        app,
        [
            "adapters",
            "dry-run",
            str(DUDLEY),
            "--adapter",
            "dudley-csv",
            "--authority",
            "332",
            "--config",
            str(ROOT / "config"),
        ],
        env={
            "CAFGW_KEYS_DIR": str(gw.settings.keys_dir),
            "CAFGW_DATABASE__URL": gw.settings.database.url,
            "CAFGW_HOSTED": '["332", "333", "336"]',
        },
    )
    assert result.exit_code == 0, result.output
    assert "consent.not-given" in result.output and "sharing.no-recipients" in result.output
    assert "Nothing was sent or kept" in result.output
    assert gw.ledger.find(limit=10) == []
