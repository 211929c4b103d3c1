"""Reads of a child's record and actions that change state are the key holder's own, and
say so: the admin role cannot look children up, a subject-access report is audited as
a read of that child by the key that asked, and the audit chain names the API key that
made a request beside any name the request gave (a claim). Found by a review,
2026-12-06."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from ops_helpers import FakeProbe, make_gateway, put
from policy_support import pump
from support.api_attacks import ask_existence, existence_region
from support.gateways import config_copy

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.api.routes.ops import OpsState
from gateway.ledger import audit
from gateway.ledger.status import Status

UPN = "J336203317005"  # Kacper, whose CAF Wolverhampton (336) holds


def _key_id(header: dict[str, str]) -> str:
    return header["Authorization"].split("_")[1]


def test_admin_cannot_look_a_child_up_by_upn(tmp_path: Path) -> None:
    client, _auth, _gw = existence_region(tmp_path)
    keys = ApiKeys(tmp_path / "api-keys.json")
    admin = {"Authorization": "Bearer " + keys.issue(None, "admin", holder="Ops")}
    refused = client.get("/v1/messages", params={"authority": "336", "child": UPN}, headers=admin)
    assert refused.status_code == 403  # the stated rule
    for path in (f"/v1/children/{UPN}/report", f"/v1/children/{UPN}/consent"):
        got = client.get(path, params={"authority": "336"}, headers=admin)
        assert got.status_code == 403, f"{path}: {got.status_code} {got.text[:300]}"


def test_subject_access_report_is_audited_naming_the_key(tmp_path: Path) -> None:
    client, _auth, gw = existence_region(tmp_path)
    keys = ApiKeys(tmp_path / "api-keys.json")
    k336 = {"Authorization": "Bearer " + keys.issue("336", holder="Curious Clerk")}
    assert client.get(f"/v1/children/{UPN}/report", headers=k336).status_code == 200
    (sar,) = [e for e in audit.entries(gw.ledger, "336") if e.event.action == "SUBJECT_ACCESS"]
    assert _key_id(k336) in sar.event.actor, sar.event.actor
    seen = client.get(f"/v1/children/{UPN}/disclosures", headers=k336).json()
    assert any("report" in (e["detail"] or "") for e in seen["seen"] + seen["other"])


def test_held_query_approval_names_the_key(tmp_path: Path) -> None:
    config_copy(tmp_path, existence_safeguarding_hold=True)
    client, auth, gw = existence_region(tmp_path)
    query = ask_existence(client, auth, "Solihull MASH manager", "sibling at risk").json()[
        "message_id"
    ]
    pump(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    case_system = {
        "Authorization": "Bearer "
        + keys.issue("336", holder="EHM integration", holder_role="case system")
    }
    ok = client.post(
        f"/v1/existence-queries-held/{query}/approve",
        json={"by": "Ann Coordinator"},  # any key may claim to be the coordinator
        headers=case_system,
    )
    assert ok.status_code == 200
    actors = " ".join(
        e.event.actor + " " + (e.event.detail or "") for e in audit.entries(gw.ledger, "336")
    )
    assert _key_id(case_system) in actors, "approval not attributable to the key that made it"


def test_dashboard_replay_names_the_key(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, hosted=("332", "333", "336"))
    keys = ApiKeys(tmp_path / "api-keys.json")
    admin = {"Authorization": "Bearer " + keys.issue(None, "admin", holder="Jo Admin")}
    app = create_app(gw, keys)
    app.state.cafgw_ops = OpsState.for_gateway(gw, FakeProbe())
    client = TestClient(app)
    mid, _ = put(
        gw,
        "333",
        "334",
        Status.ACCEPTED,
        Status.SIGNED,
        Status.SENT,
        Status.DEAD_LETTERED,
        message_type="IssueLogEntry",
    )
    r = client.post(
        "/v1/dashboard/replay", headers=admin, json={"authority": "333", "message_id": mid}
    )
    assert r.status_code == 200
    (entry,) = [e for e in audit.entries(gw.ledger) if e.event.action == "REPLAY"]
    assert _key_id(admin) in entry.event.actor, entry.event.actor


def test_adapter_reload_is_audited(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path, hosted=("332", "333", "336"))
    keys = ApiKeys(tmp_path / "api-keys.json")
    admin = {"Authorization": "Bearer " + keys.issue(None, "admin", holder="Jo Admin")}
    client = TestClient(create_app(gw, keys))
    before = len(audit.entries(gw.ledger))
    r = client.post("/v1/admin/adapters/reload", headers=admin)
    assert r.status_code == 200, r.text
    reloads = [
        e for e in audit.entries(gw.ledger)[before:] if e.event.action == "ADAPTERS_RELOADED"
    ]
    assert {e.event.authority for e in reloads} == {"332", "333", "336"}
    assert all(_key_id(admin) in e.event.actor for e in reloads)
