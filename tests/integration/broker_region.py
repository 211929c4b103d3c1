"""A vhost of a test's own with per-authority broker accounts, and what an account
can try on it.

``region`` (tests/integration/conftest.py) declares the topology as the
administrator, then makes accounts for Dudley (332), Wolverhampton (336),
and each one's relay with ``setup_accounts`` (rabbitmqctl takes seconds a
call: the shared relay's grants are tests/unit/test_broker_grants.py's), user
names unique to the module (RabbitMQ users are not per vhost). ``refused``
runs one broker action as an account and says whether the broker refused
it; ``authority_settings`` is a gateway that connects as its authority's own
account and copies as that authority's relay.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pika
from broker_admin import create_vhost, delete_vhost
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import ChannelClosedByBroker

from gateway.envelope.codec import envelope_to_element
from gateway.envelope.signing import Signer
from gateway.settings import Settings
from gateway.transport.accounts import (
    BrokerCredentials,
    relay_of,
    remove_accounts,
    setup_accounts,
)
from gateway.transport.rabbit import RabbitTransport
from tests.integration.gateways import make_settings, notification_envelope

ACCESS_REFUSED = 403
CODES = ("332", "333", "336", relay_of("332"), relay_of("336"))


@dataclass(frozen=True)
class Region:
    """A vhost with the topology declared and per-authority accounts on it."""

    vhost: str
    user_prefix: str
    accounts: dict[str, BrokerCredentials]

    def url(self, code: str) -> str:
        return self.accounts[code].url()

    @property
    def guest(self) -> str:
        """An operator's URL on this vhost: any exchange, any key, no relay."""
        return f"amqp://guest:guest@127.0.0.1:5672/{self.vhost}"


@contextmanager
def made_region(tmp_path: Path) -> Iterator[Region]:
    """Topology declared by the administrator, then accounts for 332, 333 and 336 and
    the relays of 332 and 336; all removed afterwards."""
    name = f"cafgw-test-{uuid.uuid4().hex[:12]}"
    create_vhost(name)
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    try:
        url = f"amqp://guest:guest@127.0.0.1:5672/{name}"
        settings = make_settings(tmp_path, ("332", "336"), f"sqlite:///{tmp_path / 'l.db'}", url)
        transport = RabbitTransport.from_settings(settings)
        transport.declare(("332", "336"))
        transport.close()
        made = setup_accounts(name, list(CODES), tmp_path / "secrets", user_prefix=prefix)
        yield Region(name, prefix, made)
    finally:
        remove_accounts(name, list(CODES), user_prefix=prefix)
        delete_vhost(name)


def authority_settings(tmp_path: Path, region: Region, code: str) -> Settings:
    """A gateway hosting ``code`` on its own account, copying as ``code``'s relay; it
    declares nothing (the administrator did) and reads no regional queue."""
    base = make_settings(tmp_path, (code,), f"sqlite:///{tmp_path / 'l.db'}", region.url(code))
    broker = base.broker.model_copy(
        update={
            "relay_url": region.url(relay_of(code)),
            "user_prefix": region.user_prefix,
            "declare_topology": False,
            "management_url": "",
        }
    )
    disputes = base.disputes.model_copy(update={"consume_regional": False})
    return base.model_copy(update={"broker": broker, "disputes": disputes})


Action = Callable[[BlockingChannel], object]


def refused(action: Action, creds: BrokerCredentials | str) -> tuple[int, str]:
    """Run ``action`` on a fresh channel as ``creds`` (or an amqp URL): the AMQP reply
    code and text it was refused with, ``(0, "")`` when the broker let it through."""
    url = creds if isinstance(creds, str) else creds.url()
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    try:
        action(channel)
    except ChannelClosedByBroker as exc:
        return int(exc.reply_code), str(exc.reply_text)
    finally:
        if connection.is_open:
            connection.close()
    return 0, ""


def refused_code(action: Action, creds: BrokerCredentials | str) -> int:
    return refused(action, creds)[0]


def publish(
    exchange: str,
    routing_key: str,
    data: bytes = b"<Envelope/>",
    *,
    message_id: str | None = None,
    user_id: str | None = None,
    headers: dict[str, object] | None = None,
    mandatory: bool = False,
) -> Action:
    """The action of publishing ``data`` to ``exchange`` with ``routing_key``."""

    def act(channel: BlockingChannel) -> None:
        channel.basic_publish(
            exchange,
            routing_key,
            data,
            pika.BasicProperties(
                delivery_mode=2, message_id=message_id, user_id=user_id, headers=headers
            ),
            mandatory=mandatory,
        )

    return act


def send(
    url: str,
    routing_key: str,
    data: bytes,
    message_id: str,
    user_id: str | None,
    headers: dict[str, object] | None = None,
    exchange: str = "caf.exchange",
) -> None:
    """Publish on ``exchange`` as the account of ``url``, confirmed (raises if refused)."""
    code, text = refused(
        publish(
            exchange,
            routing_key,
            data,
            message_id=message_id,
            user_id=user_id,
            headers=headers,
            mandatory=True,
        ),
        url,
    )
    assert code == 0, text


def signed(settings: Settings, sender: str, recipient: str = "336") -> tuple[str, bytes]:
    """A notification signed by ``sender`` with its key in ``settings``: (id, bytes)."""
    env = notification_envelope(sender, recipient)
    keys = settings.keys_dir / sender
    data = Signer.from_files(keys / "key.pem", keys / "cert.pem").sign(envelope_to_element(env))
    return env.header.message_id, data
