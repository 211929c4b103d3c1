"""Existence queries: keyed hashes only; exactly match=false, or the coordinator's contact."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from policy_support import WOLVERHAMPTON, envelope_of, memory_gateway, pump, submit

from gateway.errors import ConfigError, PolicyRefusal
from gateway.ledger.status import Direction, Status
from gateway.model import Child, Identifier, Notification, Safeguarding
from gateway.policy import existence
from gateway.services import coordination

pytestmark = pytest.mark.timeout(120)

KACPER = Child(
    "Kacper",
    "Nowak",
    date(2012, 7, 9),
    identifiers=(Identifier("UPN", "J336203317005"), Identifier("NHS", "9990000042")),
)
STRANGER = Child(
    "Ada", "Lovelace", date(2013, 12, 10), identifiers=(Identifier("UPN", "A123456789012"),)
)


def _answer(gw: object, authority: str, query_id: str) -> Notification:
    from gateway.context import Gateway  # noqa: PLC0415

    assert isinstance(gw, Gateway)
    (reply,) = [
        r
        for r in gw.ledger.find(authority=authority, direction=Direction.INBOUND, limit=200)
        if (e := envelope_of(gw, r)) is not None and e.header.in_reply_to == query_id
    ]
    env = envelope_of(gw, reply)
    assert env is not None and isinstance(env.body, Notification)
    assert env.header.legal_basis.value == "NO_PERSONAL_DATA"
    return env.body


def test_a_query_for_an_unknown_child_is_answered_with_exactly_match_false(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), "ehm.json")
    sent = coordination.ask_existence(
        gw, "335", "336", STRANGER, Safeguarding("Duty manager", "risk")
    )
    pump(gw)
    answer = _answer(gw, "335", sent.message_id)
    assert [(d.name, d.value) for d in answer.details] == [("match", "false")]
    assert answer.summary == "match=false"
    assert answer.case_ref is None and answer.child is None and answer.language is None


def test_a_matching_query_gets_the_holding_coordinators_contact_and_nothing_else(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path)
    submit(gw, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), "ehm.json")
    sent = coordination.ask_existence(
        gw, "335", "336", KACPER, Safeguarding("Duty manager", "risk")
    )
    pump(gw)
    answer = _answer(gw, "335", sent.message_id)
    coordinator = gw.settings.directory.get("336").coordinator
    assert [(d.name, d.value) for d in answer.details] == [
        ("match", "true"),
        ("coordinator", coordinator.name),
        ("coordinator_email", coordinator.email),
    ]
    assert answer.case_ref is None and answer.child is None


def test_the_query_carries_keyed_hashes_not_identifiers(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    sent = coordination.ask_existence(
        gw, "335", "336", KACPER, Safeguarding("Duty manager", "risk")
    )
    data = gw.ledger.body_of("335", Direction.OUTBOUND, sent.message_id)
    assert data is not None
    for value in ("J336203317005", "9990000042", "Kacper", "Nowak", "2012-07-09"):
        assert value.encode() not in data
    key = existence.read_key(gw.settings.policy.existence_key_file)
    for digest in existence.keyed_hashes(key, KACPER):
        assert digest.encode() in data


def test_a_query_without_consent_for_the_check_is_refused_and_recorded(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    with pytest.raises(PolicyRefusal) as refused:
        coordination.ask_existence(gw, "335", "336", KACPER)
    assert refused.value.rule == "consent.existence-check"
    (row,) = [
        r for r in gw.ledger.find(authority="335", limit=10) if r.purpose == "EXISTENCE_CHECK"
    ]
    assert row.status == Status.REJECTED and "consent.existence-check" in (row.reason or "")


def test_a_query_covered_by_consent_for_the_named_authority_is_sent(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    # EHM-77120's consent covers sharing across the border with Walsall (335).
    submit(gw, "336", "wolverhampton-json", WOLVERHAMPTON.read_bytes(), "ehm.json")
    sent = coordination.ask_existence(gw, "336", "335", KACPER)
    (row,) = gw.ledger.find(message_id=sent.message_id, authority="336")
    assert (row.status, row.legal_basis) == (Status.SIGNED, "CONSENT")
    with pytest.raises(PolicyRefusal):
        coordination.ask_existence(gw, "336", "334", KACPER)  # Solihull is not named


def test_the_regional_key_must_be_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    assert existence.create_key(path)
    assert not existence.create_key(path)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        existence.read_key(path)
    with pytest.raises(ConfigError, match="missing"):
        existence.read_key(tmp_path / "absent.key")
