"""Per-authority broker accounts on the real RabbitMQ: each LA acts only as itself.

Accounts come from ``gateway.transport.accounts.setup_accounts`` on a fresh
vhost, with user names unique to the test (RabbitMQ users are not per vhost).
Issue 13, item 2: authority accounts cannot write the relay, parking or
requeue exchanges (an authority's relay account writes copies into its own
lanes only, through the relay exchange), and a gateway running on
per-authority accounts quarantines what a header, a foreign account or a
key of another shape claims.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pika
import pytest
from pika.exceptions import AMQPError

from gateway.envelope.codec import envelope_to_element
from gateway.envelope.signing import Signer
from gateway.ledger.status import Direction, Status
from gateway.settings import BrokerSettings
from gateway.transport.accounts import BrokerCredentials, relay_of
from gateway.transport.base import Delivery, Disposition, Verdict
from gateway.transport.rabbit import RabbitTransport
from gateway.transport.retry import (
    ATTEMPT_HEADER,
    PUBLISHER_HEADER,
    ROUTING_KEY_HEADER,
    RetryPolicy,
    parked_reason,
)
from gateway.transport.topology import Topology
from tests.integration.broker_region import (
    ACCESS_REFUSED,
    Action,
    Region,
    authority_settings,
    publish,
    refused_code,
    send,
    signed,
)
from tests.integration.gateways import make_settings, notification_envelope, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def accounts(region: Region) -> dict[str, BrokerCredentials]:
    return region.accounts


def _publish(routing_key: str) -> Action:
    return publish("caf.exchange", routing_key, mandatory=True)


def test_dudley_may_publish_as_itself_and_read_its_own_inbox(
    accounts: dict[str, BrokerCredentials],
) -> None:
    # The control: the refusals below are about whom, not about a broken account.
    assert refused_code(_publish("336.Notification.332"), accounts["332"]) == 0
    assert refused_code(lambda ch: ch.basic_get(Topology().inbox("332")), accounts["332"]) == 0


def test_dudley_cannot_consume_wolverhamptons_inbox(
    accounts: dict[str, BrokerCredentials],
) -> None:
    queue = Topology().inbox("336")
    assert refused_code(lambda ch: ch.basic_get(queue), accounts["332"]) == ACCESS_REFUSED
    assert (
        refused_code(lambda ch: ch.basic_consume(queue, lambda *a: None), accounts["332"])
        == ACCESS_REFUSED
    )


def test_dudley_cannot_declare_or_bind_queues(accounts: dict[str, BrokerCredentials]) -> None:
    dudley = accounts["332"]
    assert refused_code(lambda ch: ch.queue_declare("snoop.332"), dudley) == ACCESS_REFUSED
    assert refused_code(lambda ch: ch.queue_declare(Topology().inbox("336") + ".copy"), dudley) == (
        ACCESS_REFUSED
    )
    # Binding its own queue to everything addressed to Wolverhampton would leak 336's mail.
    bind = lambda ch: ch.queue_bind(Topology().inbox("332"), "caf.exchange", "336.#")  # noqa: E731
    assert refused_code(bind, dudley) == ACCESS_REFUSED
    assert refused_code(lambda ch: ch.exchange_declare("evil", "fanout"), dudley) == ACCESS_REFUSED


@pytest.mark.parametrize("routing_key", ["336.Notification.333", "336.Notification.336"])
def test_dudley_cannot_publish_a_routing_key_naming_another_sender(
    accounts: dict[str, BrokerCredentials], routing_key: str
) -> None:
    assert refused_code(_publish(routing_key), accounts["332"]) == ACCESS_REFUSED


def test_broker_passwords_are_not_shown_by_the_credentials(
    accounts: dict[str, BrokerCredentials],
) -> None:
    assert accounts["332"].password not in repr(accounts["332"])
    assert accounts["332"].password != accounts["336"].password


def test_a_message_put_straight_onto_another_authoritys_queue_is_quarantined(
    tmp_path: Path, vhost: str
) -> None:
    # An operator with broad rights (guest) bypasses the exchange: a message
    # Dudley signed for Sandwell lands in Wolverhampton's inbox, its routing
    # key naming 336 as recipient. The signed header, not the queue, decides.
    settings = make_settings(tmp_path, ("336",), f"sqlite:///{tmp_path / 'l.db'}", vhost)
    env = notification_envelope("332", "333")
    signer = Signer.from_files(
        settings.keys_dir / "332" / "key.pem", settings.keys_dir / "332" / "cert.pem"
    )
    data = signer.sign(envelope_to_element(env))
    with running(settings) as gw:
        connection = pika.BlockingConnection(pika.URLParameters(vhost))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                "",
                Topology().inbox("336"),
                data,
                pika.BasicProperties(delivery_mode=2, message_id=env.header.message_id),
                mandatory=True,
            )
        except AMQPError:
            raise
        finally:
            connection.close()

        def quarantined() -> list[object]:
            return [
                r
                for r in gw.ledger.find(
                    message_id=env.header.message_id, direction=Direction.INBOUND
                )
                if r.status == Status.QUARANTINED
            ]

        wait_for(lambda: bool(quarantined()), what="quarantine")
        (record,) = quarantined()
        assert "delivered to the inbox of 336" in (record.reason or "")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("exchange", "routing_key"),
    [
        ("caf.relay", "caf.retry.336.1"),  # would reach Wolverhampton's inbox after the TTL
        ("caf.relay", "caf.parking.336"),  # a "parked" message with the attacker's reason
        ("caf.parking", "caf.parking.336"),
        ("caf.requeue", "caf.inbox.336"),
        ("caf.relay", "caf.retry.332.1"),  # not even its own lanes: copies are the relay's
    ],
)
def test_an_authority_account_cannot_publish_into_retry_parking_or_requeue(
    accounts: dict[str, BrokerCredentials], exchange: str, routing_key: str
) -> None:
    assert refused_code(publish(exchange, routing_key), accounts["332"]) == ACCESS_REFUSED
    assert refused_code(publish(exchange, routing_key), accounts["336"]) == ACCESS_REFUSED


def test_an_authoritys_relay_copies_into_its_own_lanes_only(
    accounts: dict[str, BrokerCredentials],
) -> None:
    relay = accounts[relay_of("336")]
    assert refused_code(publish("caf.relay", "caf.parking.336"), relay) == 0
    for key in ("caf.parking.332", "caf.retry.332.1", "caf.inbox.332", "caf.escalation.332"):
        assert refused_code(publish("caf.relay", key), relay) == ACCESS_REFUSED, key
    # Nobody but the broker writes parking and requeue, the relay neither.
    assert refused_code(publish("caf.parking", "caf.parking.336"), relay) == ACCESS_REFUSED
    assert refused_code(publish("caf.requeue", "caf.inbox.336"), relay) == ACCESS_REFUSED
    assert refused_code(_publish("336.Notification.332"), relay) == ACCESS_REFUSED
    assert refused_code(lambda ch: ch.basic_get(Topology().inbox("336")), relay) == ACCESS_REFUSED
    assert refused_code(lambda ch: ch.basic_get("caf.parking.332"), relay) == ACCESS_REFUSED


def test_a_gateway_on_authority_accounts_quarantines_every_forged_origin_with_its_reason(
    tmp_path: Path, region: Region
) -> None:
    """Wolverhampton's gateway runs as its own account, copies as the relay."""
    guest = region.guest
    settings = authority_settings(tmp_path, region, "336")
    dudley = region.accounts["332"]
    genuine = signed(settings, "332")
    # Dudley's account relays a Sandwell-signed message with a header naming Sandwell.
    spoofed = signed(settings, "335")
    # guest (any key, any exchange) is neither Dudley's account nor this gateway's.
    foreign = signed(settings, "332")
    unnamed = signed(settings, "332")
    two_part = signed(settings, "332")
    expected = {
        genuine[0]: (Status.VERIFIED, ""),
        spoofed[0]: (Status.QUARANTINED, "routing key '336.Notification.332'"),
        foreign[0]: (Status.QUARANTINED, "published by broker user 'guest'"),
        unnamed[0]: (Status.QUARANTINED, "no user_id"),
        two_part[0]: (Status.QUARANTINED, "routing key '336.332'"),
    }
    with running(settings) as gw:
        send(dudley.url(), "336.Notification.332", genuine[1], genuine[0], dudley.username)
        send(
            dudley.url(),
            "336.Notification.332",
            spoofed[1],
            spoofed[0],
            dudley.username,
            {ROUTING_KEY_HEADER: "336.Notification.335", PUBLISHER_HEADER: ""},
        )
        send(guest, "336.Notification.332", foreign[1], foreign[0], "guest")
        send(guest, "336.Notification.332", unnamed[1], unnamed[0], None)
        send(guest, "336.332", two_part[1], two_part[0], "guest")

        def outcomes() -> dict[str, tuple[Status, str]]:
            return {
                r.message_id: (r.status, r.reason or "")
                for r in gw.ledger.find(authority="336", direction=Direction.INBOUND)
                if r.status in (Status.VERIFIED, Status.QUARANTINED)
                or r.status.value.startswith("DELIVERED")
            }

        # Other tests of the module leave messages in this inbox: wait for ours.
        wait_for(lambda: set(expected) <= set(outcomes()), timeout_s=45, what="every decision")
        seen = outcomes()
    for message_id, (status, reason) in expected.items():
        got_status, got_reason = seen[message_id]
        if status is Status.VERIFIED:
            assert got_status is not Status.QUARANTINED, got_reason
        else:
            assert (got_status, reason in got_reason) == (status, True), got_reason


