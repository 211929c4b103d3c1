"""A safeguarding existence query held for the coordinator keeps a child's keyed hashes
and the asking approver's name, role and reason: retention and erasure reach them.

Before, nothing did: a held query kept them for good, decided or not, and an erasure
request for the child left every query about the child waiting, with its reason.

At the asking authority (the tests named "asker", and after them): an erasure of the
child reaches the queries it sent, their answers and the asked authority's copies, with
no child key on the query's row (``existence_asked``); and what an erasure does to a
message still in the outbox, or sent and back in it."""

from __future__ import annotations

import copy
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from local_systems import with_connector
from policy_support import WOLVERHAMPTON, envelope_of, memory_gateway, pump, settings_for, submit
from retention_support import Clock, dudley_shared, found_in, region, retention_yaml
from sqlalchemy import select, update
from support.api_attacks import KACPER, Auth
from support.gateways import config_copy

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.cases.tables import case_log
from gateway.connectors import handover
from gateway.crossborder import existence_held, existence_store
from gateway.crossborder.existence_asked import existence_asked
from gateway.crossborder.existence_held import HeldQuery
from gateway.crossborder.existence_store import existence_index
from gateway.errors import ConflictError
from gateway.ledger import audit, dismissed
from gateway.ledger.bodies import HAS_BODY
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.model import Assessment, ErasureRequest, Safeguarding
from gateway.ops import attention
from gateway.retention import erasure, held_queries, purge, service
from gateway.retention.tables import tombstones
from gateway.services import coordination, dead_letters, views
from gateway.subject_access import report as subject_access

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
        """334 asks 336 about ``child``; both gateways then do what they have to."""
        query = self.queue(reason, child)
        pump(self.gw)
        return query

    def queue(self, reason: str, child: dict[str, str] = KACPER) -> str:
        """334 asks: the query is queued, not yet published."""
        body = dict(child, safeguarding_approver=APPROVER, safeguarding_reason=reason)
        asked = self.client.post("/v1/existence-queries", json=body, headers=self.asker)
        assert asked.status_code == 202, asked.text
        return str(asked.json()["message_id"])

    def sent(self, query: str) -> MessageRecord:
        """334's ledger row of the query it sent."""
        (row,) = self.gw.ledger.find(
            message_id=query, authority="334", direction=Direction.OUTBOUND
        )
        return row

    def move_sent(self, query: str, status: Status) -> MessageRecord:
        """334's query as sent moved to ``status`` (as a replay or a dead-lettering would
        move it); its row before."""
        row = self.sent(query)
        with self.gw.ledger.transaction() as conn:
            self.gw.ledger.transition_from([row.pk], (row.status,), status, status.value, conn)
        return row

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

    def bodies(
        self, *queries: str, at: str = "336", direction: Direction = Direction.INBOUND
    ) -> dict[str, bool]:
        """Whether each query's ledger row as received (or, at the asker, as sent) still
        holds its body."""
        with self.gw.ledger.transaction() as conn:
            return {
                row.message_id: bool(row.held)
                for row in conn.execute(
                    select(messages.c.message_id, HAS_BODY.label("held")).where(
                        messages.c.authority == at,
                        messages.c.direction == direction.value,
                        messages.c.message_id.in_(queries),
                    )
                )
            }

    def on_thread_at_asker(self, query: str) -> dict[str, bool]:
        """334's ledger rows on the query's thread (the query, the answer): whether each
        still holds its body."""
        thread = self.row(query)["correlation_id"]
        with self.gw.ledger.transaction() as conn:
            return {
                f"{row.direction} {row.message_type}": bool(row.held)
                for row in conn.execute(
                    select(
                        messages.c.direction, messages.c.message_type, HAS_BODY.label("held")
                    ).where(messages.c.authority == "334", messages.c.correlation_id == thread)
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
    assert dry.state == {"existence_held_queries": 1}  # foreseen, as EXPIRED or ERASED
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


def test_erasing_the_child_at_the_asker_erases_its_query_and_has_the_recipient_erase_its_copy(
    tmp_path: Path,
) -> None:
    """Before, nothing tied the query the asker sent to the child: its erasure of the
    child found nothing ("child not found") and left the hashes, approver and reason
    it sent, here and at the recipient."""
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    digest = r.row(query)["digest"]
    dry = erasure.plan_erasure(r.gw, "334", KACPER["upn"], "DPO/2026/150")
    assert query in {d.message_id for d in dry.due}
    assert dry.disclosed_to == {"336": ((query, digest),)}
    report = r.erase("334", KACPER["upn"], "DPO/2026/150")
    assert query in report.message_ids
    assert r.bodies(query, at="334", direction=Direction.OUTBOUND) == {query: False}
    pump(r.gw)  # the erasure request, to 336, and its receipt
    row = r.row(query)
    assert (row["decision"], _personal(row)) == ("ERASED", ("", None, None, None))
    assert r.waiting() == [] and r.bodies(query) == {query: False}
    assert r.actions("EXISTENCE_QUERY_ERASED") == [query]
    shown = r.client.get(f"/v1/existence-queries/{query}", headers=r.asker).json()
    assert shown["answer"] is None and shown["erased_at"] is not None
    said = views.existence_answer(r.gw, "334", query).describe()  # `cafgw existence answer`
    assert said.startswith("erased here") and "erasure request DPO/2026/150" in said
    assert audit.verify(r.gw.ledger) == []


def test_erasing_the_child_at_the_asker_erases_the_answer_on_its_querys_thread(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    assert r.decide(query, "approve").status_code == 200
    assert r.answered(query)["answer"].startswith("match=true")
    assert r.on_thread_at_asker(query) == {
        "OUTBOUND Notification": True,
        "INBOUND Notification": True,
    }
    r.erase("334", KACPER["upn"], "DPO/2026/151")
    pump(r.gw)
    assert r.on_thread_at_asker(query) == {
        "OUTBOUND Notification": False,
        "INBOUND Notification": False,
    }
    shown = r.answered(query)
    assert shown["answer"] is None and shown["erased_at"] is not None  # not "no answer yet"
    row = r.row(query)  # at 336: answered, and what it was asked with is gone
    assert (row["decision"], _personal(row)) == ("APPROVED", ("", None, None, None))
    assert r.bodies(query) == {query: False}


def test_the_askers_subject_access_report_lists_its_query_as_a_safeguarding_disclosure(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    assert r.decide(query, "approve").status_code == 200
    pump(r.gw)
    found = subject_access.build(r.gw, "334", KACPER["upn"], "DPO")
    (shown,) = [d for d in found.disclosures if d.message_id == query]
    assert (shown.to, shown.legal_basis, shown.approved_by) == ("336", "SAFEGUARDING", APPROVER)
    assert any(query in line for line in found.review)
    # And the answer, which an erasure of the child takes as the child's too.
    assert [(m.sender, m.what) for m in found.received] == [
        ("336", "Notification EXISTENCE_ANSWER")
    ]


def test_an_answer_that_comes_after_the_asker_erased_its_query_is_not_taken(
    tmp_path: Path,
) -> None:
    """The coordinator approved before the erasure request reached 336: the answer would
    tie the erased child to 336's contact again on 334's erased thread."""
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    r.erase("334", KACPER["upn"], "DPO/2026/152")
    assert r.decide(query, "approve").status_code == 200  # 336 has not had the request yet
    shown = r.answered(query)  # pumps both ways
    assert shown["answer"] is None and shown["erased_at"] is not None
    (refused,) = [
        m
        for m in r.gw.ledger.find(authority="334", direction=Direction.INBOUND)
        if m.sender == "336" and m.message_type == "Notification"
    ]
    assert refused.status.value == "QUARANTINED"  # and no body kept
    assert f"query {query} was erased at 334" in (refused.reason or "")
    assert r.on_thread_at_asker(query) == {"OUTBOUND Notification": False}


def test_a_query_is_noted_by_the_child_but_its_row_carries_no_child_key(tmp_path: Path) -> None:
    """A child key on the row would make the asked authority one the child's data went
    to: a consent withdrawal would send it the child's name, date of birth and case
    (found by a review); and the child's consent entries would be kept while the query
    is."""
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    with r.gw.ledger.transaction() as conn:
        keyed = conn.execute(
            select(messages.c.child_key).where(
                messages.c.authority == "334", messages.c.message_id == query
            )
        ).scalar_one()
        assert keyed is None
        noted = conn.execute(
            select(existence_asked.c.child_key).where(existence_asked.c.message_id == query)
        ).scalars()
        # Under the UPN's key and the name and date of birth's: whichever names the child.
        assert len(set(noted)) == 2


def test_a_consent_withdrawal_sends_nothing_to_an_authority_that_was_only_asked(
    tmp_path: Path,
) -> None:
    """336 asks 333 whether it holds a CAF for a child of 336's own; then the family
    withdraws consent at 336 (the export again, with the withdrawal). 333 was sent
    keyed hashes only, and must not now be sent the child's identity with a withdrawal
    notice."""
    config_copy(tmp_path)
    policy = tmp_path / "config" / "policy.yaml"
    data = yaml.safe_load(policy.read_text())
    data["safeguarding_approvers"]["336"] = [{"name": "Wolves MASH", "role": "MASH manager"}]
    policy.write_text(yaml.safe_dump(data))
    gw = memory_gateway(tmp_path)
    export = json.loads(WOLVERHAMPTON.read_text(encoding="utf-8"))
    export["episodes"] = [e for e in export["episodes"] if e["episodeId"] == "EHM-77245"]
    before = copy.deepcopy(export)
    before["episodes"][0]["consent"]["withdrawn"] = []
    before["episodes"][0]["events"] = []
    submit(gw, "336", "wolverhampton-json", json.dumps(before).encode(), "before.json")
    pump(gw)
    (assessment,) = [
        m
        for m in gw.ledger.find(authority="336", direction=Direction.OUTBOUND, limit=100)
        if m.message_type == "Assessment"
    ]
    env = envelope_of(gw, assessment)
    assert env is not None and isinstance(env.body, Assessment)
    coordination.ask_existence(
        gw, "336", "333", env.body.child, Safeguarding("Wolves MASH", "sibling at risk")
    )
    pump(gw)
    submit(gw, "336", "wolverhampton-json", json.dumps(export).encode(), "withdrawn.json")
    pump(gw)
    sent = [
        (m.recipient, m.message_type)
        for m in gw.ledger.find(authority="336", direction=Direction.OUTBOUND, limit=500)
    ]
    assert any(t == "ConsentChange" for _, t in sent)  # the withdrawal was recorded
    # The query alone (and the receipt for 333's answer): no ConsentChange, no identity.
    assert [t for to, t in sent if to == "333" and t != "Receipt"] == ["Notification"]


def test_a_query_still_queued_when_the_child_is_erased_is_withdrawn_not_sent_empty(
    tmp_path: Path,
) -> None:
    """Before (found by a review), its body was erased and the row left queued: the sender
    loop then published an empty message, recorded SENT, which 336 quarantined."""
    r = Region(tmp_path)
    query = r.queue("sibling at risk")  # queued, not yet published
    report = r.erase("334", KACPER["upn"], "DPO/2026/153")
    assert report.state.get("withdrawn_from_outbox") == 1
    assert report.state.get("erasure_notices") is None  # it never left: nobody to tell
    pump(r.gw)
    sent = r.sent(query)
    assert sent.status.value == "WITHDRAWN"
    assert r.gw.ledger.find(authority="336", direction=Direction.INBOUND, message_id=query) == []


def test_a_query_asked_with_an_nhs_number_is_reached_by_an_erasure_naming_it(
    tmp_path: Path,
) -> None:
    """The child's key is its UPN's when it has one; a query is noted under the key of
    each identifier it was asked with, so an erasure naming the NHS number finds it."""
    r = Region(tmp_path)
    query = r.ask("sibling at risk", dict(KACPER, nhs_number="943 476 5919"))
    dry = erasure.plan_erasure(r.gw, "334", "9434765919", "DPO/2026/154")
    assert query in {d.message_id for d in dry.due}


def test_at_its_period_the_query_goes_with_its_note_and_the_answer_stays_for_its_own(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    assert r.decide(query, "approve").status_code == 200
    assert r.answered(query)["answer"].startswith("match=true")
    r.clock.advance(days=1096)  # past the query's 1095 days, not the answer's 2190
    service.apply(r.gw, "334")
    assert r.on_thread_at_asker(query) == {
        "OUTBOUND Notification": False,
        "INBOUND Notification": True,
    }
    with r.gw.ledger.transaction() as conn:
        noted = conn.execute(
            select(existence_asked.c.id).where(existence_asked.c.message_id == query)
        ).all()
    assert noted == []  # nothing ties the child to it any more
    shown = r.answered(query)
    assert shown["answer"].startswith("match=true") and shown["erased_at"] is not None
    said = views.existence_answer(r.gw, "334", query).describe()
    assert said.startswith("match=true") and "(the query was erased here" in said


def test_a_query_a_publisher_holds_as_the_child_is_erased_is_taken_as_sent(
    tmp_path: Path,
) -> None:
    """It may be on the wire: it is not shown withdrawn, and 336 is asked to erase it."""
    r = Region(tmp_path)
    query = r.queue("sibling at risk")
    with r.gw.ledger.transaction() as conn:  # as the sender loop claims a row it publishes
        conn.execute(
            update(messages)
            .where(messages.c.authority == "334", messages.c.message_id == query)
            .values(claimed_until=r.clock() + timedelta(minutes=5))
        )
    report = r.erase("334", KACPER["upn"], "DPO/2026/155")
    assert report.state.get("withdrawn_from_outbox") is None
    assert report.state.get("erasure_notices") == 1
    (notice,) = [
        m
        for m in r.gw.ledger.find(authority="334", direction=Direction.OUTBOUND, limit=100)
        if m.message_type == "ErasureRequest"
    ]
    env = envelope_of(r.gw, notice)
    assert env is not None and isinstance(env.body, ErasureRequest)
    assert [ref.message_id for ref in env.body.messages] == [query]
    # The publisher failed, or died: its claim lapses and the row is claimed again.
    # Its body is gone: it is withdrawn, never published empty (found by a review).
    r.clock.advance(minutes=6)
    pump(r.gw)
    sent = r.sent(query)
    assert (sent.status.value, sent.reason) == (
        "WITHDRAWN",
        "withdrawn from the outbox: its body was erased here",
    )
    assert r.gw.ledger.find(authority="336", direction=Direction.INBOUND, message_id=query) == []


def test_a_query_published_while_its_erasure_was_planned_is_named_in_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recipients were read when the erasure was planned, before the broker was
    asked about parked copies: one published in between was missed (found by a
    review)."""
    r = Region(tmp_path)
    query = r.queue("sibling at risk")
    planned = erasure.plan_erasure

    def then_published(*args: Any, **kwargs: Any) -> erasure.ErasurePlan:
        todo = planned(*args, **kwargs)
        assert todo.disclosed_to == {}  # still queued as it was planned
        pump(r.gw)  # the sender loop publishes it meanwhile
        return todo

    monkeypatch.setattr(erasure, "plan_erasure", then_published)
    report = r.erase("334", KACPER["upn"], "DPO/2026/156")
    assert report.state.get("erasure_notices") == 1
    pump(r.gw)
    assert r.row(query)["decision"] == "ERASED" and r.bodies(query) == {query: False}


def test_a_query_sent_then_back_in_the_outbox_is_withdrawn_and_named_in_the_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-sent (its receipt overdue) or replayed: in the outbox again, but 336 may hold
    it. Withdrawn, and named all the same (its history says it was sent); also when it
    came back while the erasure was planned, with the status it had then."""
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    sent = r.sent(query)
    assert erasure.plan_erasure(r.gw, "334", KACPER["upn"], "DPO/2026/157").disclosed_to == {
        "336": ((query, sent.digest),)
    }
    planned = erasure.plan_erasure

    def then_replayed(*args: Any, **kwargs: Any) -> erasure.ErasurePlan:
        todo = planned(*args, **kwargs)
        r.move_sent(query, Status.REPLAYED)
        return todo

    monkeypatch.setattr(erasure, "plan_erasure", then_replayed)
    report = r.erase("334", KACPER["upn"], "DPO/2026/157")
    assert report.state.get("withdrawn_from_outbox") == 1
    assert report.state.get("erasure_notices") == 1
    pump(r.gw)
    after = r.sent(query)
    assert after.status.value == "WITHDRAWN"
    assert r.row(query)["decision"] == "ERASED" and r.bodies(query) == {query: False}


def test_a_dry_run_names_the_recipient_of_a_query_sent_and_back_in_the_outbox(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    sent = r.move_sent(query, Status.REPLAYED)
    dry = erasure.plan_erasure(r.gw, "334", KACPER["upn"], "DPO/2026/158")
    assert dry.disclosed_to == {"336": ((query, sent.digest),)}


def test_an_erased_dead_letter_is_not_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Replayed, it would have gone out empty (or been withdrawn unseen) while the
    operator was told it was replayed (found by a review)."""
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    r.move_sent(query, Status.DEAD_LETTERED)
    assert attention.counts(r.gw.ledger, ["334"]) == {("334", attention.Need.DEAD_LETTERED): 1}
    report = r.erase("334", KACPER["upn"], "DPO/2026/159")
    with pytest.raises(ConflictError, match="was erased here"):
        dead_letters.replay(r.gw, "334", query, "admin")
    after = r.sent(query)
    assert after.status.value == "DEAD_LETTERED"  # it was sent, and never receipted
    # Listed as erased, and nobody is asked to act on it (dismissed, audited).
    (listed,) = dead_letters.list_dead_letters(r.gw, "334")
    assert listed.erased
    assert report.state.get(purge.DISMISSED) == 1
    assert attention.counts(r.gw.ledger, ["334"]) == {}
    (why,) = attention.dismissals_of(r.gw.ledger, after.pk)
    assert why.reason == dismissed.ERASED and why.actor.startswith("erasure run ")
    with caplog.at_level(logging.INFO, logger=dead_letters.__name__):
        assert dead_letters.replay_all(r.gw, "334", "admin") == []
    said = [(m.levelno, m.getMessage()) for m in caplog.records]  # skipped, no 409 tried
    assert said == [(logging.INFO, "1 dead letters of 334 were erased here: none replayed")]


def test_a_dry_run_counts_a_held_query_whose_row_as_received_is_due_by_its_own_rule(
    tmp_path: Path,
) -> None:
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    unknown = {"default": 2190, "Notification": 10}
    settings = retention_yaml(r.gw.settings, case_records={"UNKNOWN": unknown})
    r.gw = region(tmp_path / "again", r.clock, settings)  # the same ledger, these periods
    r.clock.advance(days=11)
    dry = service.dry_report(service.planned(r.gw, "336"), r.clock())
    assert dry.state == {"existence_held_queries": 1} and query in dry.message_ids
    report = service.apply(r.gw, "336")
    assert report.state["existence_held_queries"] == 1
    assert r.row(query)["decision"] == "ERASED"


def test_a_dry_run_foresees_the_query_a_purge_of_the_childs_last_case_closes(
    tmp_path: Path,
) -> None:
    """The query's own row is far from its period (an existence query: 1095 days); the
    case the child is held on is past its own. Before, the dry run showed neither the
    query nor its row as received, and the run then closed and erased both."""
    r = Region(tmp_path)
    query = r.ask("sibling at risk")
    periods = {state: {"default": 10} for state in ("CLOSED", "OPEN", "SUBMITTED", "DRAFT")}
    unknown = {"default": 2190, "Notification": 1095}
    settings = retention_yaml(r.gw.settings, case_records={**periods, "UNKNOWN": unknown})
    r.gw = region(tmp_path / "again", r.clock, settings)  # the same ledger, these periods
    r.clock.advance(days=11)
    dry = service.dry_report(service.planned(r.gw, "336"), r.clock())
    assert dry.state == {"existence_held_queries": 1}
    assert query in dry.message_ids and dry.by_rule[held_queries.ERASED_CHILD_RULE] == 1
    assert r.waiting() == [query] and r.bodies(query) == {query: True}  # nothing changed
    report = service.apply(r.gw, "336")
    assert report.state["existence_held_queries"] == 1
    assert (set(report.message_ids), report.by_rule) == (set(dry.message_ids), dry.by_rule)
    assert r.row(query)["decision"] == "ERASED" and r.bodies(query) == {query: False}
