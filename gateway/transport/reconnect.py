"""Connection-level retry and the one place pika's exceptions become ours.

Connecting is retried with exponential backoff and jitter (tenacity); a
broker that still does not answer after the budget is reported as
``BrokerUnavailableError`` with what to do. Authentication and vhost access
refusals are not transient and are raised at once.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pika
import pika.exceptions
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_when_event_set,
)
from tenacity.stop import stop_base

from gateway.backoff import Backoff
from gateway.errors import BrokerUnavailableError, TransportError
from gateway.settings import BrokerTls
from gateway.transport.link import LINK, unreachable
from gateway.transport.tls import ssl_options

T = TypeVar("T")

# Everything pika raises derives from AMQPError; sockets raise OSError.
PIKA_ERRORS: tuple[type[BaseException], ...] = (pika.exceptions.AMQPError, OSError)


class ConnectionRefused(TransportError):
    """The broker answered but refused us (credentials, vhost); retrying cannot help."""


@dataclass(frozen=True)
class ReconnectPolicy:
    """Backoff for (re)connecting: ``attempts`` tries, delays doubling up to ``max_s``,
    each plus up to ``jitter_s`` at random."""

    attempts: int = 6
    initial_s: float = 0.2
    max_s: float = 5.0
    jitter_s: float = 0.5
    heartbeat_s: int = 30
    socket_timeout_s: float = 5.0

    @property
    def backoff(self) -> Backoff:
        """The waits between tries (the one ``gateway.backoff.Backoff``)."""
        return Backoff.exponential(self.initial_s, self.max_s, self.attempts)


def parameters(url: str, policy: ReconnectPolicy, tls: BrokerTls | None = None) -> Any:
    """pika connection parameters for ``url``: one attempt each, heartbeats on,
    TLS with our CA and client certificate when ``tls`` is given (``amqps://``)."""
    params = pika.URLParameters(url)
    if tls is not None:
        params.ssl_options = ssl_options(url, tls)
    params.connection_attempts = 1
    params.heartbeat = policy.heartbeat_s
    params.socket_timeout = policy.socket_timeout_s
    params.blocked_connection_timeout = 60
    return params


def where(params: Any) -> str:
    return f"{params.host}:{params.port}"


def describe(exc: BaseException) -> str:
    """A pika exception as one readable line (pika's own str() is often empty)."""
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text}"


def translate(exc: BaseException, params: Any) -> TransportError:
    """Map a pika or socket exception to the cafgw tree (call with ``raise ... from exc``)."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(
        exc,
        pika.exceptions.ProbableAuthenticationError
        | pika.exceptions.AuthenticationError
        | pika.exceptions.ProbableAccessDeniedError,
    ):
        return ConnectionRefused(
            f"RabbitMQ at {where(params)} refused the login to vhost {params.virtual_host!r} "
            f"({describe(exc)}); check the broker url's user, password and vhost permissions"
        )
    return TransportError(f"RabbitMQ at {where(params)}: {describe(exc)}")


def unavailable(params: Any, cause: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError(unreachable(params.host, int(params.port), cause_of(cause)))


def cause_of(exc: BaseException) -> str:
    """The socket error under pika's wrappers ("Connection refused"), else ``describe``."""
    seen: list[BaseException] = [exc]
    looked = 0
    while seen and looked < 20:
        found = seen.pop(0)
        looked += 1
        if isinstance(found, OSError) and found.strerror:
            return found.strerror
        if found.__cause__ is not None:
            seen.append(found.__cause__)
        seen.extend(a for a in found.args if isinstance(a, BaseException))
        # pika's connection workflow keeps the socket error in `exception`/`exceptions`.
        inner = getattr(found, "exception", None)
        if isinstance(inner, BaseException):
            seen.append(inner)
        seen.extend(getattr(found, "exceptions", None) or ())
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    return describe(root)


def with_reconnect(
    connect: Callable[[], T],
    params: Any,
    policy: ReconnectPolicy,
    stop: threading.Event | None = None,
    forever: bool = False,
) -> T:
    """Call ``connect`` until it succeeds, backing off between tries.

    ``connect`` raises TransportError for a transient failure. After the
    budget (or, when ``forever``, once ``stop`` is set) BrokerUnavailableError
    is raised; ConnectionRefused is raised at once.
    """
    stop_rule: stop_base = stop_after_attempt(policy.attempts)
    if stop is not None:
        stopped = stop_when_event_set(stop)
        stop_rule = stopped if forever else stop_rule | stopped

    def pause(seconds: float) -> None:
        # Waiting on the stop event lets a consumer that is told to stop give up at once.
        if stop is None:
            time.sleep(seconds)
        else:
            stop.wait(seconds)

    backoff = policy.backoff

    def wait(state: RetryCallState) -> float:
        return backoff.wait_s(state.attempt_number) + random.uniform(0, policy.jitter_s)  # noqa: S311

    retrying = Retrying(
        stop=stop_rule,
        wait=wait,
        retry=retry_if_exception_type(TransportError)
        & retry_if_not_exception_type(ConnectionRefused),
        reraise=True,
        sleep=pause,
    )
    here = f"{where(params)} (vhost {params.virtual_host!r})"

    def attempt() -> T:
        try:
            found = connect()
        except TransportError as exc:
            LINK.failed(here, cause_of(exc))
            raise
        LINK.succeeded(here)
        return found

    try:
        return retrying(attempt)
    except ConnectionRefused:
        raise
    except TransportError as exc:
        raise unavailable(params, exc) from exc


def open_blocking(params: Any) -> Any:
    """One try at a BlockingConnection; TransportError when it fails."""
    try:
        return pika.BlockingConnection(params)
    except PIKA_ERRORS as exc:
        raise translate(exc, params) from exc
