"""Issue 13, item 6: the existence query is no oracle. A self-declared safeguarding
approver is refused with the reason; approvers come from the directory each authority
keeps in policy.yaml; safeguarding-basis queries are rate-limited per requesting
authority at both ends and audited at both ends."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from policy_support import pump
from sqlalchemy import Connection, event
from support.api_attacks import KACPER, Auth, ask_existence, existence_region
from support.gateways import config_copy
from support.sql import captured, plans
from typer.testing import CliRunner

from gateway.api.auth import ApiKeys
from gateway.cli import app
from gateway.context import Gateway
from gateway.errors import ConflictError, PolicyRefusal
from gateway.ledger import audit, locks
from gateway.ledger.status import Direction, Status
from gateway.model import Child, Identifier, Safeguarding
from gateway.services import coordination

pytestmark = pytest.mark.timeout(120)

KACPER_CHILD = Child(
    "Kacper", "Nowak", date(2012, 7, 9), identifiers=(Identifier("UPN", "J336203317005"),)
)


def _answered(gw: Gateway) -> list[audit.AuditEntry]:
    return [
        e for e in audit.entries(gw.ledger, "336") if e.event.action == "EXISTENCE_QUERY_ANSWERED"
    ]


def _inbound_queries(gw: Gateway) -> list[tuple[Status, str | None]]:
    rows = gw.ledger.find(authority="336", direction=Direction.INBOUND, limit=500)
    return [
        (r.status, r.reason) for r in rows if r.sender == "334" and r.message_type == "Notification"
    ]


def test_a_self_declared_approver_is_refused_with_the_reason_and_nothing_is_sent(
    tmp_path: Path,
) -> None:
    client, auth, gw = existence_region(tmp_path)
    refused = ask_existence(client, auth, "Anyone At All", "curious")
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["rule"] == "safeguarding.approver"
    assert "'Anyone At All' is not a safeguarding approver of 334" in body["detail"]
    assert "'curious'" in body["detail"] and "safeguarding_approvers.334" in body["detail"]
    pump(gw)
    assert _inbound_queries(gw) == []  # 336 was never asked: no match, no coordinator
    (row,) = gw.ledger.find(authority="334", direction=Direction.OUTBOUND, limit=50)
    assert row.status == Status.REJECTED and (row.reason or "").startswith("safeguarding.approver")


def test_a_listed_approvers_query_is_answered_and_audited_at_both_ends(tmp_path: Path) -> None:
    client, auth, gw = existence_region(tmp_path)
    asked = ask_existence(
        client, auth, "solihull  mash MANAGER", "sibling named in a MASH referral"
    )
    assert asked.status_code == 202, asked.text
    pump(gw)
    answer = client.get(f"/v1/existence-queries/{asked.json()['message_id']}", headers=auth)
    assert answer.json()["answer"].startswith("match=true")
    (override,) = [
        e for e in audit.entries(gw.ledger, "334") if e.event.action == "SAFEGUARDING_OVERRIDE"
    ]
    assert override.event.actor == "Solihull MASH manager"  # as the directory spells it
    assert override.event.detail == "sibling named in a MASH referral"
    (answered,) = _answered(gw)
    assert answered.event.actor == "Solihull MASH manager (MASH team manager) at 334"
    assert answered.event.counterparty == "334" and answered.event.legal_basis == "SAFEGUARDING"
    assert answered.event.detail == "match=true; reason: sibling named in a MASH referral"
    assert audit.verify(gw.ledger) == []


def test_safeguarding_queries_are_rate_limited_by_the_asker_and_by_the_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, auth, gw = existence_region(tmp_path, per_day=2)
    for _ in range(2):
        assert (
            ask_existence(client, auth, "Solihull MASH manager", "sibling at risk").status_code
            == 202
        )
    third = ask_existence(client, auth, "Solihull MASH manager", "sibling at risk")
    assert third.status_code == 422 and third.json()["rule"] == "existence.rate"
    assert "policy.existence_safeguarding_per_day = 2" in third.json()["detail"]
    pump(gw)
    # A requesting gateway that does not hold itself to the limit: the asked one does.
    monkeypatch.setattr(coordination, "_over_rate", lambda *_: None)
    coordination.ask_existence(
        gw, "334", "336", KACPER_CHILD, Safeguarding("Solihull MASH manager", "again")
    )
    pump(gw)
    statuses = _inbound_queries(gw)
    assert len(statuses) == 3
    refused = [reason for status, reason in statuses if status == Status.QUARANTINED]
    assert len(refused) == 1 and "existence.rate" in (refused[0] or "")
    assert "334 has asked 2 safeguarding-basis existence queries in 24 hours" in refused[0]
    assert len(_answered(gw)) == 2  # the refused query got no answer


def test_both_ends_count_a_requesters_queries_by_their_own_index_not_all_it_ever_sent(
    tmp_path: Path,
) -> None:
    # Issue 14: each count named the authority (and sender) and the purpose, which no
    # index held after them: every message the requester had ever sent was read, at
    # the asker for each query asked and at the asked gateway for each one received.
    client, auth, gw = existence_region(tmp_path)
    with captured(gw.ledger.engine) as statements:
        assert (
            ask_existence(client, auth, "Solihull MASH manager", "sibling at risk").status_code
            == 202
        )
        pump(gw)
    assert len(_answered(gw)) == 1
    counts = [
        plan
        for sql, plan in plans(gw.ledger.engine, statements).items()
        if sql.startswith("SELECT count(*)") and "messages.purpose" in sql
    ]
    assert len(counts) == 2, counts  # the asker's and the asked gateway's
    for plan in counts:
        assert (
            "ix_messages_existence_asked (direction=? AND authority=? AND sender=? AND "
            "legal_basis=? AND created_at>?)" in plan
        ), plan


def test_a_burst_of_safeguarding_queries_in_one_received_batch_is_held_to_the_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A requesting gateway that does not hold itself to the limit sends four at once:
    # they reach the asked gateway in one batch, recorded only after all were judged.
    _client, _auth, gw = existence_region(tmp_path, per_day=2)
    monkeypatch.setattr(coordination, "_over_rate", lambda *_: None)
    for n in range(4):
        coordination.ask_existence(
            gw, "334", "336", KACPER_CHILD, Safeguarding("Solihull MASH manager", f"burst {n}")
        )
    pump(gw)
    statuses = _inbound_queries(gw)
    assert len(statuses) == 4
    refused = [reason or "" for status, reason in statuses if status == Status.QUARANTINED]
    assert len(refused) == 2
    # Each excess query is refused for the two answered, as it would be in a later
    # batch: a refused one is no answered query and uses none of the budget.
    for reason in refused:
        assert "existence.rate" in reason
        assert "334 has asked 2 safeguarding-basis existence queries in 24 hours" in reason
    assert len(_answered(gw)) == 2


def test_safeguarding_queries_asked_at_the_same_moment_stay_within_the_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two requests at once both passed the count, and both were sent past the rate.
    _client, _auth, gw = existence_region(tmp_path, per_day=1)
    real = coordination._safeguarding_refusal
    second: list[BaseException | coordination.Sent] = []

    def ask() -> None:
        try:
            second.append(
                coordination.ask_existence(
                    gw, "334", "336", KACPER_CHILD, Safeguarding("Solihull MASH manager", "2nd")
                )
            )
        except BaseException as exc:  # reported by the assertions below
            second.append(exc)

    def counted_then_the_other_asks(*args: Any) -> Any:
        refusal = real(*args)
        if threading.current_thread() is threading.main_thread() and not second:
            other = threading.Thread(target=ask)
            other.start()
            other.join(10)
        return refusal

    monkeypatch.setattr(coordination, "_safeguarding_refusal", counted_then_the_other_asks)
    outcomes: list[BaseException | coordination.Sent] = []
    try:
        outcomes.append(
            coordination.ask_existence(
                gw, "334", "336", KACPER_CHILD, Safeguarding("Solihull MASH manager", "1st")
            )
        )
    except PolicyRefusal as exc:
        outcomes.append(exc)
    outcomes += second
    sent = [o for o in outcomes if isinstance(o, coordination.Sent)]
    refused = [o for o in outcomes if isinstance(o, PolicyRefusal)]
    assert len(sent) == 1 and len(refused) == 1, outcomes
    assert refused[0].rule == "existence.rate"
    rows = gw.ledger.find(authority="334", direction=Direction.OUTBOUND, limit=50)
    assert sorted(r.status.value for r in rows) == ["REJECTED", "SIGNED"]


def test_safeguarding_queries_from_many_threads_at_once_never_go_past_the_rate(
    tmp_path: Path,
) -> None:
    # The API's sync route runs each request on a worker thread: released together,
    # every request passed the count before any was queued, and all were sent.
    _client, _auth, gw = existence_region(tmp_path, per_day=2)
    asking = 6
    barrier = threading.Barrier(asking)
    outcomes: list[BaseException | coordination.Sent] = []

    def ask(n: int) -> None:
        barrier.wait(10)
        try:
            outcomes.append(
                coordination.ask_existence(
                    gw, "334", "336", KACPER_CHILD, Safeguarding("Solihull MASH manager", f"{n}")
                )
            )
        except BaseException as exc:  # reported by the assertions below
            outcomes.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(asking)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    sent = [o for o in outcomes if isinstance(o, coordination.Sent)]
    refused = [o for o in outcomes if isinstance(o, PolicyRefusal)]
    assert len(sent) == 2 and len(refused) == asking - 2, outcomes
    assert {r.rule for r in refused} == {"existence.rate"}
    rows = gw.ledger.find(authority="334", direction=Direction.OUTBOUND, limit=50)
    assert sorted(r.status.value for r in rows) == ["REJECTED"] * (asking - 2) + ["SIGNED"] * 2


def test_recording_a_received_safeguarding_query_locks_its_senders_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rate is counted from the ledger: two replicas on PostgreSQL recording one
    # sender's queries at once would each count without the other's, so each takes
    # the sender's rate lock first (on SQLite the write lock already serialises them).
    _client, _auth, gw = existence_region(tmp_path)
    locked: list[str] = []
    real = locks.xact_lock

    def noting(conn: Connection, names: Iterable[str]) -> None:
        names = list(names)
        locked.extend(names)
        real(conn, names)

    monkeypatch.setattr(locks, "xact_lock", noting)
    coordination.ask_existence(
        gw, "334", "336", KACPER_CHILD, Safeguarding("Solihull MASH manager", "sibling")
    )
    pump(gw)
    assert "existence-rate:336:334" in locked
    assert len(_inbound_queries(gw)) == 1


def test_a_held_query_waits_for_the_coordinator_who_approves_or_refuses_it(
    tmp_path: Path,
) -> None:
    config_copy(tmp_path, existence_safeguarding_hold=True)
    client, auth, gw = existence_region(tmp_path)
    first = ask_existence(client, auth, "Solihull MASH manager", "sibling at risk").json()[
        "message_id"
    ]
    second = ask_existence(client, auth, "Solihull MASH manager", "second look").json()[
        "message_id"
    ]
    pump(gw)
    # Nothing answered yet: both wait for Wolverhampton's coordinator.
    assert client.get(f"/v1/existence-queries/{first}", headers=auth).json()["answer"] is None
    keys = ApiKeys(tmp_path / "api-keys.json")
    coordinator = {"Authorization": f"Bearer {keys.issue('336', holder='Wolverhampton CAF')}"}
    waiting = client.get("/v1/existence-queries-held", headers=coordinator).json()
    assert [(q["requester"], q["approver"], q["reason"]) for q in waiting] == [
        ("334", "Solihull MASH manager", "sibling at risk"),
        ("334", "Solihull MASH manager", "second look"),
    ]
    assert client.get("/v1/existence-queries-held", headers=auth).json() == []  # 334's own: none
    held = [e for e in audit.entries(gw.ledger, "336") if e.event.action == "EXISTENCE_QUERY_HELD"]
    assert len(held) == 2
    approved = client.post(
        f"/v1/existence-queries-held/{first}/approve",
        json={"by": "Ann Coordinator"},
        headers=coordinator,
    )
    assert approved.status_code == 200, approved.text
    refused = client.post(
        f"/v1/existence-queries-held/{second}/refuse",
        json={"by": "Ann Coordinator"},
        headers=coordinator,
    )
    assert refused.status_code == 200, refused.text
    again = client.post(
        f"/v1/existence-queries-held/{second}/approve",
        json={"by": "Ann Coordinator"},
        headers=coordinator,
    )
    assert again.status_code == 409, again.text  # decided once: the refusal stands
    assert "already refused by Ann Coordinator" in again.json()["detail"]
    pump(gw)
    assert (
        client.get(f"/v1/existence-queries/{first}", headers=auth)
        .json()["answer"]
        .startswith("match=true")
    )
    assert client.get(f"/v1/existence-queries/{second}", headers=auth).json()["answer"] is None
    (answered,) = _answered(gw)
    # The name given, and the key that approved (which proves who did).
    assert re.fullmatch(
        r"match=true; approved by Ann Coordinator \(for 336, key [0-9a-f]+\); "
        r"reason: sibling at risk",
        answered.event.detail or "",
    )
    (no,) = [
        e for e in audit.entries(gw.ledger, "336") if e.event.action == "EXISTENCE_QUERY_REFUSED"
    ]
    assert re.fullmatch(r"Ann Coordinator \(for 336, key [0-9a-f]+\)", no.event.actor)
    assert no.event.message_id == second
    assert client.get("/v1/existence-queries-held", headers=coordinator).json() == []
    assert audit.verify(gw.ledger) == []


def test_an_existence_query_asked_again_with_the_same_idempotency_key_is_asked_once(
    tmp_path: Path,
) -> None:
    """A retry after a lost answer asked a second query (and counted it against the
    safeguarding rate): the key was ignored off POST /v1/messages."""
    client, auth, gw = existence_region(tmp_path)
    body = dict(KACPER, safeguarding_approver="Solihull MASH manager", safeguarding_reason="r")
    keyed = {**auth, "Idempotency-Key": "mash-2026-11-30-17"}
    first = client.post("/v1/existence-queries", json=body, headers=keyed)
    again = client.post("/v1/existence-queries", json=body, headers=keyed)
    assert first.status_code == again.status_code == 202, again.text
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    asked = gw.ledger.find(authority="334", direction=Direction.OUTBOUND, limit=500)
    queries = [r for r in asked if r.purpose == "EXISTENCE_CHECK"]
    assert [r.message_id for r in queries] == [first.json()["message_id"]]


def _one_held(tmp_path: Path) -> tuple[TestClient, Auth, Gateway, str]:
    """A region where 336 holds safeguarding queries for its coordinator, and one query
    from 334 held there: the client, 334's headers, the gateway and the query's id."""
    config_copy(tmp_path, existence_safeguarding_hold=True)
    client, auth, gw = existence_region(tmp_path)
    query = ask_existence(client, auth, "Solihull MASH manager", "sibling at risk").json()[
        "message_id"
    ]
    pump(gw)
    return client, auth, gw, query


def test_a_held_query_decided_again_answers_with_the_first_decision_and_sends_nothing(
    tmp_path: Path,
) -> None:
    """A second click on approve, or a colleague's refusal a second after the approval,
    answered 404 as if the query had never existed, saying nothing of what was decided."""
    client, _auth, gw, query = _one_held(tmp_path)
    keys = ApiKeys(tmp_path / "api-keys.json")
    coordinator = {"Authorization": f"Bearer {keys.issue('336', holder='Wolverhampton CAF')}"}
    path = f"/v1/existence-queries-held/{query}"
    approved = client.post(f"{path}/approve", json={"by": "Ann Coordinator"}, headers=coordinator)
    assert approved.status_code == 200, approved.text
    first = approved.json()
    assert first["decision"] == "APPROVED" and first["already_decided"] is False
    assert first["decided_by"] == "Ann Coordinator" and first["decided_at"] is not None
    again = client.post(f"{path}/approve", json={"by": "Ben Colleague"}, headers=coordinator)
    assert again.status_code == 200, again.text
    assert again.json() == {**first, "already_decided": True}
    # The other way: a conflict naming who decided and when, never a 200 to misread.
    otherwise = client.post(f"{path}/refuse", json={"by": "Ben Colleague"}, headers=coordinator)
    assert otherwise.status_code == 409, otherwise.text
    assert otherwise.json()["error"] == "ConflictError"
    assert (
        f"already approved by Ann Coordinator at {first['decided_at'][:19]}"
        in (otherwise.json()["detail"])
    )
    never = client.post(
        "/v1/existence-queries-held/no-such-query/approve",
        json={"by": "Ann Coordinator"},
        headers=coordinator,
    )
    assert never.status_code == 404 and never.json()["error"] == "NotFoundError"
    pump(gw)
    assert len(_answered(gw)) == 1
    refusals = [e for e in audit.entries(gw.ledger, "336") if "REFUSED" in e.event.action]
    assert refusals == []
    answers = gw.ledger.find(authority="334", direction=Direction.INBOUND, limit=500)
    assert [r.sender for r in answers if r.message_type != "Receipt"] == ["336"]


def test_cafgw_existence_decide_on_a_decided_query_names_the_decision_and_does_nothing(
    tmp_path: Path,
) -> None:
    """The command failed as for a query that never existed."""
    _client, _auth, gw, query = _one_held(tmp_path)
    config = tmp_path / "config"
    env = {
        "CAFGW_KEYS_DIR": str(tmp_path / "keys"),
        "CAFGW_API_KEYS_FILE": str(tmp_path / "api-keys.json"),
        "CAFGW_DATABASE__URL": f"sqlite:///{tmp_path / 'ledger.db'}",
    }

    def decide(*args: str) -> Any:
        line = ["existence", "decide", *args, "--authority", "336", "--config", str(config)]
        return CliRunner().invoke(app, line, env=env)

    first = decide(query, "--approve", "--by", "Ann Coordinator")
    assert first.exit_code == 0 and first.output == f"{query}: answered\n", first.output
    again = decide(query, "--approve", "--by", "Ben Colleague")
    assert again.exit_code == 0, again.output
    assert f"{query}: already approved by Ann Coordinator at " in again.output
    assert again.output.endswith("; nothing done again\n")
    otherwise = decide(query, "--refuse", "--by", "Ben Colleague")
    assert otherwise.exit_code == 2, otherwise.output
    assert "already approved by Ann Coordinator at " in otherwise.output
    pump(gw)
    assert len(_answered(gw)) == 1


def test_of_two_decisions_on_a_held_query_at_once_the_second_hears_the_first(
    tmp_path: Path,
) -> None:
    # A colleague refusing at the moment of the approval: the one that lost the race
    # read the query as waiting, found it decided when it wrote, and answered 404.
    _client, _auth, gw, query = _one_held(tmp_path)
    second: list[object] = []

    def refuse() -> None:
        try:
            second.append(coordination.decide_existence_query(gw, "336", query, False, "Ben"))
        except Exception as exc:  # reported by the assertions below
            second.append(exc)

    def the_colleague_refuses_after_this_read(
        _conn: object, _cursor: object, statement: str, *_: object
    ) -> None:
        if (
            statement.startswith("SELECT existence_held.")
            and threading.current_thread() is threading.main_thread()
            and not second
        ):
            other = threading.Thread(target=refuse)
            other.start()
            other.join(1.0)  # ends at once without the lock, waits for this one with it
            second.append(other)

    event.listen(gw.ledger.engine, "after_cursor_execute", the_colleague_refuses_after_this_read)
    try:
        first = coordination.decide_existence_query(gw, "336", query, True, "Ann")
    finally:
        event.remove(
            gw.ledger.engine, "after_cursor_execute", the_colleague_refuses_after_this_read
        )
    for item in second:
        if isinstance(item, threading.Thread):
            item.join(30)
    (then,) = [x for x in second if not isinstance(x, threading.Thread)]
    assert (first.already, first.query.decision) == (False, "APPROVED")
    # The refusal waited for the approval, then heard of it: a conflict naming Ann.
    assert isinstance(then, ConflictError), then
    assert "already approved by Ann at " in str(then)
    pump(gw)
    assert len(_answered(gw)) == 1
