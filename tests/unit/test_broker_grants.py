"""What each broker account may publish and read, as ``cafgw broker setup`` grants it
(RabbitMQ's permission and topic-permission regular expressions, read as the broker
reads them: ``re.search``). The real broker applies the same grants in
tests/integration/test_broker_permissions.py."""

from __future__ import annotations

import re

import pytest

from gateway.transport.accounts import RELAY, grants_for, relay_of
from gateway.transport.topology import Topology

T = Topology()
LANE_KEYS = {
    code: [
        T.inbox(code),
        T.escalation(code),
        T.parking(code),
        f"caf.parking.escalation.{code}",
        f"caf.retry.{code}.1",
        f"caf.retry.escalation.{code}.3",
    ]
    for code in ("332", "336", "regional")
}


def _may_publish(code: str, key: str, *, regional_host: bool = False) -> bool:
    grants = grants_for(code, regional_host=regional_host)
    topic = grants.topic_write.get(T.relay_exchange)
    return (
        re.search(grants.write, T.relay_exchange) is not None
        and topic is not None
        and re.search(topic, key) is not None
    )


def test_an_authoritys_relay_publishes_only_keys_of_its_own_lanes() -> None:
    assert all(_may_publish(relay_of("336"), k) for k in LANE_KEYS["336"])
    assert not any(_may_publish(relay_of("336"), k) for k in LANE_KEYS["332"])
    assert not any(_may_publish(relay_of("336"), k) for k in LANE_KEYS["regional"])


def test_the_regional_hosts_relay_also_serves_the_regional_lane() -> None:
    relay = relay_of("332")
    assert all(_may_publish(relay, k, regional_host=True) for k in LANE_KEYS["regional"])
    assert not any(_may_publish(relay, k, regional_host=True) for k in LANE_KEYS["336"])


def test_the_shared_relay_publishes_every_lanes_keys_and_nothing_else() -> None:
    assert all(_may_publish(RELAY, k) for keys in LANE_KEYS.values() for k in keys)
    assert not _may_publish(RELAY, "336.Notification.332")  # not a queue's name


@pytest.mark.parametrize("code", ["336", relay_of("336"), RELAY, "regional"])
def test_nobody_writes_parking_or_requeue_and_no_relay_the_topic_exchanges(code: str) -> None:
    write = grants_for(code).write
    for exchange in (T.parking_exchange, T.requeue_exchange):
        assert re.search(write, exchange) is None, (code, exchange)
    if code.startswith(RELAY):
        for exchange in (T.exchange, T.escalation_exchange):
            assert re.search(write, exchange) is None, (code, exchange)
