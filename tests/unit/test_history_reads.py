"""What a local system's pull, a look at the dashboard and a child's reports read, they
find by index: their cost does not grow with the ledger's or the audit log's history
(issue 14; the plans SQLite chooses, on a ledger as a gateway makes it)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ops_helpers import Clock as OpsClock
from ops_helpers import make_gateway, put
from retention_support import Clock, dudley_shared, region
from support.sql import captured, plans, unbounded

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.ledger import audit, search, stats
from gateway.ledger.status import Status
from gateway.ops.flows import flows

pytestmark = pytest.mark.timeout(120)

SIOBHAN_UPN = "J332412014017"


# The audit chain's last entry (read before entries are appended): read backwards
# from the end, one row.
CHAIN_HEAD = (
    "FROM audit_log LEFT OUTER JOIN audit_subjects ON audit_subjects.seq = audit_log.seq "
    "ORDER BY audit_log.seq DESC LIMIT ?"
)


@pytest.fixture
def client(tmp_path: Path) -> tuple[TestClient, dict[str, dict[str, str]], Gateway]:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)  # Siobhán: Dudley 332 -> Wolverhampton 336 and Sandwell 333
    keys = ApiKeys(tmp_path / "api-keys.json")
    auth = {
        code: {"Authorization": "Bearer " + keys.issue(code, holder=f"{code}'s system")}
        for code in ("332", "336")
    }
    auth["admin"] = {"Authorization": "Bearer " + keys.issue(None, "admin", holder="Admin")}
    return TestClient(create_app(gw, keys)), auth, gw


def _unbounded_reads(gw: Gateway, statements: list[tuple[str, Any]]) -> dict[str, str]:
    return {
        sql: plan
        for sql, plan in plans(gw.ledger.engine, statements).items()
        if unbounded(plan) and CHAIN_HEAD not in " ".join(sql.split())
    }


@pytest.mark.parametrize(
    ("name", "who"),
    [("pull", "336"), ("detail", "admin"), ("report", "332"), ("disclosures", "332")],
)
def test_a_pull_a_message_detail_and_a_childs_reports_read_nothing_whole(
    client: tuple[TestClient, dict[str, dict[str, str]], Gateway], name: str, who: str
) -> None:
    # Before: the inbox's reads for the access log were searched by the authority (every
    # message of it at each pull); the audit entries of a message, or of a child's
    # messages, were found by reading the whole audit log (no index on its message id:
    # migration 0011), at each look at a message's detail and each child's report.
    http, auth, gw = client
    disclosed = next(e for e in audit.entries(gw.ledger) if e.event.action == "DISCLOSURE")
    path = {
        "pull": "/v1/inbox",
        "detail": f"/v1/dashboard/messages/{disclosed.event.message_id}",
        "report": f"/v1/children/{SIOBHAN_UPN}/report",
        "disclosures": f"/v1/children/{SIOBHAN_UPN}/disclosures",
    }[name]
    with captured(gw.ledger.engine) as statements:
        answer = http.get(path, headers=auth[who])
    assert answer.status_code == 200, answer.text
    if name == "pull":
        assert answer.json()  # Dudley's records wait in Wolverhampton's inbox
    if name == "detail":
        assert answer.json()["audit"]  # the message's entries, found by their index
    found = plans(gw.ledger.engine, statements)
    read = {
        "pull": "WHERE messages.id IN",  # the access log's read of the rows handed over
        "detail": "WHERE audit_log.message_id = ?",
        "report": "audit_subjects.child_key = ?",
        "disclosures": "audit_log.message_id IN (SELECT messages.message_id",
    }[name]
    assert any(read in " ".join(sql.split()) for sql in found), list(found)
    assert _unbounded_reads(gw, statements) == {}


# The latest messages to change, of one authority: read from the end of its part of
# ``ix_messages_changed`` in the index's order, and no further than the limit.
LATEST = (
    "WHERE messages.authority = ? AND messages.message_type != ? "
    "ORDER BY messages.updated_at DESC, messages.id DESC"
)
LATEST_PLAN = "SEARCH messages USING INDEX ix_messages_changed (authority=?)"
FLOWS = "messages.sender != messages.recipient GROUP BY"


def test_a_look_at_the_dashboard_reads_its_rates_and_handovers_by_index(
    client: tuple[TestClient, dict[str, dict[str, str]], Gateway],
) -> None:
    # Before: the status history since the chart's start was joined from every message
    # of the authorities shown, each message's history looked up; the handover failures
    # (one row per failed attempt, kept) were read whole, for the rates and for the
    # local systems' states; at every look (every 5 s while the dashboard is open).
    http, auth, gw = client
    with captured(gw.ledger.engine) as statements:
        answer = http.get("/v1/dashboard", headers=auth["admin"])
    assert answer.status_code == 200, answer.text
    found = plans(gw.ledger.engine, statements)
    (rates,) = [p for sql, p in found.items() if "FROM status_history JOIN messages" in sql]
    assert rates.splitlines()[0].startswith(
        "SEARCH status_history USING INDEX ix_status_history_at"
    ), rates
    assert sum("FROM handover_failures" in sql for sql in found) >= 2
    assert [sum(known in " ".join(sql.split()) for sql in found) for known in (LATEST, FLOWS)] == [
        1,
        1,
    ]
    (flows,) = [p for sql, p in found.items() if FLOWS in sql]
    assert "SEARCH status_history USING INDEX ix_status_history_at (at>?)" in flows, flows
    # Before: every message of the authorities shown, sorted at each look (a temporary
    # B-tree for the ORDER BY); ``ix_messages_changed`` (migration 0012) orders them.
    (latest,) = [p for sql, p in found.items() if LATEST in " ".join(sql.split())]
    assert latest == LATEST_PLAN, latest
    whole = {
        sql: plan
        for sql, plan in _unbounded_reads(gw, statements).items()
        if LATEST not in " ".join(sql.split())
    }
    assert whole == {}


# A page of messages, newest first, read from the end of each authority's part of
# ``ix_messages_made`` (a search for a status most messages end in too); a search by
# any other status or by child, from the status's or the child's index (both
# directions named), then sorted (migration 0012).
PAGE_PLAN = "SEARCH messages USING INDEX ix_messages_made (authority=?)"
BY_STATUS = (
    "SEARCH messages USING INDEX ix_messages_inbox (authority=? AND direction=? AND status=?)"
)
BY_CHILD = (
    "SEARCH messages USING INDEX ix_messages_child (direction=? AND authority=? AND child_key=?)"
)
BY_CHANGE = "SEARCH messages USING INDEX ix_messages_changed (authority=? AND updated_at>?)"


@pytest.mark.parametrize(
    ("who", "path", "params", "plan"),
    [
        ("admin", "/v1/dashboard/messages", {}, PAGE_PLAN),
        ("332", "/v1/dashboard/messages", {"offset": "50"}, PAGE_PLAN),
        ("332", "/v1/messages", {"direction": "OUTBOUND"}, PAGE_PLAN),
        ("332", "/v1/dashboard/messages", {"status": "DELIVERED"}, PAGE_PLAN),  # most are
        ("332", "/v1/dashboard/messages", {"status": "REJECTED"}, BY_STATUS),
        (
            "332",
            "/v1/dashboard/messages",
            {"status": "REJECTED", "from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
            BY_STATUS,
        ),
        ("332", "/v1/messages", {"status": "QUARANTINED"}, BY_STATUS),
        ("332", "/v1/dashboard/messages", {"child": SIOBHAN_UPN}, BY_CHILD),
        ("admin", "/v1/admin/dead-letters", {}, BY_STATUS),
    ],
)
def test_a_page_of_messages_a_search_by_status_or_child_and_the_dead_letters_read_by_index(
    client: tuple[TestClient, dict[str, dict[str, str]], Gateway],
    who: str,
    path: str,
    params: dict[str, str],
    plan: str,
) -> None:
    # Before: every message of the authorities shown, sorted at each page (and the
    # dashboard's list is the first page at every look); a search by status or child,
    # or the dead letters' list, every message of the authority read to find them.
    http, auth, gw = client
    with captured(gw.ledger.engine) as statements:
        answer = http.get(path, headers=auth[who], params=params)
    assert answer.status_code == 200, answer.text
    found = plans(gw.ledger.engine, statements)
    reads = [p for sql, p in found.items() if "FROM messages" in sql and "ORDER BY" in sql]
    assert reads, list(found)
    assert all(p.splitlines()[0] == plan for p in reads), reads
    if plan == PAGE_PLAN:
        assert all("TEMP B-TREE" not in p for p in reads), reads


def test_the_dashboards_latest_are_the_newest_changes_of_every_authority_shown(
    tmp_path: Path,
) -> None:
    # Read an authority at a time and merged (``stats.latest``): the newest change
    # first, whichever authority's; an old message moved just now among the newest;
    # receipts left out; no more than the limit.
    clock = OpsClock()
    gw = make_gateway(tmp_path, clock=clock)
    made = {}
    for name, authority, peer in (
        ("oldest", "332", "336"),
        ("middle", "336", "332"),
        ("newer", "332", "336"),
        ("newest", "336", "332"),
    ):
        clock.advance(60)
        made[name] = put(gw, authority, peer, Status.ACCEPTED, Status.SIGNED)
        clock.advance(60)
        put(gw, authority, peer, Status.ACCEPTED, message_type="Receipt")
    clock.advance(60)
    gw.ledger.mark_sent([made["oldest"][1]], clock())  # changed last of all
    latest = stats.latest(gw.ledger, ["336", "332"], 3)
    by_id = {message_id: name for name, (message_id, _) in made.items()}
    assert [by_id[r.message_id] for r in latest] == ["oldest", "newest", "newer"]
    assert [by_id[r.message_id] for r in stats.latest(gw.ledger, ["336"], 5)] == [
        "newest",
        "middle",
    ]


def test_the_flows_count_the_messages_made_since_the_window_began_and_no_others(
    tmp_path: Path,
) -> None:
    # Found by the history's time since the window began: a message made before it
    # that changed within it is not counted, as it was not before (issue 14).
    clock = OpsClock()
    gw = make_gateway(tmp_path, clock=clock)
    _, old = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    clock.advance(7200)
    since = clock()
    gw.ledger.transition([old], Status.DELIVERED, "receipt verified")  # changed, not made
    put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
    put(gw, "332", "333", Status.ACCEPTED)
    cells = {(f.sender, f.recipient): f for f in flows(gw.ledger, ["332"], since)}
    assert set(cells) == {("332", "336"), ("332", "333")}
    assert (cells[("332", "336")].in_flight, cells[("332", "336")].delivered) == (1, 0)
    assert cells[("332", "333")].in_flight == 1
    assert flows(gw.ledger, ["332"], since - timedelta(hours=3))[1].delivered == 1


@pytest.mark.parametrize(("few_max", "plan"), [(1000, BY_CHANGE), (1, PAGE_PLAN)])
def test_what_changed_since_a_time_is_read_by_its_index_or_walked_if_most_did(
    client: tuple[TestClient, dict[str, dict[str, str]], Gateway],
    few_max: int,
    plan: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A local system asking what changed since its last look: few did, read from the
    # index of changes and sorted; before, the newest walked to the end. Since long ago
    # (most did): the newest walked until the page is full, not all of them sorted.
    http, auth, gw = client
    monkeypatch.setattr(search, "FEW_MAX", few_max)
    since = (gw.clock() - timedelta(days=1)).isoformat()
    with captured(gw.ledger.engine) as statements:
        answer = http.get("/v1/messages", headers=auth["332"], params={"since": since})
    assert answer.status_code == 200, answer.text
    assert answer.json(), "the region's messages changed within the day"
    found = plans(gw.ledger.engine, statements)
    reads = [p for sql, p in found.items() if "FROM messages" in sql and "ORDER BY" in sql]
    assert [p.splitlines()[0] for p in reads] == [plan], reads
    if plan == PAGE_PLAN:
        assert "TEMP B-TREE" not in reads[0], reads