def test_a_retry_copy_goes_through_the_relay_and_keeps_the_senders_key_and_account(
    region: Region,
) -> None:
    """The consumer runs as Wolverhampton's account, which may not write caf.retry."""
    broker = BrokerSettings(
        url=region.url("336"),
        relay_url=region.url(relay_of("336")),
        user_prefix=region.user_prefix,
        declare_topology=False,
    )
    transport = RabbitTransport(broker, retry=RetryPolicy(budget=1, backoff_s=(1,)))
    dudley = region.accounts["332"]
    send(dudley.url(), "336.Notification.332", b"<Envelope/>", "m-retry", dudley.username)
    seen: list[Delivery] = []
    stop = threading.Event()

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        out = []
        for delivery in batch:
            if delivery.message_id != "m-retry":  # left by other tests of the module
                out.append(Disposition(Verdict.ACK))
                continue
            seen.append(delivery)
            out.append(Disposition(Verdict.RETRY if len(seen) < 2 else Verdict.ACK))
        if len(seen) >= 2:
            stop.set()
        return out

    consumer = threading.Thread(
        target=transport.consume, args=([Topology().inbox("336")], handler, stop)
    )
    consumer.start()
    consumer.join(timeout=30)
    stop.set()
    consumer.join(timeout=10)
    transport.close()
    first, again = seen[:2]
    assert (first.routing_key, first.user_id) == ("336.Notification.332", dudley.username)
    assert (again.routing_key, again.user_id) == ("336.Notification.332", dudley.username)
    assert again.headers[ATTEMPT_HEADER] == 1


