"""AMQPS: the TLS context every broker connection uses, built once from settings.

The broker's certificate must chain to ``broker.tls.ca_file`` and name the
URL's host (or ``server_name``); hostname checking and TLS 1.2 or later are
not optional. The client certificate and key, when given, are presented to
a broker that asks for one (RabbitMQ's ``verify_peer`` with
``fail_if_no_peer_cert``). Unreadable or mismatched files are a
``ConfigError`` at start, naming the file, never a failed connection later.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlparse

import pika

from gateway.errors import ConfigError
from gateway.settings import BrokerTls


def context(tls: BrokerTls) -> ssl.SSLContext:
    """A client TLS context trusting only ``tls.ca_file``, with the client certificate."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"broker.tls.ca_file {tls.ca_file}: {exc}") from exc
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if tls.cert_file is not None and tls.key_file is not None:
        try:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"broker.tls.cert_file {tls.cert_file} / key_file {tls.key_file}: {exc}"
            ) from exc
    return ctx


def ssl_options(url: str, tls: BrokerTls | None) -> Any:
    """pika's SSLOptions for ``url``: ours when ``tls`` is set, else pika's own (None for amqp)."""
    if tls is None:
        return None
    host = tls.server_name or urlparse(url).hostname or "localhost"
    return pika.SSLOptions(context(tls), server_hostname=host)
