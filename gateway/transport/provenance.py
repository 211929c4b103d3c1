"""Where a delivery came from, by what the broker guarantees.

RabbitMQ vouches for two things about a delivery: the routing key it was
delivered with (topic permissions checked it against the publishing account
when it was published) and ``user_id`` when it is set (the broker refuses a
publish whose ``user_id`` is not the connection's user). Every header is
whatever the publisher chose to write.

A retry copy comes back through the requeue exchange with the key
``caf.inbox.<code>`` (a replay through the relay exchange with the same
key); the key its sender used, and the account that published it, travel
in the ``x-cafgw-*`` headers. Those headers are believed only on a message
that this gateway's relay account published (authority accounts cannot
write the relay exchange; nobody but the broker writes parking or requeue).
On any other message they are dropped before anything reads them, so a
header a publisher set can neither name a routing key nor pose as a parking
reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlparse

from gateway.settings import BrokerSettings
from gateway.transport.accounts import account_name
from gateway.transport.retry import OWN_HEADER_PREFIX, PUBLISHER_HEADER, ROUTING_KEY_HEADER
from gateway.transport.topology import Topology


@dataclass(frozen=True)
class Origin:
    """A delivery's origin as far as the broker (or a relay account) vouches for it."""

    routing_key: str  # the key its publisher used, checked by the broker
    user_id: str | None  # the broker account that published it; None: not said
    headers: dict[str, object]  # x-cafgw-* only where a relay account wrote them


@dataclass(frozen=True)
class Provenance:
    """Which accounts' headers are believed, and where the broker dead-letters to."""

    relays: frozenset[str] = frozenset()  # none believed unless named
    dead_letter_exchanges: frozenset[str] = frozenset()

    def origin(
        self,
        exchange: str,
        delivered_key: str,
        user_id: str | None,
        headers: Mapping[str, object],
    ) -> Origin:
        """The origin of a message delivered from ``exchange`` with ``delivered_key``."""
        relayed = user_id is not None and user_id in self.relays
        key = headers.get(ROUTING_KEY_HEADER)
        if relayed and isinstance(key, str):
            # A copy: the relay recorded the original key and publisher ("" = none).
            publisher = headers.get(PUBLISHER_HEADER)
            by = publisher if isinstance(publisher, str) and publisher else None
            return Origin(key, by, dict(headers))
        # An original: only the broker's word counts (a relay account's own
        # message, e.g. one account for everything, keeps its headers).
        kept = (
            dict(headers)
            if relayed
            else {k: v for k, v in headers.items() if not k.startswith(OWN_HEADER_PREFIX)}
        )
        delivered = delivered_key
        if exchange in self.dead_letter_exchanges:
            # Dead-lettered by the broker (a quorum queue's delivery limit): the key
            # it arrived with is in the broker's newest x-death entry, the first.
            delivered = _newest_death_key(headers) or delivered_key
        return Origin(delivered, user_id, kept)


def _newest_death_key(headers: Mapping[str, object]) -> str | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        keys = deaths[0].get("routing-keys")
        if isinstance(keys, list) and keys:
            return str(keys[0])
    return None


def url_user(url: str) -> str:
    """The user name in an amqp(s) URL (RabbitMQ's default ``guest`` when none)."""
    return unquote(urlparse(url).username or "guest")


def url_vhost(url: str) -> str:
    """The vhost of an amqp(s) URL (``/`` when none)."""
    return unquote(urlparse(url).path[1:]) or "/"


def relay_user(broker: BrokerSettings) -> str:
    """The account that publishes this gateway's retry and park copies."""
    return url_user(broker.relay_url or broker.url)


def provenance_for(broker: BrokerSettings, topology: Topology) -> Provenance:
    """What this gateway believes about deliveries on ``broker``."""
    return Provenance(
        relays=frozenset({relay_user(broker)}),
        dead_letter_exchanges=frozenset({topology.parking_exchange, topology.requeue_exchange}),
    )


def publishers_for(broker: BrokerSettings, code: str) -> frozenset[str]:
    """Broker accounts that may publish messages signed by authority ``code``.

    Its own account on this vhost (or the one ``broker.publishers`` names),
    and this gateway's own accounts (a gateway hosting several authorities
    publishes for all of them under one account; an authority account cannot
    publish a routing key naming another sender, which the routing check
    requires anyway).
    """
    return _publishers(
        broker.url, broker.relay_url, broker.user_prefix, code, broker.publishers.get(code)
    )


@lru_cache(maxsize=256)
def _publishers(
    url: str, relay_url: str | None, user_prefix: str, code: str, named: str | None
) -> frozenset[str]:
    # Asked for every received message; parsing the URLs each time cost 6 µs.
    own = named or account_name(code, url_vhost(url), user_prefix)
    return frozenset({own, url_user(url), url_user(relay_url or url)})