def test_a_message_parked_and_replayed_through_the_relay_keeps_its_key_account_and_reason(
    region: Region,
) -> None:
    """Parking, peeking and replaying as the relay, for a gateway on Wolverhampton's account."""
    broker = BrokerSettings(
        url=region.url("336"),
        relay_url=region.url(relay_of("336")),
        user_prefix=region.user_prefix,
        declare_topology=False,
    )
    transport = RabbitTransport(broker, retry=RetryPolicy(budget=0, backoff_s=()))
    dudley = region.accounts["332"]
    send(dudley.url(), "336.Notification.332", b"<Envelope/>", "m-park", dudley.username)
    seen: list[Delivery] = []
    stop = threading.Event()

    def handler(batch: Sequence[Delivery]) -> list[Disposition]:
        out = []
        for delivery in batch:
            mine = delivery.message_id == "m-park"
            if mine:
                seen.append(delivery)
            parking = mine and len(seen) == 1
            out.append(Disposition(Verdict.PARK, "schema: test") if parking else ack_only)
        if len(seen) >= 2:
            stop.set()
        return out

    ack_only = Disposition(Verdict.ACK)
    consume = threading.Thread(
        target=transport.consume, args=([Topology().inbox("336")], handler, stop)
    )
    consume.start()
    try:
        wait_for(lambda: any(p.message_id == "m-park" for p in transport.peek_parked("336")))
        (parked,) = [p for p in transport.peek_parked("336") if p.message_id == "m-park"]
        assert (parked.routing_key, parked.user_id) == ("336.Notification.332", dudley.username)
        assert parked_reason(parked.headers) == "schema: test"
        assert transport.replay_parked("336", "m-park") == 1
        consume.join(timeout=30)
    finally:
        stop.set()
        consume.join(timeout=10)
        transport.close()
    again = seen[1]
    assert (again.routing_key, again.user_id) == ("336.Notification.332", dudley.username)
