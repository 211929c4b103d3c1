"""Per-authority RabbitMQ accounts on the real broker: an authority publishes
only with routing keys naming itself as sender and reads only its own queues."""

from __future__ import annotations

import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import pika
import pika.exceptions
import pytest
from broker_admin import create_vhost, delete_vhost

from gateway.errors import ConfigError
from gateway.settings import BrokerSettings
from gateway.transport.accounts import (
    BrokerCredentials,
    account_name,
    grants_for,
    remove_accounts,
    setup_accounts,
)
from gateway.transport.rabbit import RabbitTransport

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CODES = ("332", "336")
USER_PREFIX = f"cafgw-t{uuid.uuid4().hex[:8]}-"
PASSWORD = "CAFGW_BROKER_PASSWORD_332"  # an environment variable name


@pytest.fixture(scope="module")
def broker_vhost() -> Iterator[str]:
    """One vhost for the module: rabbitmqctl is slow, so accounts are made once."""
    name = f"cafgw-test-acc-{uuid.uuid4().hex[:12]}"
    create_vhost(name)
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        delete_vhost(name)


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("broker-secrets")


@pytest.fixture(scope="module")
def accounts(broker_vhost: str, secrets_dir: Path) -> Iterator[dict[str, BrokerCredentials]]:
    name = unquote(urlparse(broker_vhost).path.lstrip("/"))
    transport = RabbitTransport(BrokerSettings(url=broker_vhost))
    try:
        transport.declare(CODES)  # the administrator declares the topology
    finally:
        transport.close()
    made = setup_accounts(name, ["332", "regional"], secrets_dir, user_prefix=USER_PREFIX, env={})
    try:
        yield made
    finally:
        remove_accounts(name, ["332", "regional"], user_prefix=USER_PREFIX)


def _channel(creds: BrokerCredentials) -> pika.adapters.blocking_connection.BlockingChannel:
    conn = pika.BlockingConnection(pika.URLParameters(creds.url()))
    channel = conn.channel()
    channel.confirm_delivery()
    return channel


def _publish(creds: BrokerCredentials, exchange: str, key: str) -> None:
    channel = _channel(creds)
    try:
        channel.basic_publish(exchange, key, b"<Envelope/>", mandatory=True)
    finally:
        if channel.connection.is_open:
            channel.connection.close()


def test_an_authority_may_publish_escalations_that_name_itself_as_sender(
    accounts: dict[str, BrokerCredentials],
) -> None:
    _publish(accounts["332"], "caf.escalation", "336.Dispute.332")
    _publish(accounts["332"], "caf.escalation", "regional.Dispute.332")
    _publish(accounts["332"], "caf.exchange", "336.Assessment.332")


@pytest.mark.parametrize(
    ("exchange", "key"),
    [
        ("caf.escalation", "336.Dispute.336"),  # pretends to be Wolverhampton
        ("caf.escalation", "regional.Dispute.336"),
        ("caf.escalation", "336.Dispute.332.extra"),
        ("caf.exchange", "332.Assessment.336"),
    ],
)
def test_a_forged_routing_key_is_refused_by_the_broker(
    accounts: dict[str, BrokerCredentials], exchange: str, key: str
) -> None:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        _publish(accounts["332"], exchange, key)
    assert refused.value.reply_code == 403


def test_an_authority_reads_only_its_own_queues(accounts: dict[str, BrokerCredentials]) -> None:
    own = _channel(accounts["332"])
    try:
        own.basic_get("caf.escalation.332")
        own.basic_get("caf.inbox.332")
    finally:
        own.connection.close()
    for queue in ("caf.inbox.336", "caf.escalation.336", "caf.escalation.regional"):
        other = _channel(accounts["332"])
        try:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                other.basic_get(queue)
            assert refused.value.reply_code == 403
        finally:
            if other.connection.is_open:
                other.connection.close()
    regional = _channel(accounts["regional"])
    try:
        regional.basic_get("caf.escalation.regional")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            regional.basic_publish("caf.escalation", "332.Dispute.332", b"x")
    finally:
        if regional.connection.is_open:
            regional.connection.close()


