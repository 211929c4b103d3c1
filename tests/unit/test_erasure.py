"""Erasure on request: one child's data goes from the ledger, the inbox, file drops and
the broker's parking queue; another child's stays; the reference may not be a name."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from local_systems import with_connector
from policy_support import envelope_of, pump, settings_for
from retention_support import JAYDEN, SIOBHAN, Clock, dudley_shared, found_in, region
from sqlalchemy import delete, update
from support.sql import captured, plans, unbounded

from gateway.connectors import deadline, handover
from gateway.context import Gateway
from gateway.crossborder import consent_store
from gateway.errors import PolicyRefusal
from gateway.ledger import audit, bodies, dismissed
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import dismissals, messages
from gateway.lifecycle import outcomes
from gateway.model import ErasureRequest
from gateway.ops import attention
from gateway.retention import erasure, purge, service
from gateway.services import dead_letters
from gateway.transport.base import (
    Delivery,
    Disposition,
    OutgoingMessage,
    Verdict,
    routing_key,
)
from gateway.transport.memory import MemoryTransport
from gateway.transport.topology import Topology

pytestmark = pytest.mark.timeout(120)

GROUND = erasure.ErasureGround.CONSENT_WITHDRAWN


def test_erasing_a_child_everywhere_leaves_no_name_upn_or_postcode_and_keeps_the_others(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    assert set(found_in(tmp_path, SIOBHAN)) == set(SIOBHAN)  # the check can find them
    for code in ("332", "336", "333"):
        report = erasure.erase_child(
            gw, code, "J332412014017", ground=GROUND, reference="DPO/2026/118", actor="DPO"
        )
        assert report.messages >= 3 and report.state.get("case_threads") == 1, code
    assert audit.verify(gw.ledger) == []
    entries = [e for e in audit.entries(gw.ledger) if e.event.action == "ERASURE"]
    assert len(entries) == 3 and all("DPO/2026/118" in (e.event.detail or "") for e in entries)
    assert not any(n in (e.event.detail or "") for e in entries for n in SIOBHAN)
    gw.ledger.engine.dispose()
    assert found_in(tmp_path, SIOBHAN) == {}
    assert set(found_in(tmp_path, JAYDEN)) == set(JAYDEN)


def test_erasure_withdraws_what_the_local_system_has_not_taken_and_deletes_its_drop_file(
    tmp_path: Path,
) -> None:
    drop = tmp_path / "drop-336"
    drop.mkdir()
    settings = with_connector(settings_for(tmp_path), "336", kind="file", directory=str(drop))
    gw = region(tmp_path, Clock.starting_now(), settings)
    dudley_shared(gw)
    handover.deliver_pending(gw)
    dropped = sorted(p.name for p in drop.iterdir())
    assert dropped and found_in(drop, SIOBHAN)
    report = erasure.erase_child(
        gw, "336", "J332412014017", ground=GROUND, reference="REQ-7", actor="DPO"
    )
    assert report.withdrawn == len(dropped) and report.local_files == len(dropped)
    assert list(drop.iterdir()) == []
    received = gw.ledger.find(authority="336", direction=Direction.INBOUND, limit=100)
    withdrawn = [r for r in received if r.status == Status.WITHDRAWN]
    assert len(withdrawn) == len(dropped)
    assert all(r.history[-1].status == Status.ERASED for r in withdrawn)
    handover.sweep_taken(gw)  # a deleted file is not mistaken for one the local system took
    assert gw.ledger.find(authority="336", status=Status.ACKNOWLEDGED, limit=100) == []


def _refused_for_good(gw: Gateway) -> MessageRecord:
    """336's copy of Siobhán's Assessment, which its local system refused for good (a
    webhook answering 4xx): dead-lettered, to be handed over again once mended."""
    copy = next(
        r
        for r in gw.ledger.find(authority="336", direction=Direction.INBOUND, limit=100)
        if r.message_type == "Assessment"
    )
    with gw.ledger.transaction() as conn:
        gw.ledger.transition_from([copy.pk], (copy.status,), Status.DEAD_LETTERED, "4xx", conn)
    assert [d.message_id for d in dead_letters.list_dead_letters(gw, "336")] == [copy.message_id]
    return copy


def test_a_record_the_local_system_refused_for_good_needs_nobody_once_erased(
    tmp_path: Path,
) -> None:
    # Its local system never took it (so its sender is still told so at the deadline),
    # and there is nothing left to hand over: dismissed, not left to a human.
    clock = Clock.starting_now()
    gw = region(tmp_path, clock)
    dudley_shared(gw)
    copy = _refused_for_good(gw)
    report = erasure.erase_child(
        gw, "336", "J332412014017", ground=GROUND, reference="REQ-8", actor="DPO"
    )
    assert report.state.get(purge.DISMISSED) == 1
    (after,) = gw.ledger.find(message_id=copy.message_id, authority="336")
    assert after.status == Status.DEAD_LETTERED
    assert [d.erased for d in dead_letters.list_dead_letters(gw, "336")] == [True]
    assert attention.counts(gw.ledger, ["336"]) == {}
    # At the deadline its sender is told UNDELIVERABLE, and still nobody here is asked.
    clock.advance(gw.settings.delivery_for("336").local_ack_deadline_s + 1)
    assert deadline.report_unacknowledged(gw) >= 1
    (later,) = gw.ledger.find(message_id=copy.message_id, authority="336")
    assert later.status == Status.UNDELIVERABLE
    assert attention.counts(gw.ledger, ["336"]) == {}  # every one reported was erased


def _erased_as_before(gw: Gateway, reference: str) -> None:
    """The sample child erased at Wolverhampton as a version before 2026-12-07 left it:
    its dead letters erased and not dismissed."""
    erasure.erase_child(gw, "336", "J332412014017", ground=GROUND, reference=reference, actor="DPO")
    with gw.ledger.transaction() as conn:
        conn.execute(delete(dismissals))


def test_a_dead_letter_an_earlier_version_erased_and_left_listed_is_dismissed_by_retention(
    tmp_path: Path,
) -> None:
    # Before 2026-12-07 an erasure left its dead letters listed for ever. The next
    # retention run dismisses them, foreseen by its plan; a message without a body
    # that was never erased (no tombstone) is left to its human.
    clock = Clock.starting_now()
    gw = region(tmp_path, clock)
    dudley_shared(gw)
    copy = _refused_for_good(gw)
    _erased_as_before(gw, "R-11")
    with gw.ledger.transaction() as conn:
        found = gw.ledger.find(authority="336", limit=100)
        gone = bodies.without_body(conn, [r.pk for r in found])
        never = next(r for r in found if r.pk not in gone)
        gw.ledger.transition_from([never.pk], (never.status,), Status.DEAD_LETTERED, "4xx", conn)
        bodies.erase(conn, [never.pk])  # no body, but never erased here: no tombstone
    assert attention.counts(gw.ledger, ["336"]) == {("336", attention.Need.DEAD_LETTERED): 2}
    dry = service.dry_report(service.planned(gw, "336"), clock())
    assert dry.state.get(purge.DISMISSED) == 1
    report = service.apply(gw, "336", "test")
    assert report.state.get(purge.DISMISSED) == 1
    assert attention.counts(gw.ledger, ["336"]) == {("336", attention.Need.DEAD_LETTERED): 1}
    (left,) = attention.records(gw.ledger, ["336"], 10)
    assert left.pk == never.pk
    assert service.apply(gw, "336", "test").state.get(purge.DISMISSED) is None  # once
    (entry,) = [
        e
        for e in audit.entries(gw.ledger)
        if e.event.action == "DISMISS"
        and e.event.message_id == copy.message_id
        and report.run_id in e.event.actor
    ]
    assert entry.event.detail == f"DEAD_LETTERED dismissed: {dismissed.ERASED}"
    assert audit.verify(gw.ledger) == []


def test_a_retention_run_dismisses_a_dead_letter_it_erases_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Erased by this run, it is also what the sweep of earlier erasures would find if
    # it looked after the run's own rows were erased: two dismissals and two DISMISS
    # entries once the ids were read in separate chunks (found by a review).
    clock = Clock.starting_now()
    gw = region(tmp_path, clock)
    dudley_shared(gw)
    copy = _refused_for_good(gw)
    monkeypatch.setattr(dismissed, "CHUNK", 1)  # a chunk boundary between any two ids
    clock.advance((gw.settings.retention.dead_letter_days + 1) * 86_400)
    report = service.apply(gw, "336", "test")
    assert copy.message_id in report.message_ids
    assert report.state.get(purge.DISMISSED) == 1
    dismissals = [
        e
        for e in audit.entries(gw.ledger)
        if e.event.action == "DISMISS" and e.event.message_id == copy.message_id
    ]
    assert len(dismissals) == 1
    assert attention.counts(gw.ledger, ["336"]) == {}


def test_a_retention_run_given_a_limit_dismisses_no_more_earlier_erasures_than_it(
    tmp_path: Path,
) -> None:
    # ``cafgw retention apply --limit 1``: one of the two left listed, the next run the other.
    clock = Clock.starting_now()
    gw = region(tmp_path, clock)
    dudley_shared(gw)
    _refused_for_good(gw)  # one dead letter, and the consent change below another
    with gw.ledger.transaction() as conn:
        [second] = [
            r
            for r in gw.ledger.find(authority="336", direction=Direction.INBOUND, limit=100)
            if r.message_type == "ConsentChange"
        ]
        gw.ledger.transition_from([second.pk], (second.status,), Status.DEAD_LETTERED, "4xx", conn)
    _erased_as_before(gw, "R-12")
    assert attention.counts(gw.ledger, ["336"]) == {("336", attention.Need.DEAD_LETTERED): 2}
    assert service.apply(gw, "336", "test", limit=1).state.get(purge.DISMISSED) == 1
    assert attention.counts(gw.ledger, ["336"]) == {("336", attention.Need.DEAD_LETTERED): 1}
    assert service.apply(gw, "336", "test").state.get(purge.DISMISSED) == 1
    assert attention.counts(gw.ledger, ["336"]) == {}


def test_a_dead_letter_changed_by_a_clock_ahead_is_still_dismissed_when_erased(
    tmp_path: Path,
) -> None:
    # A replica whose clock is a little ahead dead-lettered it: a dismissal dated
    # before that change would never hold (found by a review).
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    copy = _refused_for_good(gw)
    with gw.ledger.transaction() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.id == copy.pk)
            .values(updated_at=gw.clock() + timedelta(seconds=2))
        )
    erasure.erase_child(gw, "336", "J332412014017", ground=GROUND, reference="R-10", actor="DPO")
    assert attention.counts(gw.ledger, ["336"]) == {}


def test_a_record_replayed_while_its_erasure_was_planned_is_withdrawn_not_handed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Planned dead-lettered, replayed before the erasure: due for its handover again,
    # it was left so, and went to the local system with no body (found by a review).
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    copy = _refused_for_good(gw)
    planned = erasure.plan_erasure

    def then_replayed(*args: Any, **kwargs: Any) -> erasure.ErasurePlan:
        todo = planned(*args, **kwargs)
        dead_letters.replay(gw, "336", copy.message_id, "admin")
        return todo

    monkeypatch.setattr(erasure, "plan_erasure", then_replayed)
    erasure.erase_child(gw, "336", "J332412014017", ground=GROUND, reference="REQ-9", actor="DPO")
    (after,) = gw.ledger.find(message_id=copy.message_id, authority="336")
    assert after.status == Status.WITHDRAWN, after.reason
    assert copy.message_id not in {m.message_id for m in gw.ledger.inbox("336")}


def _parked(gw: Gateway, bodies: Sequence[bytes], message_id: str) -> MemoryTransport:
    """``bodies`` parked in 336's lane, each published under ``message_id``."""
    transport = gw.transport
    assert isinstance(transport, MemoryTransport)
    key = routing_key("336", "Assessment", "332")
    transport.publish([OutgoingMessage(key, b, message_id, {}) for b in bodies])
    stop = threading.Event()

    def park(batch: Sequence[Delivery]) -> list[Disposition]:
        stop.set()
        return [Disposition(Verdict.PARK, "poison for the test") for _ in batch]

    transport.consume([Topology().inbox("336")], park, stop)
    assert len(transport.peek_parked("336")) == len(bodies)
    return transport


