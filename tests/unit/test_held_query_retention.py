"""A safeguarding existence query held for the coordinator keeps a child's keyed hashes
and the asking approver's name, role and reason: retention and erasure reach them.

Before, nothing did: a held query kept them for good, decided or not, and an erasure
request for the child left every query about the child waiting, with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from local_systems import with_connector
from policy_support import WOLVERHAMPTON, pump, settings_for, submit
from retention_support import Clock, dudley_shared, found_in, region, retention_yaml
from sqlalchemy import select
from support.api_attacks import KACPER, Auth
from support.gateways import config_copy

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.cases.tables import case_log
from gateway.connectors import handover
from gateway.crossborder import existence_held, existence_store
from gateway.crossborder.existence_held import HeldQuery
from gateway.crossborder.existence_store import existence_index
from gateway.ledger import audit
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.status import Direction
from gateway.ledger.tables import messages
from gateway.retention import erasure, held_queries, service
from gateway.retention.tables import tombstones

pytestmark = pytest.mark.timeout(120)

APPROVER = "Solihull MASH manager"
# A child Wolverhampton holds no CAF for: a query about her is no query about Kacper.
ZOFIA = {**KACPER, "given_name": "Zofia", "upn": "A336209911002"}
SIOBHAN = {
    "recipient": "336",
    "given_name": "Siobhán",
    "family_name": "O’Neill",
    "date_of_birth": "2014-03-14",
    "upn": "J332412014017",
}


class Region:
    """336 holds safeguarding queries for its coordinator; 334 asks about its children."""

    def __init__(
        self, tmp_path: Path, *, from_dudley: bool = False, drop: Path | None = None
    ) -> None:
        config_copy(tmp_path, existence_safeguarding_hold=True)
        self.clock = Clock.starting_now()
        settings = settings_for(tmp_path)
        if drop is not None:  # 336's local system takes files from ``drop``
            settings = with_connector(settings, "336", kind="file", directory=str(drop))
        self.gw = region(tmp_path, self.clock, settings)
        if from_dudley:  # 336 holds what Dudley shared with it, Siobhán's record among them
            dudley_shared(self.gw)
        else:
            submit(self.gw, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), "ehm.json")
        pump(self.gw)
        keys = ApiKeys(tmp_path / "api-keys.json")
        self.client = TestClient(create_app(self.gw, keys))
        self.asker: Auth = {"Authorization": f"Bearer {keys.issue('334', holder='Priya')}"}
        self.coordinator: Auth = {"Authorization": f"Bearer {keys.issue('336', holder='CAF')}"}

    def ask(self, reason: str, child: dict[str, str] = KACPER) -> str:
        body = dict(child, safeguarding_approver=APPROVER, safeguarding_reason=reason)
        asked = self.client.post("/v1/existence-queries", json=body, headers=self.asker)
        assert asked.status_code == 202, asked.text
        pump(self.gw)
        return str(asked.json()["message_id"])

    def decide(self, query: str, how: str) -> Any:
        return self.client.post(
            f"/v1/existence-queries-held/{query}/{how}",
            json={"by": "Ann Coordinator"},
            headers=self.coordinator,
        )

    def erase(self, authority: str, child: str, reference: str) -> Any:
        """``authority``'s DPO erases ``child`` (an objection under Art 21(1))."""
        return erasure.erase_child(
            self.gw,
            authority,
            child,
            ground=erasure.ErasureGround.OBJECTION,
            reference=reference,
            actor="DPO",
        )

    def waiting(self) -> list[str]:
        found = self.client.get("/v1/existence-queries-held", headers=self.coordinator)
        return [q["message_id"] for q in found.json()]

    def row(self, query: str) -> dict[str, Any]:
        with self.gw.ledger.transaction() as conn:
            found = conn.execute(
                select(existence_held.existence_held).where(
                    existence_held.existence_held.c.message_id == query
                )
            ).one()
        return dict(found._mapping)

    def actions(self, action: str) -> list[str | None]:
        return [
            e.event.message_id
            for e in audit.entries(self.gw.ledger, "336")
            if e.event.action == action
        ]

    def answered(self, query: str) -> Any:
        pump(self.gw)
        return self.client.get(f"/v1/existence-queries/{query}", headers=self.asker).json()

    def status(self, query: str) -> str:
        """The status of the query's ledger row as received (in 336's inbox)."""
        with self.gw.ledger.transaction() as conn:
            return str(
                conn.execute(
                    select(messages.c.status).where(
                        messages.c.authority == "336",
                        messages.c.direction == Direction.INBOUND.value,
                        messages.c.message_id == query,
                    )
                ).scalar_one()
            )

    def logged(self, query: str) -> int:
        """Lines of 336's case log on the query's thread."""
        thread = self.row(query)["correlation_id"]
        with self.gw.ledger.transaction() as conn:
            return len(
                conn.execute(
                    select(case_log.c.id).where(
                        case_log.c.authority == "336", case_log.c.correlation_id == thread
                    )
                ).all()
            )

    def bodies(self, *queries: str) -> dict[str, bool]:
        """Whether each query's ledger row as received still holds its body."""
        with self.gw.ledger.transaction() as conn:
            return {
                row.message_id: bool(row.held)
                for row in conn.execute(
                    select(messages.c.message_id, HAS_BODY.label("held")).where(
                        messages.c.authority == "336",
                        messages.c.direction == Direction.INBOUND.value,
                        messages.c.message_id.in_(queries),
                    )
                )
            }


