"""The dashboard's message browser and data endpoints are authorised exactly like the API:
an authority finds and opens only its own messages (another's is 404 on both), an admin
every hosted one; searching by child is for an authority's own key."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ops_helpers import Clock, FakeProbe, make_gateway, put

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.api.routes.ops import OpsState
from gateway.ledger import audit, search
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.model import Child, Identifier
from gateway.policy.child import child_key

pytestmark = pytest.mark.timeout(60)

UPN = "A123456789012"


class Site:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.gw = make_gateway(tmp_path, hosted=("332", "333", "336"), clock=self.clock)
        keys = ApiKeys(tmp_path / "api-keys.json")
        self.keys = {
            "admin": {"Authorization": "Bearer " + keys.issue(None, "admin")},
            "336": {"Authorization": "Bearer " + keys.issue("336")},
            "332": {"Authorization": "Bearer " + keys.issue("332")},
        }
        app = create_app(self.gw, keys)
        app.state.cafgw_ops = OpsState.for_gateway(self.gw, FakeProbe())
        self.client = TestClient(app)

    def get(self, who: str, path: str, **params: str) -> object:
        return self.client.get(path, headers=self.keys[who], params=params)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_opening_a_message_answers_like_the_api_for_every_key(site: Site) -> None:
    mine, _ = put(
        site.gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND
    )
    theirs, _ = put(site.gw, "332", "333", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    for who in ("admin", "336", "332"):
        for message_id in (mine, theirs, "no-such-message"):
            api = site.get(who, f"/v1/messages/{message_id}").status_code  # type: ignore[attr-defined]
            board = site.get(who, f"/v1/dashboard/messages/{message_id}").status_code  # type: ignore[attr-defined]
            assert (who, message_id, board) == (who, message_id, api)
    assert site.get("336", f"/v1/dashboard/messages/{theirs}").status_code == 404  # type: ignore[attr-defined]


def test_a_search_finds_only_the_callers_messages(site: Site) -> None:
    mine, _ = put(
        site.gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND
    )
    theirs, _ = put(site.gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    found = site.get("336", "/v1/dashboard/messages").json()  # type: ignore[attr-defined]
    assert [m["message_id"] for m in found["lines"]] == [mine]
    by_id = site.get("336", "/v1/dashboard/messages", message_id=theirs[:8]).json()  # type: ignore[attr-defined]
    assert by_id["lines"] == []
    assert site.get("336", "/v1/dashboard/messages", authority="332").status_code == 404  # type: ignore[attr-defined]
    everything = site.get("admin", "/v1/dashboard/messages").json()  # type: ignore[attr-defined]
    assert {m["message_id"] for m in everything["lines"]} == {mine, theirs}
    only_332 = site.get("admin", "/v1/dashboard/messages", authority="332").json()  # type: ignore[attr-defined]
    assert [m["message_id"] for m in only_332["lines"]] == [theirs]


def test_messages_are_found_by_id_prefix_case_ref_status_type_peer_and_date(site: Site) -> None:
    first, pk = put(site.gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    with site.gw.ledger.transaction() as conn:
        conn.execute(messages.update().where(messages.c.id == pk).values(case_ref="DUD-2026-00417"))
    site.clock.advance(2 * 86400)
    later, _ = put(
        site.gw, "332", "333", Status.ACCEPTED, Status.REJECTED, message_type="Notification"
    )
    put(site.gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT, message_type="Receipt")

    def ids(**params: str) -> list[str]:
        found = site.get("332", "/v1/dashboard/messages", **params).json()  # type: ignore[attr-defined]
        return [m["message_id"] for m in found["lines"]]

    assert ids(message_id=first[:6]) == [first]
    assert ids(case_ref="DUD-2026") == [first]
    assert ids(status="REJECTED") == [later]
    assert ids(message_type="Notification") == [later]
    assert ids(counterparty="336") == [first]  # receipts left out unless asked for
    assert len(ids(counterparty="336", receipts="true")) == 2
    day = (site.clock() - timedelta(days=2)).replace(hour=0, minute=0, second=0)
    assert ids(**{"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat()}) == [first]
    assert ids(direction="INBOUND") == []


@pytest.mark.parametrize("merged_max", [search.MERGED_MAX, 4])
def test_pages_across_authorities_run_newest_first_with_no_gap_and_no_repeat(
    site: Site, merged_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each authority is read on its own, to the page's end, and merged (``search``):
    # most of these are 332's, so a deep page needs more of 332's than a page holds.
    # Past ``MERGED_MAX`` rows, one statement of them all: the same pages.
    monkeypatch.setattr(search, "MERGED_MAX", merged_max)
    senders = ("332", "332", "333", "332", "336", "332", "332", "333", "332")
    made = []
    for authority in senders:
        site.clock.advance(60)
        peer = "336" if authority == "332" else "332"
        made.append(put(site.gw, authority, peer, Status.ACCEPTED, Status.SIGNED)[0])
    codes = ("336", "332", "333")
    newest = made[::-1]
    pages = [
        search.search(site.gw.ledger, search.Criteria(codes, limit=2, offset=offset))
        for offset in (0, 2, 4, 6, 8)
    ]
    assert [[r.message_id for r in page] for page in pages] == [
        newest[i : i + 2] for i in (0, 2, 4, 6, 8)
    ]
    own = [m for m, a in zip(made, senders, strict=True) if a == "332"]
    one = search.search(site.gw.ledger, search.Criteria(("332",), limit=2, offset=1))
    assert [r.message_id for r in one] == own[::-1][1:3]


def test_only_an_authoritys_own_key_searches_by_child_and_restricted_records_stay_hidden(
    site: Site,
) -> None:
    key = child_key(Child("", "", identifiers=(Identifier("UPN", UPN),)))
    found, pk = put(
        site.gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND
    )
    hidden, hidden_pk = put(
        site.gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND
    )
    put(site.gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND)
    with site.gw.ledger.transaction() as conn:
        conn.execute(
            messages.update().where(messages.c.id.in_([pk, hidden_pk])).values(child_key=key)
        )
        conn.execute(messages.update().where(messages.c.id == hidden_pk).values(restricted=True))
    lines = site.get("336", "/v1/dashboard/messages", child=UPN).json()["lines"]  # type: ignore[attr-defined]
    assert [m["message_id"] for m in lines] == [found]
    assert hidden not in str(lines)
    refused = site.get("admin", "/v1/dashboard/messages", child=UPN)
    assert refused.status_code == 403  # type: ignore[attr-defined]
    api = site.get("admin", "/v1/messages", authority="336", child=UPN)
    assert api.status_code == 403  # type: ignore[attr-defined]
    own = site.get("336", "/v1/messages", child=UPN).json()  # type: ignore[attr-defined]
    assert [m["message_id"] for m in own] == [found]


def test_an_opened_message_shows_its_history_dismissals_and_audit_entries(site: Site) -> None:
    message_id, _ = put(
        site.gw,
        "332",
        "332",
        Status.ACCEPTED,
        Status.REJECTED,
        reason="caf.csv:4:DOB: no such day (31/04/2016)",
    )
    site.client.post(
        f"/v1/messages/{message_id}/dismiss",
        headers=site.keys["332"],
        json={"by": "Jo Bloggs", "reason": "fixed and sent again"},
    )
    detail = site.get("332", f"/v1/dashboard/messages/{message_id}").json()  # type: ignore[attr-defined]
    (copy,) = detail["copies"]
    assert [h["status"] for h in copy["history"]] == ["ACCEPTED", "REJECTED"]
    assert copy["history"][1]["reason"] == "caf.csv:4:DOB: no such day (value hidden)"
    assert "Jo Bloggs" in copy["dismissals"][0] and "fixed and sent again" in copy["dismissals"][0]
    (entry,) = detail["audit"]
    assert entry["action"] == "DISMISS"
    assert re.fullmatch(r"Jo Bloggs \(for 332, key [0-9a-f]+\)", entry["actor"])
    assert len(audit.entries(site.gw.ledger)) == 1


def test_an_admin_replays_several_dead_letters_at_once_with_who_recorded(site: Site) -> None:
    dead = [
        put(
            site.gw, "333", "334", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.DEAD_LETTERED
        )[0]
        for _ in range(2)
    ]
    sent, _ = put(site.gw, "333", "334", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    answer = site.client.post(
        "/v1/admin/dead-letters/replay",
        headers=site.keys["admin"],
        json={
            "items": [{"authority": "333", "message_id": m} for m in [*dead, sent]],
            "requested_by": "Jo Admin",
        },
    )
    assert answer.status_code == 200
    outcome = {o["message_id"]: o["replayed"] for o in answer.json()}
    assert outcome == {dead[0]: True, dead[1]: True, sent: False}
    actors = {e.event.actor for e in audit.entries(site.gw.ledger) if e.event.action == "REPLAY"}
    (actor,) = actors
    assert re.fullmatch(r"Jo Admin \(admin, key [0-9a-f]+\)", actor)
    refused = site.client.post(
        "/v1/admin/dead-letters/replay",
        headers=site.keys["336"],
        json={"items": [{"authority": "333", "message_id": dead[0]}]},
    )
    assert refused.status_code == 403


def test_the_dashboard_carries_the_matrix_queues_and_rates(site: Site) -> None:
    _, pk = put(site.gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    site.gw.ledger.transition([pk], Status.DELIVERED, "receipt verified")
    put(site.gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND)
    put(site.gw, "333", "334", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.DEAD_LETTERED)
    put(site.gw, "336", "334", Status.RECEIVED, Status.QUARANTINED, direction=Direction.INBOUND)
    view = site.get("admin", "/v1/dashboard", range="3600").json()  # type: ignore[attr-defined]
    cells = {(f["sender"], f["recipient"]): f for f in view["flows"]}
    # 332 -> 336 counted once (from the sender's row), though both ends are hosted here.
    assert cells[("332", "336")]["delivered"] == 1 and cells[("332", "336")]["total"] == 1
    assert cells[("333", "334")]["state"] == "failing"
    assert cells[("334", "336")]["failing"] == 1
    assert {q["queue"] for q in view["queues"]} >= {"caf.inbox.336", "caf.parking.336"}
    assert view["rates"]["step_s"] == 60 and len(view["rates"]["series"]["332"]["sent"]) == 60
    assert sum(view["rates"]["series"]["332"]["delivered"]) == 1
    narrow = site.get("336", "/v1/dashboard").json()  # type: ignore[attr-defined]
    assert set(narrow["rates"]["series"]) == {"336"}
    assert {(f["sender"], f["recipient"]) for f in narrow["flows"]} == {
        ("332", "336"),
        ("334", "336"),
    }
    assert {q["authority"] for q in narrow["queues"]} == {"336"}
