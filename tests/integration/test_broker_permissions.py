"""Per-authority broker accounts on the real RabbitMQ: each LA acts only as itself.

Accounts come from ``gateway.transport.accounts.setup_accounts`` on a fresh
vhost, with user names unique to the test (RabbitMQ users are not per vhost).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
from broker_admin import create_vhost, delete_vhost
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import AMQPError, ChannelClosedByBroker

from gateway.envelope.codec import envelope_to_element
from gateway.envelope.signing import Signer
from gateway.ledger.status import Direction, Status
from gateway.transport.accounts import BrokerCredentials, remove_accounts, setup_accounts
from gateway.transport.rabbit import RabbitTransport
from gateway.transport.topology import Topology
from tests.integration.gateways import make_settings, notification_envelope, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ACCESS_REFUSED = 403


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BrokerCredentials]]:
    """Topology declared by the administrator, then accounts for 332 and 336.

    Module-scoped: every rabbitmqctl call takes seconds, and these tests only read.
    """
    tmp_path = tmp_path_factory.mktemp("accounts")
    name = f"cafgw-test-{uuid.uuid4().hex[:12]}"
    create_vhost(name)
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    try:
        url = f"amqp://guest:guest@127.0.0.1:5672/{name}"
        settings = make_settings(tmp_path, ("332", "336"), f"sqlite:///{tmp_path / 'l.db'}", url)
        transport = RabbitTransport.from_settings(settings)
        transport.declare(("332", "336"))
        transport.close()
        yield setup_accounts(name, ["332", "336"], tmp_path / "secrets", user_prefix=prefix)
    finally:
        remove_accounts(["332", "336"], user_prefix=prefix)
        delete_vhost(name)


def _channel(creds: BrokerCredentials) -> tuple[pika.BlockingConnection, BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(creds.url()))
    channel = connection.channel()
    channel.confirm_delivery()
    return connection, channel


def _refused(action: Callable[[BlockingChannel], object], creds: BrokerCredentials) -> int:
    """Run ``action`` on a fresh channel; the AMQP reply code it was refused with."""
    connection, channel = _channel(creds)
    try:
        action(channel)
    except ChannelClosedByBroker as exc:
        return int(exc.reply_code)
    finally:
        if connection.is_open:
            connection.close()
    return 0


def _publish(routing_key: str) -> Callable[[BlockingChannel], object]:
    def act(channel: BlockingChannel) -> None:
        channel.basic_publish(
            "caf.exchange",
            routing_key,
            b"<Envelope/>",
            pika.BasicProperties(delivery_mode=2),
            mandatory=True,
        )

    return act


def test_dudley_may_publish_as_itself_and_read_its_own_inbox(
    accounts: dict[str, BrokerCredentials],
) -> None:
    # The control: the refusals below are about whom, not about a broken account.
    assert _refused(_publish("336.Notification.332"), accounts["332"]) == 0
    assert _refused(lambda ch: ch.basic_get(Topology().inbox("332")), accounts["332"]) == 0


def test_dudley_cannot_consume_wolverhamptons_inbox(
    accounts: dict[str, BrokerCredentials],
) -> None:
    queue = Topology().inbox("336")
    assert _refused(lambda ch: ch.basic_get(queue), accounts["332"]) == ACCESS_REFUSED
    assert (
        _refused(lambda ch: ch.basic_consume(queue, lambda *a: None), accounts["332"])
        == ACCESS_REFUSED
    )


def test_dudley_cannot_declare_or_bind_queues(accounts: dict[str, BrokerCredentials]) -> None:
    dudley = accounts["332"]
    assert _refused(lambda ch: ch.queue_declare("snoop.332"), dudley) == ACCESS_REFUSED
    assert _refused(lambda ch: ch.queue_declare(Topology().inbox("336") + ".copy"), dudley) == (
        ACCESS_REFUSED
    )
    # Binding its own queue to everything addressed to Wolverhampton would leak 336's mail.
    bind = lambda ch: ch.queue_bind(Topology().inbox("332"), "caf.exchange", "336.#")  # noqa: E731
    assert _refused(bind, dudley) == ACCESS_REFUSED
    assert _refused(lambda ch: ch.exchange_declare("evil", "fanout"), dudley) == ACCESS_REFUSED


@pytest.mark.parametrize("routing_key", ["336.Notification.333", "336.Notification.336"])
def test_dudley_cannot_publish_a_routing_key_naming_another_sender(
    accounts: dict[str, BrokerCredentials], routing_key: str
) -> None:
    assert _refused(_publish(routing_key), accounts["332"]) == ACCESS_REFUSED


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
