"""A RabbitMQ cluster in the settings and the transport: a list of nodes, tried in turn,
and every queue a quorum queue with the configured replication factor."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pika
import pytest

from gateway.errors import BrokerUnavailableError, ConfigError, TransportError
from gateway.runtime import check_broker
from gateway.settings import BrokerSettings, load_settings
from gateway.transport import reconnect
from gateway.transport.reconnect import (
    ConnectionRefused,
    Nodes,
    ReconnectPolicy,
    nodes,
    with_reconnect,
)
from gateway.transport.retry import RetryPolicy
from gateway.transport.topology import Topology, plan

ROOT = Path(__file__).resolve().parents[2]
A = "amqp://gw:pw@10.0.0.1:5672/region"
B = "amqp://gw:pw@10.0.0.2:5672/region"
C = "amqp://gw:pw@10.0.0.3:5672/region"
QUICK = ReconnectPolicy(attempts=2, initial_s=0.01, max_s=0.01, jitter_s=0)


def test_one_broker_url_is_a_cluster_of_one_node() -> None:
    broker = BrokerSettings(url=A)
    assert broker.nodes == (A,)
    assert BrokerSettings().nodes == (BrokerSettings().url,)


def test_a_list_of_nodes_makes_the_first_one_the_broker_url() -> None:
    broker = BrokerSettings.model_validate({"urls": [A, B, C]})
    assert broker.nodes == (A, B, C)
    assert broker.url == A


def test_a_broker_url_that_is_not_the_first_node_is_refused() -> None:
    with pytest.raises(ValueError, match=r"not the first of broker\.urls"):
        BrokerSettings.model_validate({"url": B, "urls": [A, B]})


def test_nodes_with_different_accounts_or_vhosts_are_refused() -> None:
    with pytest.raises(ValueError, match="one account and vhost"):
        BrokerSettings.model_validate({"urls": [A, "amqp://other:pw@10.0.0.2:5672/region"]})
    with pytest.raises(ValueError, match="one account and vhost"):
        BrokerSettings.model_validate({"urls": [A, "amqp://gw:pw@10.0.0.2:5672/elsewhere"]})


def test_the_environment_may_list_the_nodes_separated_by_commas() -> None:
    settings = load_settings(ROOT / "config", env={"CAFGW_BROKER__URLS": f"{A},{B}"})
    assert settings.broker.nodes == (A, B)
    assert settings.broker.url == A


def test_a_replication_factor_below_one_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="replication_factor"):
        load_settings(ROOT / "config", env={"CAFGW_BROKER__REPLICATION_FACTOR": "0"})


def test_nodes_start_at_the_one_that_answered_last_and_pass_over_a_lost_one() -> None:
    found = nodes([A, B, C], QUICK)
    first, second, third = found.order()
    assert [p.host for p in found.order()] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    found.answered(second)
    assert [p.host for p in found.order()] == ["10.0.0.2", "10.0.0.3", "10.0.0.1"]
    found.lost(second)
    assert found.current is third
    found.lost(first)  # not the current one: nothing changes
    assert found.current is third


def test_a_reconnect_takes_the_first_live_node_without_backing_off() -> None:
    found = nodes([A, B, C], QUICK)
    tried: list[str] = []

    def connect(params: Any) -> str:
        tried.append(params.host)
        if params.host != "10.0.0.3":
            raise TransportError(f"{params.host}: Connection refused")
        return "connection"

    # One try (attempts=1) is enough: every node is in it.
    assert with_reconnect(connect, found, ReconnectPolicy(attempts=1)) == "connection"
    assert tried == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    tried.clear()
    with_reconnect(connect, found, QUICK)
    assert tried == ["10.0.0.3"]  # the node that answered last comes first


def test_a_cluster_where_no_node_answers_names_every_node() -> None:
    found = nodes([A, B], QUICK)

    def connect(params: Any) -> str:
        raise TransportError(f"{params.host}: Connection refused")

    with pytest.raises(BrokerUnavailableError) as caught:
        with_reconnect(connect, found, QUICK)
    text = str(caught.value)
    assert "no node of the RabbitMQ cluster answers" in text
    assert "10.0.0.1:5672" in text and "10.0.0.2:5672" in text
    assert "broker.urls" in text


def test_a_refused_login_is_not_tried_on_the_other_nodes() -> None:
    found = nodes([A, B], QUICK)
    tried: list[str] = []

    def connect(params: Any) -> str:
        tried.append(params.host)
        raise ConnectionRefused("refused the login")

    with pytest.raises(ConnectionRefused):
        with_reconnect(connect, found, QUICK)
    assert tried == ["10.0.0.1"]


def test_one_pika_parameters_object_is_still_a_broker_of_one_node() -> None:
    params = pika.URLParameters(A)
    assert Nodes.of(params).current is params
    assert with_reconnect(lambda p: p.host, params, QUICK) == "10.0.0.1"


def test_the_startup_check_passes_when_any_node_answers() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        live = listening.getsockname()[1]
        check_broker(
            [f"amqp://g:g@127.0.0.1:{dead}/v", f"amqp://g:g@127.0.0.1:{live}/v"], timeout_s=1
        )
    with pytest.raises(BrokerUnavailableError, match="no node of the RabbitMQ cluster"):
        check_broker(
            [f"amqp://g:g@127.0.0.1:{dead}/v", f"amqp://g:g@127.0.0.1:{dead}/v"], timeout_s=1
        )


def test_every_queue_of_the_plan_is_a_quorum_queue_with_the_replication_factor() -> None:
    p = plan(Topology("caf"), ["332", "336"], lambda _code: RetryPolicy(), replicas=3)
    names = {q.name for q in p.queues}
    assert {"caf.inbox.336", "caf.parking.336", "caf.retry.336.1", "caf.escalation.regional"} <= (
        names
    )
    for queue in p.queues:
        assert queue.arguments["x-queue-type"] == "quorum", queue.name
        assert queue.arguments["x-quorum-initial-group-size"] == 3, queue.name


def test_delay_queues_dead_letter_at_least_once() -> None:
    p = plan(Topology("caf"), ["336"], lambda _code: RetryPolicy())
    delay = next(q for q in p.queues if q.name == "caf.retry.336.1")
    assert delay.arguments["x-dead-letter-strategy"] == "at-least-once"
    assert delay.arguments["x-overflow"] == "reject-publish"
    assert "x-quorum-initial-group-size" not in delay.arguments  # RabbitMQ's default


def test_a_broker_url_in_the_environment_replaces_the_files_list_of_nodes(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    for name in ("authorities.yaml", "policy.yaml", "retention.yaml"):
        (config / name).write_text((ROOT / "config" / name).read_text())
    (config / "gateway.yaml").write_text(f"broker:\n  urls: [{A}, {B}]\n")
    assert load_settings(config, env={}).broker.nodes == (A, B)
    settings = load_settings(config, env={"CAFGW_BROKER__URL": C})
    assert settings.broker.nodes == (C,)


def test_the_relay_account_is_on_every_node_its_own_node_first() -> None:
    broker = BrokerSettings.model_validate(
        {"urls": [A, B, C], "relay_url": "amqp://relay-332:rp@10.0.0.2:5672/region"}
    )
    assert broker.relay_nodes == (
        "amqp://relay-332:rp@10.0.0.2:5672/region",
        "amqp://relay-332:rp@10.0.0.1:5672/region",
        "amqp://relay-332:rp@10.0.0.3:5672/region",
    )
    assert BrokerSettings(url=A).relay_nodes == ()
    assert BrokerSettings(url=A, relay_url="amqp://r:p@10.0.0.1:5672/region").relay_nodes == (
        "amqp://r:p@10.0.0.1:5672/region",
    )


def test_the_relay_connection_opens_on_the_next_node_when_its_node_is_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = BrokerSettings.model_validate(
        {"urls": [A, B, C], "relay_url": "amqp://relay-332:rp@10.0.0.1:5672/region"}
    )
    found = nodes(broker.relay_nodes, QUICK)
    tried: list[tuple[str, str]] = []

    def open_blocking(params: Any) -> str:
        tried.append((params.host, params.credentials.username))
        if params.host == "10.0.0.1":
            raise TransportError("10.0.0.1: Connection refused")
        return f"connection to {params.host}"

    monkeypatch.setattr(reconnect, "open_blocking", open_blocking)
    assert reconnect.open_first(found) == "connection to 10.0.0.2"
    assert tried == [("10.0.0.1", "relay-332"), ("10.0.0.2", "relay-332")]
    tried.clear()
    assert reconnect.open_first(found) == "connection to 10.0.0.2"
    assert tried == [("10.0.0.2", "relay-332")]  # the node that answered comes first now


def test_a_relay_connection_with_no_node_answering_names_every_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def open_blocking(params: Any) -> str:
        raise TransportError(f"{params.host}: Connection refused")

    monkeypatch.setattr(reconnect, "open_blocking", open_blocking)
    with pytest.raises(TransportError, match=r"10\.0\.0\.1.*10\.0\.0\.2"):
        reconnect.open_first(nodes([A, B], QUICK))