def _siobhans_assessment(gw: Gateway) -> bytes:
    copy = next(
        r
        for r in gw.ledger.find(authority="332", direction=Direction.OUTBOUND, limit=100)
        if r.recipient == "336" and r.message_type == "Assessment"
    )
    body = gw.ledger.body_of("332", Direction.OUTBOUND, copy.message_id)
    assert body is not None
    return body


def test_erasure_deletes_a_parked_dead_letter_about_the_child(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    transport = _parked(gw, [_siobhans_assessment(gw)], "parked-copy-1")
    report = erasure.erase_child(
        gw, "336", "J332412014017", ground=GROUND, reference="REQ-8", actor="DPO"
    )
    assert report.parked == 1
    assert transport.peek_parked("336") == []


def test_erasure_leaves_another_parked_message_published_under_the_same_id(
    tmp_path: Path,
) -> None:
    # A parked message's id is whatever its publisher set: another sender's parked
    # message (not about the child) may carry it too, and went with the child's.
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    other = b"<Envelope>another sender's message, about another child</Envelope>"
    transport = _parked(gw, [_siobhans_assessment(gw), other], "parked-copy-1")
    report = erasure.erase_child(
        gw, "336", "J332412014017", ground=GROUND, reference="REQ-8", actor="DPO"
    )
    assert report.parked == 1
    assert [d.body for d in transport.peek_parked("336")] == [other]


def test_the_consent_register_keeps_the_decision_but_not_whose_it_was(tmp_path: Path) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    key = erasure.plan_erasure(gw, "336", "J332412014017", "REQ-9").child_key
    with gw.ledger.transaction() as conn:
        before = consent_store.entries(conn, "336", key)
    assert before and before[0].consent.given_by
    erasure.erase_child(gw, "336", "J332412014017", ground=GROUND, reference="REQ-9", actor="DPO")
    with gw.ledger.transaction() as conn:
        assert consent_store.entries(conn, "336", key) == []
        kept = consent_store.entries(conn, "336", "erased")
    assert [e.action for e in kept] == [e.action for e in before]
    assert all(e.consent.given_by is None and e.case_ref is None for e in kept)


@pytest.mark.parametrize("reference", ["Mary O'Neill", "J332412014017 request", ""])
def test_an_erasure_reference_that_could_be_a_name_is_refused(
    tmp_path: Path, reference: str
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    with pytest.raises(PolicyRefusal) as refused:
        erasure.erase_child(
            gw, "336", "J332412014017", ground=GROUND, reference=reference, actor="DPO"
        )
    assert refused.value.rule == "erasure.reference"


def test_erasure_at_the_sender_asks_each_recipient_to_erase_by_signed_notice(
    tmp_path: Path,
) -> None:
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    report = erasure.erase_child(
        gw, "332", "J332412014017", ground=GROUND, reference="DPO/2026/120", actor="DPO"
    )
    assert report.state.get("erasure_notices") == 2
    pump(gw)
    with gw.ledger.transaction() as conn:
        sent = outcomes.outcomes_of(conn, "332")
    assert sorted((o.kind, o.recipient, o.outcome) for o in sent) == [
        ("ERASURE", "333", "DELIVERED"),
        ("ERASURE", "336", "DELIVERED"),
    ]
    for code in ("333", "336"):
        [notice] = [
            r
            for r in gw.ledger.find(authority=code, direction=Direction.INBOUND, limit=200)
            if r.message_type == "ErasureRequest"
        ]
        env = envelope_of(gw, notice)
        assert env is not None and isinstance(env.body, ErasureRequest)
        assert env.body.request_ref == "DPO/2026/120"
        sent_there = {
            r.message_id
            for r in gw.ledger.find(authority=code, direction=Direction.INBOUND, limit=200)
            if r.sender == "332" and r.legal_basis in ("CONSENT", "SAFEGUARDING")
        }
        assert {m.message_id for m in env.body.messages} == sent_there
    gw.ledger.engine.dispose()
    # Each recipient erased its copies on receipt, and its receipt said so.
    assert {o.action for o in sent} == {"ERASED"}
    assert found_in(tmp_path, SIOBHAN) == {}


def test_erasing_a_child_reads_and_changes_each_table_by_the_child_or_its_threads(
    tmp_path: Path,
) -> None:
    # Issue 14: the child's threads, its messages of either direction, its threads'
    # existence-index entries and disputes, and the held queries' rows as received were
    # each found among every row of the authority (migration 0010 and the reads).
    gw = region(tmp_path, Clock.starting_now())
    dudley_shared(gw)
    with captured(gw.ledger.engine) as statements:
        report = erasure.erase_child(
            gw, "336", "J332412014017", ground=GROUND, reference="DPO/2026/118", actor="DPO"
        )
    assert report.messages >= 3 and report.state.get("case_threads") == 1
    assert set(found_in(tmp_path, JAYDEN)) == set(JAYDEN)  # another child's stay
    found = plans(gw.ledger.engine, statements, ("SELECT", "UPDATE", "DELETE"))
    # Which erased children messages still name: by the child's index, not every
    # message of the authority (``ix_messages_inbox (authority=?)``).
    (plan,) = [p for sql, p in found.items() if "GROUP BY messages.child_key" in sql]
    assert "ix_messages_child (direction=? AND authority=? AND child_key=?)" in plan, plan
    for table in ("messages", "case_threads", "existence_index", "disputes", "existence_held"):
        assert any(f"FROM {table} " in sql for sql in found), table  # each was read
    for sql, plan in found.items():
        if sql.startswith("SELECT audit_log.seq"):
            continue  # the chain's last entry: read backwards from the end, one row
        if "WHERE existence_held.authority = ? AND (existence_held.hashes" in sql:
            # Held queries naming an erased child's hashes (kept in one text column):
            # every one still holding them, few, each gone at its retention period.
            continue
        assert not unbounded(plan), f"{sql}\n{plan}"
