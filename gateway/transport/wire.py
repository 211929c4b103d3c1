"""Conversion between pika's frames and the contract's plain data.

pika is untyped; its objects stop here so that ``Any`` does not spread
into the rest of the transport.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from typing import Any

import pika

from gateway.transport.base import Delivery
from gateway.transport.provenance import Provenance

PERSISTENT = 2


def plain(value: Any) -> object:
    """A header value as plain Python (bytes decoded where they are UTF-8)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str | int | float | bool | datetime.datetime | decimal.Decimal):
        return value
    return None if value is None else str(value)


def to_delivery(
    queue: str, method: Any, properties: Any, body: bytes, provenance: Provenance
) -> Delivery:
    """A pika delivery (basic.deliver or basic.get-ok) as a contract Delivery.

    Its routing key and publisher are what the broker vouches for
    (``provenance``); headers of ours survive only from a relay account.
    """
    raw = properties.headers or {}
    headers = {str(k): plain(v) for k, v in raw.items()}
    user_id = None if properties.user_id is None else str(plain(properties.user_id))
    origin = provenance.origin(str(method.exchange), str(method.routing_key), user_id, headers)
    count = headers.get("x-delivery-count", 0)
    return Delivery(
        queue=queue,
        routing_key=origin.routing_key,
        body=bytes(body),
        message_id=None if properties.message_id is None else str(properties.message_id),
        headers=origin.headers,
        delivery_count=int(count) if isinstance(count, int | str) else 0,
        tag=int(method.delivery_tag),
        user_id=origin.user_id,
    )


def user_of(params: Any) -> str | None:
    """The user a connection authenticates as, for ``user_id`` (None: not a password login)."""
    username = getattr(params.credentials, "username", None)
    return username if isinstance(username, str) else None


def properties(
    message_id: str | None,
    headers: Mapping[str, object],
    expiration_ms: int | None = None,
    user_id: str | None = None,
) -> Any:
    """Persistent message properties carrying ``message_id``, ``headers`` and the
    publishing account as ``user_id`` (RabbitMQ checks it is the connection's user)."""
    return pika.BasicProperties(
        delivery_mode=PERSISTENT,
        message_id=message_id,
        headers=dict(headers) or None,
        expiration=None if expiration_ms is None else str(expiration_ms),
        user_id=user_id,
    )