def _personal(row: dict[str, Any]) -> tuple[Any, ...]:
    return row["hashes"], row["approver"], row["approver_role"], row["reason"]


def test_an_undecided_held_query_is_closed_unanswered_after_existence_held_days(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    assert r.row(query)["hashes"] and r.row(query)["reason"] == "sibling at risk"
    r.clock.advance(days=29)
    assert service.planned(r.gw, "336").held == ()
    service.apply(r.gw, "336")
    assert r.waiting() == [query] and r.row(query)["reason"] == "sibling at risk"
    assert r.status(query) == "VERIFIED" and r.logged(query) > 0  # in the inbox, logged
    r.clock.advance(days=2)
    dry = service.dry_report(service.planned(r.gw, "336"), r.clock())
    assert dry.state == {"existence_held_queries": 1} and dry.message_ids == (query,)
    assert r.waiting() == [query]
    report = service.apply(r.gw, "336")
    assert report.state["existence_held_queries"] == 1
    row = r.row(query)
    assert _personal(row) == ("", None, None, None)
    assert (row["decision"], row["decided_by"]) == ("EXPIRED", "retention job")
    assert (row["requester"], row["message_id"]) == ("334", query)  # that it was asked stays
    assert r.waiting() == []
    late = r.decide(query, "approve")
    assert late.status_code == 409, late.text
    assert "already expired by retention job" in late.json()["detail"]
    assert r.answered(query)["answer"] is None  # nothing was sent
    assert r.actions("EXISTENCE_QUERY_EXPIRED") == [query]
    assert r.bodies(query) == {query: False}  # the query as received went with it
    assert r.status(query) == "WITHDRAWN" and report.withdrawn == 1  # never served empty
    assert r.logged(query) == 0  # its thread's log went with it
    assert query in report.message_ids and report.by_rule == {"existence_held_days": 1}
    assert audit.verify(r.gw.ledger) == []


def test_a_decided_query_keeps_its_decision_and_loses_its_hashes_and_reason_after_the_period(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    r.clock.advance(days=20)
    assert r.decide(query, "approve").status_code == 200
    assert r.answered(query)["answer"].startswith("match=true")
    r.clock.advance(days=20)  # 40 days since it came, 20 since the decision
    service.apply(r.gw, "336")
    assert r.row(query)["reason"] == "sibling at risk"
    r.clock.advance(days=11)
    report = service.apply(r.gw, "336")
    assert report.state["existence_held_queries"] == 1
    row = r.row(query)
    assert _personal(row) == ("", None, None, None)
    assert (row["decision"], row["decided_by"]) == ("APPROVED", "Ann Coordinator")
    assert r.actions("EXISTENCE_QUERY_EXPIRED") == []  # it was answered, not closed
    assert r.bodies(query) == {query: False}
    assert service.apply(r.gw, "336").state == {}  # scrubbed once


def test_erasing_the_child_closes_the_queries_about_it_and_erases_them_as_received(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    waiting = r.ask("sibling at risk")
    approved = r.ask("second look")
    other = r.ask("another child", ZOFIA)
    assert r.decide(approved, "approve").status_code == 200
    dry = erasure.plan_erasure(r.gw, "336", KACPER["upn"], "REQ-31")
    assert {waiting, approved} <= {d.message_id for d in dry.due}  # a dry run shows them
    assert other not in {d.message_id for d in dry.due}
    report = r.erase("336", KACPER["upn"], "REQ-31")
    assert report.state["existence_held_queries"] == 2
    assert {waiting, approved} <= set(report.message_ids)  # the queries as received
    assert other not in report.message_ids
    for query, decision in ((waiting, "ERASED"), (approved, "APPROVED")):
        row = r.row(query)
        assert _personal(row) == ("", None, None, None), query
        assert row["decision"] == decision
    assert r.row(waiting)["decided_by"] == "DPO"
    assert r.row(other)["reason"] == "another child" and r.row(other)["hashes"]
    assert r.waiting() == [other]
    assert r.actions("EXISTENCE_QUERY_ERASED") == [waiting]
    assert r.bodies(waiting, approved, other) == {other: True, waiting: False, approved: False}
    assert audit.verify(r.gw.ledger) == []


def test_a_query_naming_a_child_still_held_on_another_case_is_left_waiting(
    tmp_path: Path,
) -> None:
    """Another case of the child may carry fewer of its identifiers: a query naming any
    identifier still indexed is about a child held here, whatever the erased case had."""
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    hashes = r.row(query)["hashes"].split()
    assert len(hashes) > 1
    with r.gw.ledger.transaction() as conn:
        (thread,) = {
            row[0]
            for row in conn.execute(
                select(existence_index.c.correlation_id).where(
                    existence_index.c.authority == "336",
                    existence_index.c.keyed_hash.in_(hashes),
                )
            )
        }
        existence_store.index_child(conn, "336", "a-later-case-of-kacper", hashes[-1:])
        assert held_queries.naming_erased(conn, "336", [thread]) == []
        both = held_queries.naming_erased(conn, "336", [thread, "a-later-case-of-kacper"])
    assert [q.message_id for q in both] == [query]


@pytest.mark.parametrize(("held_days", "closed_as"), [(400, "ERASED"), (10, "EXPIRED")])
def test_purging_the_childs_last_case_closes_the_queries_about_it_once(
    tmp_path: Path, held_days: int, closed_as: str
) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    periods = {state: {"default": 10} for state in ("CLOSED", "OPEN", "SUBMITTED", "DRAFT")}
    settings = retention_yaml(
        r.gw.settings,
        case_records={**periods, "UNKNOWN": {"default": 10}},
        existence_held_days=held_days,
    )
    r.gw = region(tmp_path / "again", r.clock, settings)  # the same ledger, these periods
    r.clock.advance(days=11)
    dry = service.dry_report(service.planned(r.gw, "336"), r.clock())
    assert dry.message_ids.count(query) == 1
    report = service.apply(r.gw, "336")
    assert report.state["existence_held_queries"] == 1
    assert report.message_ids.count(query) == 1
    assert (r.row(query)["decision"], r.row(query)["hashes"]) == (closed_as, "")
    assert r.actions(f"EXISTENCE_QUERY_{closed_as}") == [query]
    assert r.bodies(query) == {query: False}


def test_a_decision_taken_after_the_query_was_read_stands_when_it_is_scrubbed(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    with r.gw.ledger.transaction() as conn:
        (read,) = existence_held.waiting(conn, "336")
    assert r.decide(query, "refuse").status_code == 200
    with r.gw.ledger.transaction() as conn:
        closed = existence_held.scrub(conn, "336", [read], "EXPIRED", "retention job", r.clock())
    assert closed == []
    row = r.row(query)
    assert (row["decision"], row["decided_by"], row["reason"]) == (
        "REFUSED",
        "Ann Coordinator",
        None,
    )


def test_an_undecided_query_without_personal_fields_is_closed_at_its_period(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    bare = HeldQuery("336", "bare-query", "334", "c-1", None, None, None, None, (), r.clock())
    with r.gw.ledger.transaction() as conn:
        existence_held.hold(conn, bare)
    r.clock.advance(days=31)
    assert service.apply(r.gw, "336").state == {"existence_held_queries": 1}
    assert r.row("bare-query")["decision"] == "EXPIRED"
    assert service.apply(r.gw, "336").state == {}


def test_an_erasure_request_from_another_authority_leaves_the_queries_held_here_waiting(
    tmp_path: Path,
) -> None:
    """Dudley's request erases the copies Dudley sent, and nothing another authority
    sent: Solihull's query about the child stays for Wolverhampton's coordinator (who
    would now answer no match), with its row as received."""
    r = Region(tmp_path, from_dudley=True)
    query = r.ask("sibling at risk", SIOBHAN)
    r.erase("332", SIOBHAN["upn"], "DPO/2026/140")
    pump(r.gw)
    with r.gw.ledger.transaction() as conn:
        erased_at_336 = conn.execute(
            select(tombstones.c.message_id).where(
                tombstones.c.authority == "336", tombstones.c.sender == "332"
            )
        ).all()
    assert erased_at_336  # Dudley's copies went
    assert r.waiting() == [query]
    assert r.row(query)["reason"] == "sibling at risk" and r.row(query)["hashes"]
    assert r.bodies(query) == {query: True}
    assert r.actions("EXISTENCE_QUERY_ERASED") == []


def test_the_askers_own_erasure_request_naming_its_query_closes_it_here(tmp_path: Path) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    digest = r.row(query)["digest"]
    with r.gw.ledger.transaction() as conn:
        erasure.queue_notices(
            r.gw,
            conn,
            "334",
            {"336": ((query, digest),)},
            erasure.ErasureGround.OBJECTION,
            "DPO/2026/141",
            "DPO",
        )
    pump(r.gw)
    row = r.row(query)
    assert (row["decision"], _personal(row)) == ("ERASED", ("", None, None, None))
    assert r.waiting() == []
    assert r.bodies(query) == {query: False}
    assert r.actions("EXISTENCE_QUERY_ERASED") == [query]


def test_an_expired_query_dropped_for_the_local_system_and_not_taken_is_taken_back(
    tmp_path: Path,
) -> None:
    drop = tmp_path / "drop-336"
    drop.mkdir()
    r = Region(tmp_path, drop=drop)
    query = r.ask("sibling at risk")
    handover.deliver_pending(r.gw)
    assert found_in(drop, ("sibling at risk",))  # the query as received, in a file
    r.clock.advance(days=31)
    report = service.apply(r.gw, "336")
    assert report.state["existence_held_queries"] == 1
    assert report.local_files >= 1 and found_in(drop, ("sibling at risk",)) == {}
    assert r.status(query) == "WITHDRAWN"


def test_a_query_about_a_child_indexed_only_on_an_expired_querys_thread_is_closed_too(
    tmp_path: Path,
) -> None:
    """Erasing a query's row as received can leave its thread with nothing unerased; a
    child indexed only there is no longer held, and a query about it closes with it."""
    r = Region(tmp_path)
    first = r.ask("sibling at risk")
    r.clock.advance(days=20)
    second = r.ask("another child", ZOFIA)
    with r.gw.ledger.transaction() as conn:
        existence_store.index_child(
            conn, "336", r.row(first)["correlation_id"], r.row(second)["hashes"].split()
        )
    r.clock.advance(days=11)  # the first is past its period, the second is not
    report = service.apply(r.gw, "336")
    assert report.state["existence_held_queries"] == 2
    assert r.row(first)["decision"] == "EXPIRED"
    assert (r.row(second)["decision"], r.row(second)["hashes"]) == ("ERASED", "")
    assert r.waiting() == []


def test_erasing_another_senders_message_under_a_held_querys_id_leaves_the_query(
    tmp_path: Path,
) -> None:
    """Message ids are whatever their publisher set: Dudley's copy erased here at
    Dudley's request is not Solihull's query held under the same id."""
    r = Region(tmp_path, from_dudley=True)
    dudleys = r.gw.ledger.find(authority="336", direction=Direction.INBOUND, limit=100)
    same_id = next(
        m.message_id
        for m in dudleys
        if m.sender == "332"
        and SIOBHAN["upn"].encode()
        in (r.gw.ledger.body_of("336", Direction.INBOUND, m.message_id) or b"")
    )
    solihulls = HeldQuery(
        "336", same_id, "334", "c-1", None, APPROVER, "MASH", "sibling at risk", ("h",), r.clock()
    )
    with r.gw.ledger.transaction() as conn:
        existence_held.hold(conn, solihulls)
    r.erase("332", SIOBHAN["upn"], "DPO/2026/142")
    pump(r.gw)
    assert r.bodies(same_id) == {same_id: False}  # Dudley's copy went
    row = r.row(same_id)
    assert (row["decision"], row["reason"]) == (None, "sibling at risk")
    assert r.waiting() == [same_id]
