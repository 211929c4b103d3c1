"""Who governs and who is told: governing authority, routing, funding, moves,
out-of-area services, TAC invitations, child's views, evaluation."""

from __future__ import annotations

import io
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from policy_support import (
    SANDWELL,
    WOLVERHAMPTON,
    Sent,
    envelope_of,
    memory_gateway,
    outbound_of,
    pump,
    submit,
)

from adapters.base import Converted
from gateway.context import Gateway
from gateway.errors import PolicyRefusal
from gateway.ledger.status import Direction, Status
from gateway.lifecycle import sender
from gateway.model import (
    Evaluation,
    Notification,
    NotificationType,
    PractitionerView,
    RecallReason,
)
from gateway.services import coordination, outbound, views

pytestmark = pytest.mark.timeout(120)


def _episode(only: str) -> dict[str, Any]:
    data = json.loads(WOLVERHAMPTON.read_text(encoding="utf-8"))
    data["episodes"] = [e for e in data["episodes"] if e["episodeId"] == only]
    return data


def _send(gw: Gateway, data: dict[str, Any]) -> outbound.SubmitReport:
    return submit(gw, "336", "wolverhampton-json", json.dumps(data).encode(), "ehm.json")


def _notices(
    gw: Gateway, authority: str, case_ref: str, kind: NotificationType
) -> list[Notification]:
    found = []
    for r in gw.ledger.find(authority=authority, direction=Direction.OUTBOUND, limit=500):
        env = envelope_of(gw, r) if r.case_ref == case_ref else None
        if env is not None and isinstance(env.body, Notification) and env.body.type == kind:
            found.append(env.body)
    return found


def _thread(gw: Gateway, authority: str, case_ref: str) -> str:
    return next(
        r.correlation_id
        for r in gw.ledger.find(authority=authority, limit=500)
        if r.case_ref == case_ref
    )


@pytest.mark.parametrize(
    ("authority", "adapter", "path", "case_ref", "before", "after"),
    [
        ("336", "wolverhampton-json", WOLVERHAMPTON, "EHM-77120", "336", "335"),
        ("333", "sandwell-xml", SANDWELL, "FWI-553901", "333", "334"),
    ],
)
def test_the_governing_authority_switches_to_the_lead_professionals_at_the_tac_meeting(
    tmp_path: Path, authority: str, adapter: str, path: Path, case_ref: str, before: str, after: str
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, authority, adapter, path.read_bytes(), path.name)
    pump(gw)
    thread_id = _thread(gw, authority, case_ref)
    for holder in (authority, after):  # the initiating authority and the governing one agree
        case = views.case_of(gw, holder, thread_id).thread
        assert (case.initiating_la, case.governing_la) == (before, after)
    log = views.case_of(gw, authority, thread_id).thread.log
    switches = [e.detail for e in log if e.kind == "GOVERNING_AUTHORITY_CHANGED"]
    assert len(switches) == 1 and switches[0].startswith(f"from {before} to {after}")
    (changed,) = [
        n for n in _notices(gw, authority, case_ref, NotificationType.GOVERNING_AUTHORITY_CHANGED)
    ][:1]
    details = dict((d.name, d.value) for d in changed.details)
    assert (details["from_la"], details["to_la"]) == (before, after)
    assert details["child_views_recorded"] == "false"  # the samples record no views of the child


