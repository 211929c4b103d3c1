"""An uploaded export's problems name the file (and row), not "upload"."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ops_helpers import FakeProbe, make_gateway

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.api.routes.ops import OpsState

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"


@pytest.mark.parametrize(
    ("headers", "params", "name"),
    [
        ({"Content-Disposition": 'attachment; filename="caf-register-2026-09.csv"'}, {}, None),
        ({}, {"source": "export-from-capita.csv"}, "export-from-capita.csv"),
        ({}, {}, "upload"),
    ],
)
def test_rejected_rows_of_an_upload_are_named_by_file_and_row(
    tmp_path: Path, headers: dict[str, str], params: dict[str, str], name: str | None
) -> None:
    gw = make_gateway(tmp_path, hosted=("332",))
    keys = ApiKeys(tmp_path / "api-keys.json")
    app = create_app(gw, keys)
    app.state.cafgw_ops = OpsState.for_gateway(gw, FakeProbe())
    answer = TestClient(app).post(
        "/v1/messages",
        params={"adapter": "dudley-csv", **params},
        content=DUDLEY.read_bytes(),
        headers={"Authorization": "Bearer " + keys.issue("332"), **headers},
    )
    assert answer.status_code == 202, answer.text
    (bad,) = [r for r in answer.json()["records"] if r["status"] == "REJECTED"]
    assert bad["reasons"][0].startswith(f"{name or DUDLEY.name}:5:")