def test_an_authority_cannot_delete_the_shared_exchange(
    accounts: dict[str, BrokerCredentials],
) -> None:
    channel = _channel(accounts["332"])
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            channel.exchange_delete("caf.escalation")
        assert refused.value.reply_code == 403
    finally:
        if channel.connection.is_open:
            channel.connection.close()


def test_passwords_stay_in_0600_files_and_survive_a_second_setup(
    broker_vhost: str, secrets_dir: Path, accounts: dict[str, BrokerCredentials]
) -> None:
    path = secrets_dir / "332.password"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == accounts["332"].password
    assert accounts["332"].password not in repr(accounts["332"])
    name = unquote(urlparse(broker_vhost).path.lstrip("/"))
    again = setup_accounts(name, ["332"], secrets_dir, user_prefix=USER_PREFIX, env={})
    assert again["332"].password == accounts["332"].password
    _publish(again["332"], "caf.escalation", "336.Dispute.332")


def test_a_password_from_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    calls: list[tuple[list[str], str | None]] = []

    def fake(args: object, stdin: str | None) -> str:
        calls.append((list(args), stdin))  # type: ignore[call-overload]
        return "[]"

    env = {"CAFGW_BROKER_PASSWORD_332": "from-env", "CAFGW_BROKER_PASSWORD_RELAY_332": "r"}
    made = setup_accounts("v", ["332", "relay-332"], tmp_path / "s", env=env, run=fake)
    assert made["332"].password == "from-env"
    assert made["relay-332"].password == "r"  # a shell can set the variable: no '-' in it
    assert not (tmp_path / "s" / "332.password").exists()
    # the password goes to rabbitmqctl on standard input, never on its command line
    assert all("from-env" not in " ".join(args) for args, _ in calls)
    assert ("from-env\n") in [stdin for _, stdin in calls]


def test_secrets_inside_a_tracked_part_of_the_repository_are_refused() -> None:
    repo = Path(__file__).resolve().parents[2]
    with pytest.raises(ConfigError, match="must not live in a tracked part"):
        setup_accounts("v", ["332"], repo / "docs" / "broker-secrets", run=lambda a, s: "[]")


def test_grants_refuse_a_code_that_is_not_an_authority() -> None:
    with pytest.raises(ConfigError, match="not an LA code"):
        grants_for("33.*")
    with pytest.raises(ConfigError, match="a relay is 'relay' or 'relay-<LA code>'"):
        grants_for("relay-.*")


def test_setup_on_a_second_vhost_leaves_the_first_vhosts_accounts_alone(tmp_path: Path) -> None:
    """Issue 13, item 10: broker users are global; each vhost's are named apart."""
    first, second = (f"cafgw-test-acc-{uuid.uuid4().hex[:12]}" for _ in range(2))
    for name in (first, second):
        create_vhost(name)
    made: list[tuple[str, BrokerCredentials]] = []
    try:
        a = setup_accounts(
            first, ["332"], tmp_path / "a", user_prefix=USER_PREFIX, env={PASSWORD: "first-pw"}
        )["332"]
        made.append((first, a))
        b = setup_accounts(
            second, ["332"], tmp_path / "b", user_prefix=USER_PREFIX, env={PASSWORD: "second-pw"}
        )["332"]
        made.append((second, b))
        assert a.username != b.username
        # The first vhost's password still logs in, and only on its own vhost.
        pika.BlockingConnection(pika.URLParameters(a.url())).close()
        pika.BlockingConnection(pika.URLParameters(b.url())).close()
        crossed = BrokerCredentials("332", a.username, a.password, second)
        with pytest.raises(pika.exceptions.AMQPError):
            pika.BlockingConnection(pika.URLParameters(crossed.url())).close()
    finally:
        for name, creds in made:
            remove_accounts(name, [creds.code], user_prefix=USER_PREFIX)
        for name in (first, second):
            delete_vhost(name)


def test_account_names_carry_a_tag_of_their_vhost() -> None:
    names = {account_name("332", v) for v in ("/", "caf", "caf-", "caf/", "CAF")}
    assert len(names) == 5  # readable parts alike, tags apart
    assert account_name("332", "west-midlands").startswith("cafgw-west-midlands-")
    assert account_name("332", "west-midlands").endswith("-332")