def test_the_family_notice_of_ehm_77120_is_in_polish_with_an_interpreter(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    _send(gw, _episode("EHM-77120"))
    (notice,) = _notices(gw, "336", "EHM-77120", NotificationType.FAMILY_NOTICE)
    assert notice.audience.value == "FAMILY" and notice.language == "Polish"
    assert ("interpreter_needed", "true") in [(d.name, d.value) for d in notice.details]
    assert notice.child is None and "Walsall" in notice.summary
    assert notice.summary.startswith("Specjalista prowadzący")  # from the Polish catalogue
    assert ("notice_language", "pl") in [(d.name, d.value) for d in notice.details]


def test_case_messages_route_to_the_governing_authority_even_when_not_named(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    data = _episode("EHM-77120")
    data["episodes"][0]["consent"]["sharingWith"] = []  # consent not limited to named LAs
    report = _send(gw, data)
    (record,) = [o for o in report.outcomes if o.kind == "record"]
    assert record.recipients == ("335",)
    rows = [gw.ledger.find(message_id=m, authority="336")[0] for m in record.message_ids]
    assert {(r.recipient, r.purpose) for r in rows} == {("335", "COORDINATION")}


@pytest.mark.parametrize(
    ("authority", "adapter", "path", "case_ref", "residence", "basis"),
    [
        ("336", "wolverhampton-json", WOLVERHAMPTON, "EHM-77120", "335", "CONSENT"),
        ("333", "sandwell-xml", SANDWELL, "FWI-553901", "333", "NO_PERSONAL_DATA"),
    ],
)
def test_funding_requests_go_to_where_the_child_lives(
    tmp_path: Path,
    authority: str,
    adapter: str,
    path: Path,
    case_ref: str,
    residence: str,
    basis: str,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, authority, adapter, path.read_bytes(), path.name)
    funding = [s for s in outbound_of(gw, authority, case_ref) if s.kind == "FUNDING_REQUEST"]
    assert funding == [Sent("FUNDING_REQUEST", residence, basis, "SIGNED")]


def test_a_funding_problem_is_reported_to_the_initiating_authority_only(tmp_path: Path) -> None:
    from gateway.model import LegalBasis, Purpose  # noqa: PLC0415

    gw = memory_gateway(tmp_path)
    _send(gw, _episode("EHM-77120"))
    pump(gw)
    thread_id = _thread(gw, "335", "EHM-77120")
    for recipient, refused in (("334", True), ("336", False)):
        env = gw.outbox.envelope(
            sender="335",
            recipient=recipient,
            body=Notification(
                NotificationType.FUNDING_PROBLEM,
                "EHM-77120",
                "No budget-holding lead professional fund this quarter.",
            ),
            correlation=thread_id,
            legal_basis=LegalBasis.NO_PERSONAL_DATA,
            purpose=Purpose.FUNDING_REQUEST,
        )
        if refused:
            with pytest.raises(PolicyRefusal) as err:
                outbound.accept_envelope(gw, "335", env)
            assert err.value.rule == "funding.problem-to-initiator"
        else:
            assert outbound.accept_envelope(gw, "335", env).status == Status.SIGNED


def test_a_child_who_moves_with_consent_is_transferred_with_a_review_date(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    data = _episode("EHM-77245")
    episode = data["episodes"][0]
    episode["consent"]["withdrawn"] = []
    episode["events"] = episode["events"][:1]  # moved to Dudley; consent not withdrawn
    report = _send(gw, data)
    (record,) = [o for o in report.outcomes if o.kind == "record"]
    rows = [gw.ledger.find(message_id=m, authority="336")[0] for m in record.message_ids]
    assert {(r.message_type, r.recipient, r.purpose, r.status) for r in rows} == {
        ("Assessment", "332", "CASE_TRANSFER", Status.SIGNED),
        ("ConsentChange", "332", "CASE_TRANSFER", Status.SIGNED),
    }
    (transfer,) = _notices(gw, "336", "EHM-77245", NotificationType.CASE_TRANSFER)
    review = dict((d.name, d.value) for d in transfer.details)["review_by"]
    assert review == (datetime.now(UTC).date() + timedelta(days=28)).isoformat()
    kinds = sorted(s.kind + ">" + s.recipient for s in outbound_of(gw, "336", "EHM-77245"))
    assert "CHILD_MOVED_AREA>336" in kinds and "CASE_TRANSFER>332" in kinds


def _out_of_area(gw: Gateway) -> Converted:
    (result,) = [
        r
        for r in gw.adapters.get("wolverhampton-json").read(
            io.BytesIO(json.dumps(_episode("EHM-77120")).encode()), "ehm.json"
        )
        if isinstance(r, Converted)
    ]
    actions = list(result.assessment.actions)
    actions[0] = replace(actions[0], delivery_la="335")  # Dev Mistry (336) delivering in Walsall
    return replace(result, assessment=replace(result.assessment, actions=tuple(actions)))


def test_an_out_of_area_action_without_a_prior_agreement_is_flagged_to_both_coordinators(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    outbound.submit_results(gw, "336", [_out_of_area(gw)])
    flagged = [s for s in outbound_of(gw, "336", "EHM-77120") if s.kind == "OUT_OF_AREA_SERVICE"]
    assert flagged == [
        Sent("OUT_OF_AREA_SERVICE", "335", "NO_PERSONAL_DATA", "SIGNED"),
        Sent("OUT_OF_AREA_SERVICE", "336", "NO_PERSONAL_DATA", "SIGNED"),
    ]


def test_an_out_of_area_action_with_a_prior_agreement_is_not_flagged(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    coordination.record_agreement(
        gw, "336", "Dev Mistry", "335", "Head of Pastoral Care", "Wolverhampton CAF Co-ordinator"
    )
    outbound.submit_results(gw, "336", [_out_of_area(gw)])
    assert [s for s in outbound_of(gw, "336", "EHM-77120") if s.kind == "OUT_OF_AREA_SERVICE"] == []


def test_home_area_practitioners_are_invited_to_a_tac_meeting_held_elsewhere(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    data = _episode("EHM-77120")
    upcoming = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT10:00:00+00:00")
    data["episodes"][0]["tacMeetings"].append(
        {"heldOn": upcoming, "venue": "St Edmund's Catholic Academy", "attendees": []}
    )
    _send(gw, data)
    (invite,) = _notices(gw, "336", "EHM-77120", NotificationType.TAC_INVITATION)
    assert invite.child is not None and invite.child.ethnicity is None
    invited = [s for s in outbound_of(gw, "336", "EHM-77120") if s.kind == "TAC_INVITATION"]
    assert invited == [Sent("TAC_INVITATION", "335", "CONSENT", "SIGNED")]


def test_a_tac_invitation_without_consent_to_invite_is_refused(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    data = _episode("EHM-77120")
    data["episodes"][0]["consent"]["scopes"].remove("INVITE_TO_TAC")
    upcoming = (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT10:00:00+00:00")
    data["episodes"][0]["tacMeetings"].append({"heldOn": upcoming, "attendees": []})
    report = _send(gw, data)
    invited = [s for s in outbound_of(gw, "336", "EHM-77120") if s.kind == "Notification"]
    assert invited == [Sent("Notification", "335", "CONSENT", "REJECTED")]
    reasons = [r for o in report.outcomes if o.kind == "notices" for r in o.reasons]
    assert [r.split(":")[0] for r in reasons] == ["consent.scope-not-covered"]


def test_the_lead_professional_sends_the_evaluation_to_every_coordinator_involved(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    thread_id, evaluation = _evaluation_ready(gw)
    with pytest.raises(PolicyRefusal) as refused:
        coordination.send_evaluation(gw, "336", _thread(gw, "336", "EHM-77120"), evaluation)
    assert refused.value.rule == "evaluation.not-lead-professional"
    sent = coordination.send_evaluation(gw, "335", thread_id, evaluation)
    assert sorted((s.recipient, s.status) for s in sent) == [
        ("335", Status.SIGNED),
        ("336", Status.SIGNED),
    ]
    pump(gw)
    log = views.case_of(gw, "336", thread_id).thread.log
    assert [e.counterparty for e in log if e.kind == "EVALUATION_RECEIVED"] == ["335"]


def _evaluation_ready(gw: Gateway) -> tuple[str, Evaluation]:
    """Walsall (335) leads EHM-77120 and Wolverhampton (336) is involved: the lead's
    thread and an evaluation to send."""
    _send(gw, _episode("EHM-77120"))
    pump(gw)
    evaluation = Evaluation(
        "EHM-77120",
        "Kacper says the mentor helps.",
        "Mother satisfied.",
        (PractitionerView("Lucy Grant", "335", "Good joint working."),),
        "Meetings in Walsall suited the family.",
    )
    return _thread(gw, "335", "EHM-77120"), evaluation


def _evaluations_sent(gw: Gateway) -> list[str]:
    found = gw.ledger.find(authority="335", direction=Direction.OUTBOUND, limit=500)
    return sorted(r.recipient for r in found if r.message_type == "Evaluation")


def test_the_same_evaluation_sent_twice_goes_to_each_coordinator_once(tmp_path: Path) -> None:
    """A double click, or a retry after a lost answer: the second sends nothing and
    answers with the messages the first sent."""
    gw = memory_gateway(tmp_path)
    thread_id, evaluation = _evaluation_ready(gw)
    first = coordination.send_evaluation(gw, "335", thread_id, evaluation)
    again = coordination.send_evaluation(gw, "335", thread_id, evaluation)
    assert _evaluations_sent(gw) == ["335", "336"]
    assert sorted(s.message_id for s in again) == sorted(s.message_id for s in first)
    assert {s.reason for s in again} == {
        "the same Evaluation was already sent to 335",
        "the same Evaluation was already sent to 336",
    }
    changed = replace(evaluation, family_views="Mother now asks for a second mentor.")
    coordination.send_evaluation(gw, "335", thread_id, changed)
    assert _evaluations_sent(gw) == ["335", "335", "336", "336"]
    pump(gw)
    to_336 = next(s.message_id for s in first if s.recipient == "336")
    sender.recall(gw, "335", to_336, RecallReason.OTHER, None, "Lucy Grant")
    coordination.send_evaluation(gw, "335", thread_id, evaluation)  # recalled: sent again
    assert _evaluations_sent(gw) == ["335", "335", "336", "336", "336"]


def test_two_identical_evaluations_at_once_go_to_each_coordinator_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = memory_gateway(tmp_path)
    thread_id, evaluation = _evaluation_ready(gw)
    real = type(gw.outbox).sign
    seconds: list[threading.Thread] = []
    answers: list[list[coordination.Sent]] = []

    def click_again() -> None:
        answers.append(coordination.send_evaluation(gw, "335", thread_id, evaluation))

    def paused(*args: Any, **kwargs: Any) -> Any:
        signed = real(*args, **kwargs)
        if threading.current_thread() is threading.main_thread() and not seconds:
            seconds.append(threading.Thread(target=click_again))
            seconds[0].start()
            seconds[0].join(1.0)
        return signed

    monkeypatch.setattr(type(gw.outbox), "sign", paused)
    first = coordination.send_evaluation(gw, "335", thread_id, evaluation)
    seconds[0].join(30)
    [again] = answers
    assert _evaluations_sent(gw) == ["335", "336"]
    assert sorted(s.message_id for s in again) == sorted(s.message_id for s in first)
