"""The dashboard's page and JSON: who sees what, and replaying a dead letter."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ops_helpers import Clock, FakeProbe, make_gateway, put

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys, Caller
from gateway.api.routes.ops import OpsState
from gateway.context import Gateway
from gateway.dashboard.view import build_view
from gateway.envelope.keys import ensure_identity
from gateway.ledger import audit, bodies
from gateway.ledger.status import Direction, Status

pytestmark = pytest.mark.timeout(60)


class Board:
    def __init__(self, tmp_path: Path) -> None:
        self.gw: Gateway = make_gateway(tmp_path, hosted=("332", "333", "336"))
        keys = ApiKeys(tmp_path / "api-keys.json")
        self.admin = {"Authorization": "Bearer " + keys.issue(None, "admin")}
        self.k336 = {"Authorization": "Bearer " + keys.issue("336")}
        app = create_app(self.gw, keys)
        app.state.cafgw_ops = OpsState.for_gateway(self.gw, FakeProbe())
        self.client = TestClient(app)


@pytest.fixture
def board(tmp_path: Path) -> Board:
    return Board(tmp_path)


def dead_letter(gw: Gateway, reason: str = "no receipt from 334 after 6 sends") -> str:
    message_id, _ = put(
        gw,
        "333",
        "334",
        Status.ACCEPTED,
        Status.SIGNED,
        Status.SENT,
        Status.DEAD_LETTERED,
        message_type="IssueLogEntry",
        reason=reason,
    )
    return message_id


def test_the_page_carries_no_data_and_a_strict_content_security_policy(board: Board) -> None:
    put(board.gw, "332", "336", Status.ACCEPTED, Status.SIGNED)
    response = board.client.get("/")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert 'id="login-form"' in response.text
    assert "/dashboard/static/dashboard.js" in response.text
    assert "Needs a human" in response.text
    assert "332" not in response.text
    assert board.client.get("/dashboard/static/dashboard.js").status_code == 200
    assert board.client.get("/dashboard/static/../../context.py").status_code == 404


def test_the_dashboard_json_needs_an_api_key(board: Board) -> None:
    assert board.client.get("/v1/dashboard").status_code == 401


def test_an_authority_sees_only_its_own_messages_and_panels(board: Board) -> None:
    mine, _ = put(
        board.gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND
    )
    theirs, _ = put(board.gw, "332", "333", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    hidden = dead_letter(board.gw)
    view = board.client.get("/v1/dashboard", headers=board.k336).json()
    assert view["viewer"] == {"role": "authority", "authority": "336"}
    assert [a["code"] for a in view["authorities"]] == ["336"]
    shown = {
        m["message_id"] for key in ("recent", "attention", "awaiting_receipt") for m in view[key]
    }
    assert mine in shown
    assert theirs not in shown and hidden not in shown


def test_an_admin_sees_every_hosted_authority_and_what_needs_a_human(board: Board) -> None:
    message_id = dead_letter(board.gw)
    view = board.client.get("/v1/dashboard", headers=board.admin).json()
    assert [a["code"] for a in view["authorities"]] == ["332", "333", "336"]
    (line,) = [m for m in view["attention"] if m["message_id"] == message_id]
    assert line["status"] == "DEAD_LETTERED"
    assert line["reason"] == "no receipt from 334 after 6 sends"
    assert line["can_replay"] is True
    panel = next(a for a in view["authorities"] if a["code"] == "333")
    assert panel["needs_human"] == {"DEAD_LETTERED": 1}
    assert panel["alert"] is True
    assert {h["name"] for h in view["health"]} == {"broker", "ledger", "disk", "keys"}


def test_reasons_shown_on_the_dashboard_never_carry_identifiers(board: Board) -> None:
    dead_letter(board.gw, reason="recipient refused: UPN A123456789012 unknown")
    view = board.client.get("/v1/dashboard", headers=board.admin).json()
    reasons = [m["reason"] for m in view["attention"]]
    assert reasons == ["recipient refused: UPN [redacted] unknown"]


def test_an_admin_replays_a_dead_letter_and_it_is_audited(board: Board) -> None:
    message_id = dead_letter(board.gw)
    response = board.client.post(
        "/v1/dashboard/replay",
        headers=board.admin,
        json={"authority": "333", "message_id": message_id},
    )
    assert response.status_code == 200
    (record,) = board.gw.ledger.find(message_id=message_id)
    assert record.status == Status.REPLAYED
    assert record.attempts == 0
    assert message_id in {
        i.message_id
        for i in board.gw.ledger.claim_outbox(10, None, board.gw.clock(), board.gw.clock())
    }
    (entry,) = [e for e in audit.entries(board.gw.ledger) if e.event.action == "REPLAY"]
    assert entry.event.message_id == message_id
    assert audit.verify(board.gw.ledger) == []


def test_a_dead_letter_whose_body_was_erased_offers_no_replay_and_says_why(
    board: Board,
) -> None:
    """Erased by a version that did not dismiss it yet: still listed, but its Replay
    could only answer 409, so neither the dashboard nor the message browser offers it."""
    kept, erased = dead_letter(board.gw), dead_letter(board.gw)
    (record,) = board.gw.ledger.find(message_id=erased)
    with board.gw.ledger.transaction() as conn:
        assert bodies.erase(conn, [record.pk]) == 1
    view = board.client.get("/v1/dashboard", headers=board.admin).json()
    lines = {m["message_id"]: m for m in view["attention"]}
    assert (lines[kept]["can_replay"], lines[kept]["erased"]) == (True, False)
    assert (lines[erased]["can_replay"], lines[erased]["erased"]) == (False, True)
    assert lines[erased]["can_dismiss"] is True  # what is left to do
    found = board.client.get("/v1/dashboard/messages", headers=board.admin).json()
    browsed = {m["message_id"]: m for m in found["lines"]}
    assert (browsed[kept]["can_replay"], browsed[erased]["can_replay"]) == (True, False)
    detail = board.client.get(f"/v1/dashboard/messages/{erased}", headers=board.admin).json()
    (copy,) = detail["copies"]
    assert (copy["line"]["can_replay"], copy["line"]["erased"]) == (False, True)
    refused = board.client.post(
        "/v1/dashboard/replay",
        headers=board.admin,
        json={"authority": "333", "message_id": erased},
    )
    assert refused.status_code == 409  # what the button would have met


def test_an_authority_may_not_replay(board: Board) -> None:
    message_id = dead_letter(board.gw)
    response = board.client.post(
        "/v1/dashboard/replay",
        headers=board.k336,
        json={"authority": "333", "message_id": message_id},
    )
    assert response.status_code == 403
    assert board.gw.ledger.find(message_id=message_id)[0].status == Status.DEAD_LETTERED


def test_replaying_a_message_that_is_not_dead_lettered_is_not_found(board: Board) -> None:
    message_id, _ = put(board.gw, "333", "334", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    response = board.client.post(
        "/v1/dashboard/replay",
        headers=board.admin,
        json={"authority": "333", "message_id": message_id},
    )
    assert response.status_code == 404
    assert board.gw.ledger.find(message_id=message_id)[0].status == Status.SENT


def test_a_rejected_records_values_are_hidden_but_its_fields_named(board: Board) -> None:
    put(
        board.gw,
        "332",
        "332",
        Status.ACCEPTED,
        Status.REJECTED,
        reason="export.csv:5:DOB: no such day (31/04/2014)\n"
        "export.csv:5:GENDER: unknown gender code (known: M, F) (Q)",
    )
    view = board.client.get("/v1/dashboard", headers=board.admin).json()
    (line,) = view["attention"]
    assert "31/04/2014" not in line["reason"] and "(Q)" not in line["reason"]
    assert "export.csv:5:DOB: no such day (value hidden)" in line["reason"]
    assert "GENDER" in line["reason"]


def test_a_peer_certificate_near_its_end_is_shown_as_a_health_warning(tmp_path: Path) -> None:
    clock = Clock()
    ensure_identity("333", "Sandwell", tmp_path / "keys", now=clock(), valid_days=20)
    gw = make_gateway(tmp_path, clock=clock)
    view = build_view(gw, Caller(None, "admin"), FakeProbe())
    (line,) = [h for h in view.health if h.name == "certificate of 333"]
    assert not line.ok and "trust ends in 20 days" in line.detail
    assert not [h for h in view.health if h.name == "certificate of 332"]  # hosted: own panel
