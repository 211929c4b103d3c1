"""Connection-level retry and the one place pika's exceptions become ours.

Connecting is retried with exponential backoff and jitter (tenacity); a
broker that still does not answer after the budget is reported as
``BrokerUnavailableError`` with what to do. Authentication and vhost access
refusals are not transient and are raised at once.

A broker is one node or a RabbitMQ cluster (``Nodes``): each try goes
through the nodes in turn, starting at the one that answered last, and
takes the first that answers; only when none does is it a failed try. So a
connection lost with its node reconnects to any live one at once, and the
backoff starts only when the whole cluster is silent.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
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


class Nodes:
    """The nodes of one broker (pika parameters each), tried in turn.

    Shared by a transport's publisher and consumers (thread-safe): the node
    that answered last is tried first, and one whose connection was lost is
    tried last, so a dead node costs at most one refused attempt.
    """

    def __init__(self, params: Sequence[Any]) -> None:
        if not params:
            raise ValueError("a broker needs at least one node")
        self._params = tuple(params)
        self._lock = threading.Lock()
        self._current = 0

    @classmethod
    def of(cls, target: Any) -> Nodes:
        """``target`` if it is a Nodes, else the one node whose parameters it is."""
        return target if isinstance(target, Nodes) else cls([target])

    def __len__(self) -> int:
        return len(self._params)

    @property
    def current(self) -> Any:
        """The parameters of the node that answered last (the first node at start)."""
        with self._lock:
            return self._params[self._current]

    def order(self) -> list[Any]:
        """Every node, the one that answered last first, then the rest in their order."""
        with self._lock:
            start = self._current
        return [self._params[(start + i) % len(self._params)] for i in range(len(self._params))]

    def answered(self, params: Any) -> None:
        """A connection to ``params`` opened: try that node first next time."""
        with self._lock:
            self._current = self._index(params, self._current)

    def lost(self, params: Any) -> None:
        """A connection to ``params`` was lost: next time start at the node after it."""
        with self._lock:
            if self._index(params, -1) == self._current:
                self._current = (self._current + 1) % len(self._params)

    def describe(self) -> str:
        return ", ".join(where(p) for p in self._params)

    def _index(self, params: Any, default: int) -> int:
        for i, known in enumerate(self._params):
            if known is params:
                return i
        return default


def nodes(urls: Sequence[str], policy: ReconnectPolicy, tls: BrokerTls | None = None) -> Nodes:
    """The nodes at ``urls`` (``BrokerSettings.nodes``), with ``parameters`` each."""
    return Nodes([parameters(url, policy, tls) for url in urls])


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


def unavailable(target: Any, cause: BaseException) -> BrokerUnavailableError:
    found = Nodes.of(target)
    if len(found) == 1:
        params = found.current
        return BrokerUnavailableError(unreachable(params.host, int(params.port), cause_of(cause)))
    return BrokerUnavailableError(
        f"no node of the RabbitMQ cluster answers ({cause}); check that the nodes run and "
        "that broker.urls in config/gateway.yaml (or CAFGW_BROKER__URLS) names them"
    )


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
    connect: Callable[[Any], T],
    target: Any,
    policy: ReconnectPolicy,
    stop: threading.Event | None = None,
    forever: bool = False,
) -> T:
    """Call ``connect(params)`` until it succeeds, backing off between tries.

    ``target`` is a ``Nodes`` (or one node's parameters): each try calls
    ``connect`` for its nodes in turn and returns the first that succeeds.
    ``connect`` raises TransportError for a transient failure. After the
    budget (or, when ``forever``, once ``stop`` is set) BrokerUnavailableError
    is raised; ConnectionRefused is raised at once.
    """
    found_nodes = Nodes.of(target)
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

    def attempt() -> T:
        failures: list[tuple[Any, TransportError]] = []
        for params in found_nodes.order():
            here = f"{where(params)} (vhost {params.virtual_host!r})"
            try:
                found = connect(params)
            except TransportError as exc:
                LINK.failed(here, cause_of(exc))
                if isinstance(exc, ConnectionRefused):
                    raise
                failures.append((params, exc))
                continue
            LINK.succeeded(here)
            found_nodes.answered(params)
            return found
        if len(failures) == 1:
            raise failures[0][1]
        raise TransportError(
            "; ".join(f"{where(p)}: {cause_of(exc)}" for p, exc in failures)
        ) from failures[-1][1]

    try:
        return retrying(attempt)
    except ConnectionRefused:
        raise
    except TransportError as exc:
        raise unavailable(found_nodes, exc) from exc


def open_first(target: Any) -> Any:
    """One try at each node of ``target`` (``Nodes`` or one node's parameters), the
    one that answered last first; the first connection that opens. A refused login
    is raised at once (another node would refuse it too)."""
    found = Nodes.of(target)
    failures: list[TransportError] = []
    for params in found.order():
        try:
            conn = open_blocking(params)
        except ConnectionRefused:
            raise
        except TransportError as exc:
            failures.append(exc)
            continue
        found.answered(params)
        return conn
    if len(failures) == 1:
        raise failures[0]
    raise TransportError("; ".join(str(f) for f in failures)) from failures[-1]


def open_blocking(params: Any) -> Any:
    """One try at a BlockingConnection; TransportError when it fails."""
    try:
        return pika.BlockingConnection(params)
    except PIKA_ERRORS as exc:
        raise translate(exc, params) from exc
