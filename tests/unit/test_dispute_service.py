"""Disputes on one gateway hosting both parties, on the in-memory transport,
with the clock moved by hand."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from support.sql import captured, plans

from gateway.context import Gateway
from gateway.disputes import escalations, handover, service
from gateway.disputes.escalations import EscalationStatus
from gateway.disputes.service import DisputeView
from gateway.errors import NotFoundError, PolicyRefusal
from gateway.ledger.status import Direction, Status
from gateway.model import DisputeAction, DisputeStage
from gateway.services import outbound
from tests.dispute_helpers import Clock, drain, memory_gateway, request

pytestmark = pytest.mark.timeout(60)

DUDLEY = Path(__file__).resolve().parents[1] / "data" / "dudley-332" / "caf-register-2026-09.csv"


def test_a_raised_dispute_reaches_the_other_party_with_the_same_history(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    raised = service.raise_dispute(gw.kit, "332", request())
    drain(gw)
    theirs = service.get_dispute(gw.kit, "336", raised.dispute_id)
    assert theirs.stage is DisputeStage.PRACTITIONERS
    assert theirs.history == raised.history
    assert theirs.deadline == raised.deadline
    assert theirs.raised_by.line_manager.name == "Ruth Evans"
    # the counterpart's line manager defaults from authorities.yaml
    assert theirs.against.line_manager.name == "Wolverhampton Early Help Service Manager"
    (msg,) = gw.ledger.find(authority="336", direction=Direction.INBOUND, with_history=False)
    assert msg.message_type == "Dispute" and msg.status == Status.VERIFIED


def test_the_practitioner_deadline_is_ten_working_days_at_five_pm_london(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    raised = service.raise_dispute(gw.kit, "332", request())
    # raised Monday 5 Oct 2026: ten working days later is Monday 19 Oct, 17:00 BST
    assert raised.deadline == datetime(2026, 10, 19, 16, 0, tzinfo=UTC)


def test_nothing_escalates_before_the_deadline(tmp_path: Path) -> None:
    clock = Clock()
    gw = memory_gateway(tmp_path, clock=clock)
    raised = service.raise_dispute(gw.kit, "332", request())
    assert raised.deadline is not None
    assert service.escalate_due(gw.kit, raised.deadline - timedelta(seconds=1)) == 0
    assert service.get_dispute(gw.kit, "332", raised.dispute_id).stage is DisputeStage.PRACTITIONERS


def test_an_ignored_dispute_climbs_every_stage_to_both_line_managers(tmp_path: Path) -> None:
    clock = Clock()
    gw = memory_gateway(tmp_path, clock=clock)
    raised = service.raise_dispute(gw.kit, "332", request())
    drain(gw)
    stages = []
    for _ in range(3):
        view = service.get_dispute(gw.kit, "332", raised.dispute_id)
        assert view.deadline is not None
        clock.set(view.deadline)
        assert service.escalate_due(gw.kit) == 1
        drain(gw)
        stages.append(service.get_dispute(gw.kit, "332", raised.dispute_id).stage)
    assert stages == [
        DisputeStage.COORDINATORS,
        DisputeStage.REGIONAL_GROUP,
        DisputeStage.LINE_MANAGERS,
    ]
    theirs = service.get_dispute(gw.kit, "336", raised.dispute_id)
    assert theirs.stage is DisputeStage.LINE_MANAGERS
    escalated = [e for e in theirs.history if e.action is DisputeAction.ESCALATED]
    assert [e.by for e in escalated] == ["cafgw"] * 3
    # the top stage does not escalate further
    clock.advance(days=60)
    assert service.escalate_due(gw.kit) == 0
    assert service.get_dispute(gw.kit, "332", raised.dispute_id).overdue
    by_role = {
        (e.authority, e.addressee.role): e.addressee.name
        for code in ("332", "336", "regional")
        for e in escalations.for_dispute(gw.ledger, code, raised.dispute_id)
    }
    assert by_role == {
        ("332", "COORDINATOR"): "Dudley CAF Co-ordinator",
        ("336", "COORDINATOR"): "Wolverhampton CAF Co-ordinator",
        ("regional", "REGIONAL_GROUP"): "West Midlands Regional CAF Co-ordinators Group",
        ("332", "LINE_MANAGER"): "Ruth Evans",
        ("336", "LINE_MANAGER"): "Wolverhampton Early Help Service Manager",
    }


def test_without_the_regional_stage_coordinators_escalate_to_line_managers(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gw = memory_gateway(tmp_path, clock=clock, disputes={"regional_stage": False})
    raised = service.raise_dispute(gw.kit, "332", request())
    drain(gw)
    service.escalate(gw.kit, "336", raised.dispute_id, "Imran Butt", "funding panel is next week")
    drain(gw)
    view = service.escalate(gw.kit, "332", raised.dispute_id, "Karen Hale", "no answer")
    assert view.stage is DisputeStage.LINE_MANAGERS


def _escalated_to_coordinators(tmp_path: Path) -> tuple[Clock, Gateway, DisputeView]:
    """A dispute Dudley raised, escalated to the coordinators at its deadline."""
    clock = Clock()
    gw = memory_gateway(tmp_path, clock=clock)
    raised = service.raise_dispute(gw.kit, "332", request())
    assert raised.deadline is not None
    clock.set(raised.deadline)
    service.escalate_due(gw.kit)
    drain(gw)
    return clock, gw, raised


def test_resolving_at_the_coordinators_stage_stops_the_clock_and_tells_both(
    tmp_path: Path,
) -> None:
    clock, gw, raised = _escalated_to_coordinators(tmp_path)
    resolved = service.resolve(
        gw.kit,
        "336",
        raised.dispute_id,
        "Wolverhampton CAF Co-ordinator",
        "Wolverhampton funds the housing options work from November.",
        "Dudley family support worker continues the referral meanwhile.",
    )
    drain(gw)
    assert resolved.deadline is None and resolved.resolved
    clock.advance(days=365)
    assert service.escalate_due(gw.kit) == 0
    for code in ("332", "336"):
        view = service.get_dispute(gw.kit, code, raised.dispute_id)
        assert view.resolved and view.stage is DisputeStage.COORDINATORS
        assert view.outcome == "Wolverhampton funds the housing options work from November."
        assert view.interim_arrangement == (
            "Dudley family support worker continues the referral meanwhile."
        )
        kinds = {
            (e.kind, e.status) for e in escalations.for_dispute(gw.ledger, code, raised.dispute_id)
        }
        # the coordinators' escalation needs no answer any more; the resolution is news
        assert kinds == {
            ("ESCALATION", EscalationStatus.CLOSED),
            ("RESOLUTION", EscalationStatus.PENDING),
        }


def test_a_disputes_escalations_are_found_by_its_id_not_among_all_the_authoritys(
    tmp_path: Path,
) -> None:
    # Issue 14: without an index on the dispute id (migration 0010), closing a
    # resolved dispute's escalations and listing them read every escalation of the
    # authority.
    _, gw, raised = _escalated_to_coordinators(tmp_path)
    with captured(gw.ledger.engine) as statements:
        service.resolve(gw.kit, "336", raised.dispute_id, "Coordinator", "Agreed.", None)
        drain(gw)
        assert len(escalations.for_dispute(gw.ledger, "332", raised.dispute_id)) == 2
    by_dispute = {
        sql: plan
        for sql, plan in plans(gw.ledger.engine, statements).items()
        if "dispute_escalations.dispute_id = ?" in sql
    }
    assert len(by_dispute) >= 2, by_dispute  # the escalations closed, and listed
    for sql, plan in by_dispute.items():
        assert "ix_dispute_escalations_dispute (authority=? AND dispute_id=?)" in plan, (
            f"{sql}\n{plan}"
        )


def test_a_resolved_dispute_refuses_further_action(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    raised = service.raise_dispute(gw.kit, "332", request())
    service.resolve(gw.kit, "332", raised.dispute_id, "Karen Hale", "Withdrawn: agreed by phone.")
    with pytest.raises(PolicyRefusal, match=r"dispute\.resolved"):
        service.escalate(gw.kit, "332", raised.dispute_id, "Karen Hale", "second thoughts")


def test_comments_reach_the_other_party(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    raised = service.raise_dispute(gw.kit, "332", request())
    drain(gw)
    service.comment(gw.kit, "336", raised.dispute_id, "Imran Butt", "Our panel meets on Thursday.")
    drain(gw)
    mine = service.get_dispute(gw.kit, "332", raised.dispute_id)
    assert [(e.action, e.text) for e in mine.history][-1] == (
        DisputeAction.COMMENTED,
        "Our panel meets on Thursday.",
    )


def test_the_same_comment_twice_in_one_second_is_sent_to_the_other_party_once(
    tmp_path: Path,
) -> None:
    # A double click without an Idempotency-Key: the second comment is the same event
    # (the same second, person and text) and was not recorded again, but the other
    # party was sent a second signed Dispute carrying nothing new.
    gw = memory_gateway(tmp_path)
    raised = service.raise_dispute(gw.kit, "332", request())
    drain(gw)
    first = service.comment(gw.kit, "336", raised.dispute_id, "Imran Butt", "Panel on Thursday.")
    again = service.comment(gw.kit, "336", raised.dispute_id, "Imran Butt", "Panel on Thursday.")
    assert again == first
    sent = gw.ledger.find(authority="336", direction=Direction.OUTBOUND, with_history=False)
    assert [m.message_type for m in sent if m.message_type != "Receipt"] == ["Dispute"]
    drain(gw)
    mine = service.get_dispute(gw.kit, "332", raised.dispute_id)
    assert [e.action for e in mine.history] == [DisputeAction.RAISED, DisputeAction.COMMENTED]


def test_an_authority_that_is_no_party_cannot_find_the_dispute(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path, hosted=("332", "333", "336"))
    raised = service.raise_dispute(gw.kit, "332", request())
    drain(gw)
    with pytest.raises(NotFoundError):
        service.get_dispute(gw.kit, "333", raised.dispute_id)
    with pytest.raises(NotFoundError):
        service.resolve(gw.kit, "333", raised.dispute_id, "Someone", "meddling")
    assert service.list_disputes(gw.kit, ["333"]) == []


def test_a_dispute_needs_a_legal_basis_and_two_authorities(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    with pytest.raises(PolicyRefusal, match=r"dispute\.legal-basis"):
        service.raise_dispute(gw.kit, "332", request(consent_ref=None))
    with pytest.raises(PolicyRefusal, match=r"dispute\.counterpart"):
        service.raise_dispute(gw.kit, "332", request(against="332"))
    view = service.raise_dispute(gw.kit, "332", request(consent_ref=None, no_personal_data=True))
    assert view.stage is DisputeStage.PRACTITIONERS


def test_an_unacknowledged_escalation_is_resent_then_overdue(tmp_path: Path) -> None:
    clock = Clock()
    gw = memory_gateway(
        tmp_path, clock=clock, disputes={"ack_deadline_s": 3600, "resend_budget": 2}
    )
    raised = service.raise_dispute(gw.kit, "332", request())
    service.escalate(gw.kit, "332", raised.dispute_id, "Karen Hale", "urgent: school place")
    drain(gw)
    (first,) = escalations.pull(gw.ledger, "336")
    assert first.status is EscalationStatus.DELIVERED and first.attempts == 1
    attempts = []
    for _ in range(3):
        clock.advance(seconds=3601)
        handover.resend_due(gw.settings, gw.ledger, gw.clock())
        (e,) = escalations.for_dispute(gw.ledger, "336", raised.dispute_id)
        attempts.append((e.attempts, e.status))
    assert attempts == [
        (2, EscalationStatus.PENDING),
        (3, EscalationStatus.PENDING),
        (3, EscalationStatus.OVERDUE),
    ]
    (overdue,) = service.list_disputes(gw.kit, ["336"], overdue=True)
    assert overdue.dispute_id == raised.dispute_id
    assert [d.dispute_id for d in service.open_disputes(gw.kit, "336") if d.overdue] == [
        raised.dispute_id
    ]
    acked = escalations.acknowledge(
        gw.ledger, "336", first.escalation_id, "Wolverhampton coordinator", gw.clock()
    )
    assert acked is not None and acked.status is EscalationStatus.ACKNOWLEDGED
    assert service.list_disputes(gw.kit, ["336"], overdue=True) == []


def test_an_open_dispute_never_holds_the_childs_plan(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path, hosted=("332", "333", "336"))
    service.raise_dispute(gw.kit, "332", request())
    with DUDLEY.open("rb") as stream:
        report = outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)
    row1 = next(o for o in report.outcomes if o.case_ref == "DUD-2026-00417")
    assert row1.status == Status.SIGNED
    assert "336" in row1.recipients


def test_two_clocks_on_one_ledger_escalate_once(tmp_path: Path) -> None:
    clock = Clock()
    gw = memory_gateway(tmp_path, clock=clock)
    raised = service.raise_dispute(gw.kit, "332", request())
    assert raised.deadline is not None
    assert service.escalate_due(gw.kit, raised.deadline) == 1
    assert service.escalate_due(gw.kit, raised.deadline) == 0
    view = service.get_dispute(gw.kit, "332", raised.dispute_id)
    assert sum(e.action is DisputeAction.ESCALATED for e in view.history) == 1


def test_two_parties_resolving_at_once_converge_on_the_earlier_outcome(tmp_path: Path) -> None:
    clock = Clock()
    gw = memory_gateway(tmp_path, clock=clock)
    raised = service.raise_dispute(gw.kit, "332", request())
    drain(gw)
    service.resolve(gw.kit, "336", raised.dispute_id, "Imran Butt", "Wolverhampton funds it.")
    clock.advance(minutes=1)
    service.resolve(gw.kit, "332", raised.dispute_id, "Karen Hale", "Dudley funds it.")
    drain(gw)
    for code in ("332", "336"):
        view = service.get_dispute(gw.kit, code, raised.dispute_id)
        assert view.outcome == "Wolverhampton funds it."
        assert sum(e.action is DisputeAction.RESOLVED for e in view.history) == 2


def test_an_escalation_goes_through_a_file_drop_connector_where_configured(
    tmp_path: Path,
) -> None:
    import shutil  # noqa: PLC0415

    import yaml  # noqa: PLC0415

    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    drop = tmp_path / "drop-336"
    drop.mkdir()
    directory = yaml.safe_load((config / "authorities.yaml").read_text())
    directory["authorities"]["336"]["connector"] = {"kind": "file", "directory": str(drop)}
    (config / "authorities.yaml").write_text(yaml.safe_dump(directory))
    gw = memory_gateway(tmp_path, config_dir=config)
    raised = service.raise_dispute(gw.kit, "332", request())
    service.escalate(gw.kit, "332", raised.dispute_id, "Karen Hale", "no reply in a week")
    drain(gw)
    (pushed,) = escalations.for_dispute(gw.ledger, "336", raised.dispute_id)
    assert pushed.status is EscalationStatus.DELIVERED
    assert (drop / f"{pushed.escalation_id}.xml").read_bytes() == pushed.content
    (pulled,) = escalations.for_dispute(gw.ledger, "332", raised.dispute_id)
    assert pulled.status is EscalationStatus.PENDING  # Dudley pulls


def test_of_two_acknowledgements_at_once_the_first_ones_who_and_when_stay(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    raised = service.raise_dispute(gw.kit, "332", request())
    service.escalate(gw.kit, "332", raised.dispute_id, "Karen Hale", "urgent: school place")
    drain(gw)
    (escalation,) = escalations.pull(gw.ledger, "336")
    other_acked = threading.Event()

    def the_other_acknowledges_after_this_read(
        _conn: Any, _cursor: Any, statement: str, *_: Any
    ) -> None:
        if (
            statement.startswith("SELECT dispute_escalations.")
            and threading.current_thread() is threading.main_thread()
            and not other_acked.is_set()
        ):
            other_acked.set()
            other = threading.Thread(
                target=escalations.acknowledge,
                args=(gw.ledger, "336", escalation.escalation_id, "Sam Okafor", gw.clock()),
            )
            other.start()
            other.join(30)

    event.listen(gw.ledger.engine, "after_cursor_execute", the_other_acknowledges_after_this_read)
    try:
        acked = escalations.acknowledge(
            gw.ledger, "336", escalation.escalation_id, "Jo Bloggs", gw.clock()
        )
    finally:
        event.remove(
            gw.ledger.engine, "after_cursor_execute", the_other_acknowledges_after_this_read
        )
    assert other_acked.is_set()
    assert acked is not None and acked.status is EscalationStatus.ACKNOWLEDGED
    assert acked.acked_by == "Sam Okafor"
