"""The sender is what the broker guarantees and the signature proves, never a header.

Issue 13, item 2: the receiver took the routing key from a header the
publisher set (``x-cafgw-routing-key``) and the parking reason from another
(``x-cafgw-reason``). Here it takes the key the broker delivered (checked
whatever its shape), the publishing account the broker validated
(``user_id``), and the signed sender, and quarantines any disagreement with
its reason. Each case goes through the real receiving pipeline
(``handle_batch``) with the corpus's genuine Dudley -> Wolverhampton message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.context import Gateway
from gateway.ledger.status import Direction, Status
from gateway.services.receiving import handle_batch
from gateway.transport.accounts import account_name
from gateway.transport.base import Delivery, Verdict
from gateway.transport.provenance import Provenance
from gateway.transport.retry import (
    PUBLISHER_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
    copy_headers,
    parked_reason,
)
from gateway.transport.topology import Topology
from tests.unit.corpus_gateway import opened_corpus_gateway

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "tests" / "data" / "attacks" / "00-good.xml").read_bytes()  # 332 -> 336
KEY = "336.Assessment.332"
RELAY = "cafgw-relay"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    with opened_corpus_gateway(tmp_path) as gw:
        yield gw


def _received(gw: Gateway, routing_key: str, user_id: str | None) -> tuple[Status, str]:
    delivery = Delivery(Topology().inbox("336"), routing_key, GOOD, None, {}, 0, 1, user_id)
    (disposition,) = handle_batch(gw, [delivery])
    assert disposition.verdict == Verdict.ACK
    (record,) = gw.ledger.find(authority="336", direction=Direction.INBOUND)
    return record.status, record.reason or ""


def test_dudleys_own_account_on_this_vhost_may_publish_dudleys_message(gateway: Gateway) -> None:
    assert _received(gateway, KEY, account_name("332", "/")) == (Status.VERIFIED, "")


def test_this_gateways_own_account_may_publish_for_the_authorities_it_carries(
    gateway: Gateway,
) -> None:
    # broker.url's user (guest here): one account for a gateway that hosts several.
    assert _received(gateway, KEY, "guest")[0] == Status.VERIFIED


def test_a_message_without_user_id_is_quarantined_as_a_forged_publisher(gateway: Gateway) -> None:
    status, reason = _received(gateway, KEY, None)
    assert status == Status.QUARANTINED
    assert "no user_id" in reason and "forged publisher" in reason


def test_dudleys_message_published_by_sandwells_account_is_quarantined(gateway: Gateway) -> None:
    sandwell = account_name("335", "/")
    status, reason = _received(gateway, KEY, sandwell)
    assert status == Status.QUARANTINED
    assert f"published by broker user {sandwell!r}" in reason
    assert "may not publish for 332" in reason


def test_dudleys_account_on_another_vhost_is_not_dudleys_account_here(gateway: Gateway) -> None:
    status, reason = _received(gateway, KEY, account_name("332", "another-region"))
    assert status == Status.QUARANTINED
    assert "forged publisher" in reason


@pytest.mark.parametrize("routing_key", ["336.332", "336", "336.Assessment.332.x", "332.336"])
def test_a_routing_key_of_any_other_shape_is_quarantined(
    gateway: Gateway, routing_key: str
) -> None:
    status, reason = _received(gateway, routing_key, "guest")
    assert status == Status.QUARANTINED
    assert f"routing key {routing_key!r}" in reason and "forged routing" in reason


PROVENANCE = Provenance(
    relays=frozenset({RELAY}), dead_letter_exchanges=frozenset({"caf.requeue", "caf.parking"})
)


def test_a_routing_key_header_set_by_an_authority_account_is_not_believed() -> None:
    spoofed = {ROUTING_KEY_HEADER: "336.Assessment.335", PUBLISHER_HEADER: "cafgw-x-335"}
    origin = PROVENANCE.origin("caf.exchange", "336.Assessment.332", "cafgw-x-332", spoofed)
    assert origin.routing_key == "336.Assessment.332"
    assert origin.user_id == "cafgw-x-332"
    assert origin.headers == {}


def test_a_copy_the_relay_made_carries_the_originals_key_and_publisher() -> None:
    headers = copy_headers({}, "336.Assessment.332", {}, "cafgw-x-332")
    origin = PROVENANCE.origin("caf.requeue", "caf.inbox.336", RELAY, headers)
    assert (origin.routing_key, origin.user_id) == ("336.Assessment.332", "cafgw-x-332")
    # A copy of a message that named no publisher still names none (not the relay).
    unnamed = copy_headers({}, "336.Assessment.332", {}, None)
    assert PROVENANCE.origin("caf.requeue", "caf.inbox.336", RELAY, unnamed).user_id is None


def test_a_message_dead_lettered_by_the_broker_keeps_the_key_it_was_published_with() -> None:
    deaths = [
        {"queue": "caf.inbox.336", "reason": "delivery_limit", "routing-keys": [KEY]},
        {"queue": "caf.inbox.336", "reason": "forged", "routing-keys": ["336.Assessment.335"]},
    ]
    origin = PROVENANCE.origin("caf.parking", "caf.parking.336", "cafgw-x-332", {"x-death": deaths})
    assert origin.routing_key == KEY


def test_a_parking_reason_written_by_a_publisher_is_never_shown() -> None:
    planted = {REASON_HEADER: "Parked: call 0800 000 000", "x-first-death-reason": "call us"}
    origin = PROVENANCE.origin("caf.parking", "caf.parking.336", "cafgw-x-332", planted)
    assert parked_reason(origin.headers) == "unknown"
    ours = PROVENANCE.origin("caf.parking", "caf.parking.336", RELAY, {REASON_HEADER: "schema"})
    assert parked_reason(ours.headers) == "schema"


# A member that holds another's signed message before it is delivered (a copy it was
# shown, a regional copy) delivers it first by its own route or account. Its refusal
# is recorded as the delivery's, not the signer's: the genuine delivery of the same
# bytes is judged on its own, and not quarantined as a repeat of the forged one.
FORGED = {
    "forged routing": ("336.Assessment.335", account_name("335", "/")),
    "forged publisher": (KEY, account_name("335", "/")),
}


def _rows(gw: Gateway) -> dict[str, tuple[Status, str]]:
    rows = gw.ledger.find(authority="336", direction=Direction.INBOUND)
    return {r.sender: (r.status, r.reason or "") for r in rows}


@pytest.mark.parametrize("forgery", sorted(FORGED))
def test_a_forged_delivery_of_dudleys_message_leaves_the_genuine_delivery_to_be_accepted(
    gateway: Gateway, forgery: str
) -> None:
    key, account = FORGED[forgery]
    forged = Delivery(Topology().inbox("336"), key, GOOD, None, {}, 0, 1, account)
    genuine = Delivery(Topology().inbox("336"), KEY, GOOD, None, {}, 0, 2, account_name("332", "/"))
    assert [d.verdict for d in handle_batch(gateway, [forged])] == [Verdict.ACK]
    assert [d.verdict for d in handle_batch(gateway, [genuine])] == [Verdict.ACK]
    rows = _rows(gateway)
    assert rows["332"] == (Status.VERIFIED, "")
    # The forged delivery stays on record, naming the signer, under no sender's code.
    status, reason = rows["?"]
    assert status is Status.QUARANTINED and forgery in reason and "332" in reason


def test_a_forged_and_a_genuine_delivery_in_one_batch_are_each_judged_on_their_own(
    gateway: Gateway,
) -> None:
    key, account = FORGED["forged routing"]
    forged = Delivery(Topology().inbox("336"), key, GOOD, None, {}, 0, 1, account)
    genuine = Delivery(Topology().inbox("336"), KEY, GOOD, None, {}, 0, 2, account_name("332", "/"))
    handle_batch(gateway, [forged, genuine])
    # And a second forged copy is noted on the first one's row, not recorded again.
    handle_batch(gateway, [forged])
    rows = gateway.ledger.find(authority="336", direction=Direction.INBOUND)
    assert sorted((r.sender, r.status.value) for r in rows) == [
        ("332", "VERIFIED"),
        ("?", "QUARANTINED"),
    ]
