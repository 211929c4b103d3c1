"""``cafgw broker migrate-queues`` against the real broker, each test on a vhost of its own.

Each test builds the shapes an older gateway left behind (classic retry and
parking queues, inbox and escalation queues without a replication factor),
with messages in them, then runs the command.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest
from rabbit_fixtures import (  # noqa: F401 — fixtures are found by name
    Vhost,
    queue_depths,
    rabbit_vhost,
)
from typer.testing import CliRunner

from gateway.cli import app
from gateway.errors import QueueMigrationError, TransportError
from gateway.settings import Settings, load_settings
from gateway.transport import wire
from gateway.transport.accounts import relay_of, remove_accounts, setup_accounts
from gateway.transport.base import Delivery, routing_key
from gateway.transport.queue_survey import holding_name
from gateway.transport.rabbit import RabbitTransport
from gateway.transport.retry import (
    ATTEMPT_HEADER,
    PUBLISHER_HEADER,
    ROUTING_KEY_HEADER,
    parked_reason,
)
from gateway.transport.topology import Plan, QueueSpec
from tests.integration.gateways import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HOSTED = ("336",)
INBOX = "caf.inbox.336"
PARKING = "caf.parking.336"
RETRY = "caf.retry.336.1"
SENT_KEY = routing_key("336", "Notification", "332")
# Only what cannot exist on a classic queue, or was added since (replication factor).
QUORUM_ONLY = frozenset(
    {"x-queue-type", "x-quorum-initial-group-size", "x-delivery-limit", "x-dead-letter-strategy"}
)


def env_for(vhost: Vhost) -> dict[str, str]:
    """Settings of a gateway hosting 336 on this vhost, one 600 s retry step, and a
    replication factor the old queues lack."""
    return {
        "CAFGW_HOSTED": '["336"]',
        "CAFGW_BROKER__URL": vhost.url,
        "CAFGW_BROKER__REPLICATION_FACTOR": "1",
        "CAFGW_DELIVERY__RETRY_BUDGET": "1",
        "CAFGW_DELIVERY__RETRY_BACKOFF_S": "[600]",
    }


def settings_for(vhost: Vhost) -> Settings:
    return load_settings(ROOT / "config", env=env_for(vhost))


@pytest.fixture
def transport(rabbit_vhost: Vhost) -> Iterator[RabbitTransport]:  # noqa: F811
    found = RabbitTransport.from_settings(settings_for(rabbit_vhost))
    yield found
    found.close()


@dataclass(frozen=True)
class Sent:
    queue: str
    body: bytes
    message_id: str
    headers: dict[str, object]


def old_arguments(spec: QueueSpec) -> dict[str, object]:
    """The shape an older gateway declared: classic delay and parking queues, and
    quorum inbox and escalation queues without a replication factor."""
    if ".retry." in spec.name or ".parking." in spec.name:
        return {k: v for k, v in spec.arguments.items() if k not in QUORUM_ONLY | {"x-overflow"}}
    return {k: v for k, v in spec.arguments.items() if k != "x-quorum-initial-group-size"}


def connect(vhost: Vhost) -> Any:
    return pika.BlockingConnection(pika.URLParameters(vhost.url))


def build_old(vhost: Vhost, wanted: Plan) -> list[Sent]:
    """The old topology with messages in the inbox, a parking queue and a delay queue."""
    conn = connect(vhost)
    channel = conn.channel()
    channel.confirm_delivery()
    for exchange in wanted.exchanges:
        channel.exchange_declare(exchange.name, exchange_type=exchange.kind, durable=True)
    for queue in wanted.queues:
        channel.queue_declare(queue.name, durable=True, arguments=old_arguments(queue))
    for b in wanted.bindings:
        channel.queue_bind(b.queue, b.exchange, routing_key=b.key)
    sent: list[Sent] = []

    def send(
        queue: str,
        exchange: str,
        key: str,
        n: int,
        headers: dict[str, object],
        expiration: str | None = None,
    ) -> None:
        body = f"<message n='{n}' queue='{queue}'/>".encode()
        properties = pika.BasicProperties(
            delivery_mode=2,
            message_id=f"m-{queue}-{n}",
            content_type="application/xml",
            headers=headers,
            user_id="guest",
            expiration=expiration,
        )
        channel.basic_publish(exchange, key, body, properties, mandatory=True)
        sent.append(Sent(queue, body, f"m-{queue}-{n}", dict(headers)))

    for n in range(3):  # originals from 332's gateway
        send(INBOX, "caf.exchange", SENT_KEY, n, {"x-test": n, "x-cafgw-sender": "332"})
    for n in range(2):  # dead-lettered by the broker after the delivery limit
        death = {"x-death": [{"routing-keys": [SENT_KEY], "queue": INBOX, "count": 1}]}
        headers = {"x-test": n, "x-first-death-reason": "delivery_limit", **death}
        send(PARKING, "caf.parking", PARKING, n, headers)
    for n in range(2):  # retry copies by the relay, each with its own delay
        copy = {ROUTING_KEY_HEADER: SENT_KEY, PUBLISHER_HEADER: "guest", ATTEMPT_HEADER: 1}
        send(RETRY, "caf.relay", RETRY, n, {"x-test": n, **copy}, expiration="550000")
    conn.close()
    return sent


def take_all(vhost: Vhost, queue: str, transport: RabbitTransport) -> list[tuple[Delivery, Any]]:
    """Every message of ``queue`` as the gateway would read it (with its properties),
    given back afterwards."""
    conn = connect(vhost)
    channel = conn.channel()
    found = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=False)
        if method is None:
            break
        found.append(
            (wire.to_delivery(queue, method, properties, body, transport.provenance), properties)
        )
    conn.close()  # unacked: back in the queue
    return found


def test_a_dry_run_lists_every_old_queue_and_changes_nothing(
    rabbit_vhost: Vhost,  # noqa: F811
    transport: RabbitTransport,
) -> None:
    wanted = transport.wanted(HOSTED)
    build_old(rabbit_vhost, wanted)
    before = queue_depths(rabbit_vhost.name)

    result = CliRunner().invoke(
        app,
        ["broker", "migrate-queues", "--config", str(ROOT / "config")],
        env=env_for(rabbit_vhost),
    )

    assert result.exit_code == 0, result.output
    for queue in wanted.queues:
        assert queue.name in result.output
    assert "x-queue-type" in result.output
    assert "x-quorum-initial-group-size" in result.output
    assert "dry run" in result.output
    assert queue_depths(rabbit_vhost.name) == before
    assert all(s.wrong is not None for s in transport.survey_queues(HOSTED))


def test_apply_gives_every_queue_its_wanted_shape_and_keeps_every_message(
    rabbit_vhost: Vhost,  # noqa: F811
    transport: RabbitTransport,
) -> None:
    sent = build_old(rabbit_vhost, transport.wanted(HOSTED))

    result = CliRunner().invoke(
        app,
        ["broker", "migrate-queues", "--apply", "--config", str(ROOT / "config")],
        env=env_for(rabbit_vhost),
    )

    assert result.exit_code == 0, result.output
    transport.declare(HOSTED)  # the gateway's own declare: no 406 any more
    assert not any(s.needs_move for s in transport.survey_queues(HOSTED))
    assert not any(name.endswith(".migrating") for name in queue_depths(rabbit_vhost.name))
    for queue in (INBOX, PARKING, RETRY):
        expected = {s.message_id: s for s in sent if s.queue == queue}
        found = take_all(rabbit_vhost, queue, transport)
        assert sorted(d.message_id or "" for d, _ in found) == sorted(expected)
        for delivery, properties in found:
            original = expected[delivery.message_id or ""]
            assert delivery.body == original.body
            assert delivery.routing_key == SENT_KEY  # what the gateway checks the sender by
            assert delivery.user_id == "guest"
            assert properties.content_type == "application/xml"
            assert {k: delivery.headers[k] for k in original.headers} == original.headers
    retried = take_all(rabbit_vhost, RETRY, transport)
    assert {p.expiration for _, p in retried} == {"550000"}
    parked = transport.peek_parked("336")
    assert {parked_reason(d.headers) for d in parked} == {
        "delivery limit reached: the consumer never settled the message"
    }


def test_apply_refuses_while_a_consumer_reads_a_queue_to_move(
    rabbit_vhost: Vhost,  # noqa: F811
    transport: RabbitTransport,
) -> None:
    build_old(rabbit_vhost, transport.wanted(HOSTED))
    before = queue_depths(rabbit_vhost.name)
    gateway = connect(rabbit_vhost)
    gateway.channel().basic_consume(PARKING, lambda *_: None)
    try:
        with pytest.raises(QueueMigrationError, match=rf"{PARKING}.*{rabbit_vhost.name}"):
            transport.migrate_queues(HOSTED)
    finally:
        gateway.close()
    assert queue_depths(rabbit_vhost.name) == before


def test_a_run_finishes_a_move_that_stopped_half_way(
    rabbit_vhost: Vhost,  # noqa: F811
    transport: RabbitTransport,
) -> None:
    wanted = transport.wanted(HOSTED)
    sent = [s for s in build_old(rabbit_vhost, wanted) if s.queue == INBOX]
    # A run stopped after moving one inbox message out: it waits in the holding queue.
    conn = connect(rabbit_vhost)
    channel = conn.channel()
    channel.confirm_delivery()
    channel.queue_declare(holding_name(INBOX), durable=True, arguments={"x-queue-type": "quorum"})
    method, properties, body = channel.basic_get(INBOX, auto_ack=False)
    properties.headers = {
        **properties.headers,
        ROUTING_KEY_HEADER: SENT_KEY,
        PUBLISHER_HEADER: "guest",
    }
    channel.basic_publish("", holding_name(INBOX), body, properties, mandatory=True)
    channel.basic_ack(method.delivery_tag)
    conn.close()
    survey = {s.name: s for s in transport.survey_queues(HOSTED)}
    assert survey[INBOX].holding is not None and survey[INBOX].holding.ready == 1

    transport.migrate_queues(HOSTED)

    found = take_all(rabbit_vhost, INBOX, transport)
    assert sorted(d.body for d, _ in found) == sorted(s.body for s in sent)
    assert {d.routing_key for d, _ in found} == {SENT_KEY}
    assert holding_name(INBOX) not in queue_depths(rabbit_vhost.name)
    transport.declare(HOSTED)


def test_a_run_declares_a_queue_that_was_deleted_before_its_messages_came_back(
    rabbit_vhost: Vhost,  # noqa: F811
    transport: RabbitTransport,
) -> None:
    transport.declare(HOSTED)
    conn = connect(rabbit_vhost)
    channel = conn.channel()
    channel.confirm_delivery()
    channel.queue_delete(PARKING)
    channel.queue_declare(holding_name(PARKING), durable=True, arguments={"x-queue-type": "quorum"})
    headers = {ROUTING_KEY_HEADER: SENT_KEY, PUBLISHER_HEADER: "guest", "x-test": 7}
    properties = pika.BasicProperties(message_id="p-7", headers=headers, user_id="guest")
    channel.basic_publish("", holding_name(PARKING), b"<parked/>", properties, mandatory=True)
    conn.close()

    moved = transport.migrate_queues(HOSTED)

    assert [(m.queue, m.held, m.returned) for m in moved] == [(PARKING, 0, 1)]
    [parked] = transport.peek_parked("336")
    assert (parked.message_id, parked.routing_key, parked.headers["x-test"]) == ("p-7", SENT_KEY, 7)
    assert holding_name(PARKING) not in queue_depths(rabbit_vhost.name)


def test_a_survey_creates_no_queue_that_does_not_exist(
    rabbit_vhost: Vhost,  # noqa: F811
    transport: RabbitTransport,
) -> None:
    found = transport.survey_queues(HOSTED)

    assert [s.found for s in found] == [None] * len(transport.wanted(HOSTED).queues)
    assert not any(s.needs_move for s in found)
    assert queue_depths(rabbit_vhost.name) == {}


def test_messages_moved_back_by_the_gateways_relay_account_keep_their_sender(
    rabbit_vhost: Vhost,  # noqa: F811
    tmp_path: Path,
) -> None:
    user_prefix = f"t{uuid.uuid4().hex[:8]}-"
    made = setup_accounts(
        rabbit_vhost.name, [relay_of("336")], tmp_path / "secrets", user_prefix=user_prefix
    )
    env = {**env_for(rabbit_vhost), "CAFGW_BROKER__RELAY_URL": made[relay_of("336")].url()}
    transport = RabbitTransport.from_settings(load_settings(ROOT / "config", env=env))
    try:
        sent = build_old(rabbit_vhost, transport.wanted(HOSTED))

        transport.migrate_queues(HOSTED)

        for queue in (INBOX, PARKING):
            found = take_all(rabbit_vhost, queue, transport)
            assert sorted(d.body for d, _ in found) == sorted(
                s.body for s in sent if s.queue == queue
            )
            # Believed because the gateway's own relay published the copies back.
            assert {(d.routing_key, d.user_id) for d, _ in found} == {(SENT_KEY, "guest")}
    finally:
        transport.close()
        remove_accounts(rabbit_vhost.name, [relay_of("336")], user_prefix=user_prefix)


def test_a_gateway_that_meets_an_old_queue_at_start_is_told_to_run_migrate_queues(
    rabbit_vhost: Vhost,  # noqa: F811
    transport: RabbitTransport,
) -> None:
    build_old(rabbit_vhost, transport.wanted(HOSTED))

    with pytest.raises(TransportError, match=r"406.*cafgw broker migrate-queues"):
        transport.declare(HOSTED)
