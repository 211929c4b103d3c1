"""The consent register, consent judged at the moment of sending, withdrawal
propagation and restriction, and "it is the child's plan"."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from policy_support import (
    DUDLEY,
    WOLVERHAMPTON,
    Sent,
    envelope_of,
    memory_gateway,
    outbound_of,
    pump,
    submit,
)
from support.sql import captured, plans

from gateway.crossborder import consent_store
from gateway.crossborder.tables import metadata as policy_tables
from gateway.ledger.status import Direction, Status
from gateway.ledger.store import Ledger
from gateway.model import (
    Assessment,
    ConsentAction,
    ConsentChange,
    ConsentRecord,
    ConsentRole,
    ConsentScope,
    LegalBasis,
    Purpose,
)
from gateway.outbox import new_envelope
from gateway.policy import consent as consent_rules
from gateway.policy.sharing import covers
from gateway.services import outbound, views
from gateway.settings import PolicySettings

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2026, 10, 1, tzinfo=UTC)
PARENT_YES = ConsentRecord(
    given=True,
    given_by="Parent",
    role=ConsentRole.PARENT,
    scopes=(ConsentScope.RECORD, ConsentScope.SHARE_CROSS_BORDER),
    named_las=("336",),
)
CHILD_NO = ConsentRecord(
    given=False, given_by="Child", role=ConsentRole.CHILD, gillick_competent=True
)


def _episodes(only: str) -> dict[str, Any]:
    data = json.loads(WOLVERHAMPTON.read_text(encoding="utf-8"))
    data["episodes"] = [e for e in data["episodes"] if e["episodeId"] == only]
    return data


def _bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode("utf-8")


def _before_withdrawal() -> dict[str, Any]:
    data = _episodes("EHM-77245")
    episode = data["episodes"][0]
    episode["consent"]["withdrawn"] = []
    episode["events"] = []
    return data


def _add(conn: Any, consent: ConsentRecord, action: ConsentAction, source: str = "LOCAL") -> None:
    consent_store.add(
        conn,
        authority="332",
        child_key="k",
        case_ref="c",
        consent=consent,
        action=action,
        source=source,
        now=NOW,
    )


def test_a_gillick_competent_childs_decision_prevails_over_a_parents_and_both_are_kept(
    tmp_path: Path,
) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", schemas=[policy_tables])
    policy = PolicySettings()
    with ledger.transaction() as conn:
        _add(conn, CHILD_NO, ConsentAction.REFUSED)
        _add(conn, PARENT_YES, ConsentAction.GIVEN)
        history = consent_store.entries(conn, "332", "k")
    assert [e.consent.role for e in history] == [ConsentRole.CHILD, ConsentRole.PARENT]
    in_force = consent_rules.effective(history)
    assert in_force.entry is not None and in_force.entry.by_competent_child
    refusal = covers(in_force, policy, "332", "336", Purpose.SHARE_CROSS_BORDER)
    assert refusal is not None and refusal.rule == "consent.not-given"


def test_a_parents_withdrawal_does_not_override_a_competent_childs_consent(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", schemas=[policy_tables])
    child_yes = replace(PARENT_YES, role=ConsentRole.CHILD, gillick_competent=True)
    parent_no = replace(PARENT_YES, given=False)
    with ledger.transaction() as conn:
        _add(conn, child_yes, ConsentAction.GIVEN)
        _add(conn, parent_no, ConsentAction.WITHDRAWN)
        last = consent_rules.effective(consent_store.entries(conn, "332", "k"))
    assert covers(last, PolicySettings(), "332", "336", Purpose.SHARE_CROSS_BORDER) is None
    refusal = covers(last, PolicySettings(), "332", "333", Purpose.SHARE_CROSS_BORDER)
    assert refusal is not None and refusal.rule == "consent.recipient-not-named"


def test_the_same_decision_from_the_same_source_is_recorded_once(tmp_path: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'l.db'}", schemas=[policy_tables])
    with ledger.transaction() as conn:
        for _ in range(2):
            _add(conn, PARENT_YES, ConsentAction.GIVEN)
        assert len(consent_store.entries(conn, "332", "k")) == 1


def test_withdrawal_is_sent_to_past_recipients_who_restrict_the_childs_records(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "336", "wolverhampton-json", _bytes(_before_withdrawal()), "before.json")
    pump(gw)
    before = outbound_of(gw, "336", "EHM-77245")
    assert Sent("Assessment", "332", "CONSENT", "DELIVERED") in before
    received = gw.ledger.find(authority="332", direction=Direction.INBOUND, limit=100)
    about_child = [r for r in received if r.message_type in ("Assessment", "ConsentChange")]
    assert len(about_child) == 2 and not any(r.restricted for r in about_child)

    with captured(gw.ledger.engine) as statements:
        submit(gw, "336", "wolverhampton-json", _bytes(_episodes("EHM-77245")), "after.json")
        pump(gw)
    after = sorted(set(outbound_of(gw, "336", "EHM-77245")) - set(before))
    assert after == sorted(
        [
            Sent("Assessment", "332", "CONSENT", "HELD_LOCAL"),
            Sent("CHILD_MOVED_AREA", "332", "NO_PERSONAL_DATA", "DELIVERED"),
            Sent("CONSENT_NEEDED", "336", "NO_PERSONAL_DATA", "DELIVERED"),
            Sent("ConsentChange", "332", "CONSENT_WITHDRAWAL", "DELIVERED"),
        ]
    )
    received = {
        r.message_id: r
        for r in gw.ledger.find(
            authority="332", direction=Direction.INBOUND, limit=100, with_history=False
        )
    }
    assert all(received[r.message_id].restricted for r in about_child)
    # Found by the child's index, not by everything 336 ever sent to 332.
    (plan,) = [
        p
        for sql, p in plans(gw.ledger.engine, statements).items()
        if sql.startswith("UPDATE messages SET restricted") and "child_key" in sql
    ]
    assert "ix_messages_child (direction=? AND authority=? AND child_key=?)" in plan, plan
    inbox = gw.ledger.inbox("332")
    served = [envelope_of(gw, received[i.message_id]) for i in inbox]
    kinds = sorted(
        (e.header.message_type.value, e.header.legal_basis.value) for e in served if e is not None
    )
    assert ("ConsentChange", "CONSENT_WITHDRAWAL") in kinds
    assert all(basis != "CONSENT" or mtype == "Notification" for mtype, basis in kinds)
    assert not any(mtype == "Assessment" for mtype, _ in kinds)


def test_data_still_queued_when_consent_is_withdrawn_is_never_sent(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    first = submit(gw, "336", "wolverhampton-json", _bytes(_before_withdrawal()), "before.json")
    queued = [m for o in first.outcomes if o.kind == "record" for m in o.message_ids]
    submit(gw, "336", "wolverhampton-json", _bytes(_episodes("EHM-77245")), "after.json")
    for message_id in queued:
        (record,) = gw.ledger.find(message_id=message_id, authority="336")
        assert record.status == Status.REJECTED
        assert record.reason is not None and record.reason.startswith(
            "consent.withdrawn-before-sending"
        )
    pump(gw)
    to_dudley = [
        r
        for r in gw.ledger.find(authority="332", direction=Direction.INBOUND, limit=100)
        if r.sender == "336"
    ]
    assert {r.legal_basis for r in to_dudley} == {"NO_PERSONAL_DATA"}


def _with_extra_action(data: dict[str, Any]) -> dict[str, Any]:
    data["episodes"][0]["plan"].append(
        {
            "action": "Family group conference",
            "owner": "Lucy Grant",
            "ownerLaCode": "335",
            "due": "2026-11-30",
            "status": "NotStarted",
        }
    )
    return data


def test_a_changed_plan_without_a_consent_for_the_change_is_refused_by_the_sender(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "336", "wolverhampton-json", _bytes(_episodes("EHM-77120")), "v1.json")
    pump(gw)
    changed = submit(
        gw,
        "336",
        "wolverhampton-json",
        _bytes(_with_extra_action(_episodes("EHM-77120"))),
        "v2.json",
    )
    (record,) = [o for o in changed.outcomes if o.kind == "record"]
    assert record.status == Status.REJECTED
    assert record.reasons and all(
        r.startswith("plan.change-without-consent") for r in record.reasons
    )
    for message_id in record.message_ids:
        (row,) = gw.ledger.find(message_id=message_id, authority="336")
        assert row.status == Status.REJECTED
        assert gw.ledger.body_of("336", Direction.OUTBOUND, message_id) is None
        assert row.reason is not None and "plan.change-without-consent" in row.reason

    reconsented = _with_extra_action(_episodes("EHM-77120"))
    reconsented["episodes"][0]["consent"]["recordedAt"] = "2026-09-01T10:00:00+01:00"
    again = submit(gw, "336", "wolverhampton-json", _bytes(reconsented), "v3.json")
    (record,) = [o for o in again.outcomes if o.kind == "record"]
    assert record.status == Status.SIGNED
    pump(gw)
    for message_id in record.message_ids:
        (row,) = gw.ledger.find(message_id=message_id, authority="336")
        assert row.status == Status.DELIVERED


def test_a_received_plan_changed_without_consent_is_refused_by_the_receiver(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    report = submit(gw, "336", "wolverhampton-json", _bytes(_episodes("EHM-77120")), "v1.json")
    pump(gw)
    sent_id = next(
        m
        for o in report.outcomes
        if o.kind == "record"
        for m in o.message_ids
        if gw.ledger.find(message_id=m, authority="336")[0].message_type == "Assessment"
    )
    (sent,) = gw.ledger.find(message_id=sent_id, authority="336")
    original = envelope_of(gw, sent)
    assert original is not None
    body = original.body
    changed = replace(body, actions=body.actions[:1])  # type: ignore[type-var]
    env = gw.outbox.envelope(
        sender="336",
        recipient="335",
        body=changed,
        correlation=sent.correlation_id,
        legal_basis=original.header.legal_basis,
        purpose=original.header.purpose,
        consent_ref=original.header.consent_ref,  # the old consent: not one for the change
    )
    gw.ledger.record([gw.outbox.sign(env, case_ref="EHM-77120")])  # bypasses the sender's check
    pump(gw)
    (received,) = gw.ledger.find(
        message_id=env.header.message_id, authority="335", direction=Direction.INBOUND
    )
    assert received.status == Status.QUARANTINED
    assert received.reason is not None and "plan.change-without-consent" in received.reason
    (outcome,) = gw.ledger.find(message_id=env.header.message_id, authority="336")
    assert outcome.status == Status.REJECTED
    assert outcome.reason is not None and "plan.change-without-consent" in outcome.reason


def test_a_refusal_without_a_consent_date_is_still_recorded_in_the_register(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), DUDLEY.name)
    view = views.consent_of(gw, "332", "R332412014099")  # Dudley row 3, by UPN
    assert not view.given
    assert [e.action for e in view.history] == [ConsentAction.REFUSED]
    gillick = views.consent_of(gw, "332", "DUD-2026-00418")  # row 2, by case reference
    assert gillick.given and gillick.decided_by_child


def _held_transfer(gw: Any) -> Any:
    """EHM-77245 submitted after the withdrawal: the transfer to Dudley is held."""
    submit(gw, "336", "wolverhampton-json", _bytes(_episodes("EHM-77245")), "withdrawn.json")
    pump(gw)
    (held,) = [
        r
        for r in gw.ledger.find(authority="336", direction=Direction.OUTBOUND, limit=100)
        if r.case_ref == "EHM-77245" and r.status == Status.HELD_LOCAL and r.recipient == "332"
    ]
    return held


def _renewed_consent() -> dict[str, Any]:
    """The father gives consent again, naming Dudley, after the move."""
    renewed = _episodes("EHM-77245")
    consent = renewed["episodes"][0]["consent"]
    consent["recordedAt"] = "2026-10-01T10:00:00+01:00"
    consent["withdrawn"] = []
    renewed["episodes"][0]["events"] = [
        e for e in renewed["episodes"][0]["events"] if e["type"] != "CONSENT_WITHDRAWN"
    ]
    return renewed


def _assessments_at_dudley(gw: Any) -> list[Any]:
    return [
        r
        for r in gw.ledger.find(authority="332", direction=Direction.INBOUND, limit=200)
        if r.case_ref == "EHM-77245" and r.message_type == "Assessment"
    ]


def test_a_held_transfer_is_released_with_its_id_when_a_consent_change_covers_it(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    held = _held_transfer(gw)
    kept = envelope_of(gw, held)
    assert kept is not None and isinstance(kept.body, Assessment)
    record = _renewed_consent()["episodes"][0]["consent"]
    renewed = replace(
        kept.body.consent,
        withdrawn=(),
        recorded_at=datetime.fromisoformat(record["recordedAt"]).astimezone(UTC),
    )
    change = new_envelope(
        gw.clock,
        sender="336",
        recipient="336",
        body=ConsentChange(kept.body.case_ref, kept.body.child, ConsentAction.GIVEN, renewed),
        correlation=kept.header.correlation_id,
        legal_basis=LegalBasis.CONSENT,
        consent_ref="336/EHM-77245/consent/renewed",
        purpose=Purpose.SHARE_CROSS_BORDER,
    )
    outbound.accept_envelope(gw, "336", change)
    pump(gw)
    (released,) = gw.ledger.find(message_id=held.message_id, authority="336")
    assert [h.status for h in released.history] == [
        Status.ACCEPTED,
        Status.HELD_LOCAL,
        Status.SIGNED,
        Status.SENT,
        Status.DELIVERED,
    ]
    assert released.legal_basis == "CONSENT"
    assert "released: consent now covers 332" in (released.history[2].reason or "")
    (arrived,) = _assessments_at_dudley(gw)
    assert arrived.message_id == held.message_id
    envelope = envelope_of(gw, arrived)
    assert envelope is not None
    assert envelope.header.consent_ref == "336/EHM-77245/consent/2026-10-01T09:00:00+00:00"


def test_a_re_export_with_new_consent_sends_the_record_once_and_supersedes_the_held_copy(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    held = _held_transfer(gw)
    report = submit(gw, "336", "wolverhampton-json", _bytes(_renewed_consent()), "renewed.json")
    pump(gw)
    (superseded,) = gw.ledger.find(message_id=held.message_id, authority="336")
    assert superseded.status == Status.REJECTED
    (record,) = [o for o in report.outcomes if o.kind == "record"]
    assert record.status == Status.SIGNED and record.recipients == ("332",)
    (arrived,) = _assessments_at_dudley(gw)  # the local record reaches Dudley once
    assert arrived.message_id in record.message_ids
    assert superseded.reason is not None and superseded.reason.startswith(
        f"superseded by {arrived.message_id}"
    )
    envelope = envelope_of(gw, arrived)
    assert envelope is not None
    assert envelope.header.consent_ref == "336/EHM-77245/consent/2026-10-01T09:00:00+00:00"
