"""The transport contract: moves bytes and reports outcomes, nothing more.

Two implementations: ``rabbit.RabbitTransport`` (pika, the real broker) and
``memory.MemoryTransport`` (in-process, for unit tests). Transport never
decides who may see what; that is policy.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


def routing_key(recipient: str, message_type: str, sender: str) -> str:
    """``<recipient>.<message type>.<sender>`` (DESIGN.md, Transport)."""
    return f"{recipient}.{message_type}.{sender}"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to publish, persistent and mandatory."""

    routing_key: str
    body: bytes
    message_id: str
    headers: Mapping[str, str] = field(default_factory=dict)
    exchange: str | None = None  # None: the main exchange (caf.exchange)


class PublishOutcome(StrEnum):
    CONFIRMED = "CONFIRMED"  # the broker took responsibility (ack)
    RETURNED = "RETURNED"  # mandatory: no queue was bound for the routing key
    NACKED = "NACKED"  # the broker refused it; transient, publish again
    FAILED = "FAILED"  # connection lost before a confirm; publish again


@dataclass(frozen=True)
class PublishResult:
    message_id: str
    outcome: PublishOutcome
    reason: str | None = None


@dataclass(frozen=True)
class Delivery:
    """One message taken from a queue, not yet settled."""

    queue: str
    routing_key: str
    body: bytes
    message_id: str | None
    headers: Mapping[str, object]
    delivery_count: int  # 0 on first delivery; counted by the broker
    tag: int
    # The broker account that published it, as the broker validated it (the
    # ``user_id`` property; for a retry copy, the original's, as the relay
    # recorded it). None: the publisher did not say. ``routing_key`` is the
    # key the publisher used (``transport.provenance``), never a header's word.
    user_id: str | None = None


class Verdict(StrEnum):
    ACK = "ACK"  # recorded durably; remove from the queue
    RETRY = "RETRY"  # transient failure; broker retries with backoff
    PARK = "PARK"  # permanent failure or budget spent; to the parking queue


@dataclass(frozen=True)
class InboxState:
    """What any user of the broker can see of an authority's inbox (a passive declare)."""

    exists: bool
    waiting: int = 0
    """Messages ready in the queue (not counting those delivered and not yet acked)."""
    consumers: int = 0
    retrying: int | None = 0
    """Messages in its retry delay queues: each failed there for a moment (or waits for
    another message, as a correction for its original) and goes back into the inbox
    after its delay, until its retries are spent. None: the broker would not say."""


@dataclass(frozen=True)
class Disposition:
    verdict: Verdict
    reason: str | None = None


BatchHandler = Callable[[Sequence[Delivery]], Sequence[Disposition]]
# Called by a consumer with nothing to hand over, before it waits for deliveries
# (the receiving pipeline settles the receipts whose confirms have come in).
IdleHook = Callable[[], None]


class PendingPublish(Protocol):
    """A publish under way: the messages are sent, their confirms not yet awaited."""

    @property
    def done(self) -> bool:
        """Every message has its outcome: ``results()`` returns without waiting."""

    @property
    def overdue(self) -> bool:
        """The confirm timeout has passed: ``results()`` gives up what is unconfirmed
        (FAILED) at once."""

    def results(self) -> list[PublishResult]:
        """Wait for the confirms, up to the timeout the publish started with; one result
        per message, same order."""


@dataclass(frozen=True)
class Settled:
    """A publish whose outcomes were known when it returned."""

    outcomes: tuple[PublishResult, ...]
    done: bool = True
    overdue: bool = False

    def results(self) -> list[PublishResult]:
        return list(self.outcomes)


class Transport(Protocol):
    """What services need from a message broker."""

    def declare(self, hosted: Sequence[str]) -> None:
        """Declare exchanges and the queues of the hosted authorities (idempotent)."""

    def connect_publisher(self) -> bool:
        """Open the publishing connection unless it is open; True when it had to.

        Opening may take a while (another node, backoff after a loss); raises
        ``BrokerUnavailableError`` when no node answers.
        """

    def publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> list[PublishResult]:
        """Publish with confirms pipelined; one result per message, same order.

        ``open_only``: never open the publishing connection nor wait for another
        caller opening it: with none open now, every message is FAILED at once
        (for callers that must not block, such as the consumer's thread).
        """

    def start_publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> PendingPublish:
        """``publish``, returning once the messages are sent: the caller goes on with
        other work and takes the outcomes later (``PendingPublish.results``)."""

    def consume(
        self,
        queues: Sequence[str],
        handler: BatchHandler,
        stop: threading.Event,
        idle: IdleHook | None = None,
    ) -> None:
        """Deliver batches to ``handler`` until ``stop`` is set; settle by its verdicts.

        ``idle`` is called, on the consuming thread, whenever there is nothing
        to hand over, before waiting for more.

        RETRY re-queues through the broker's delay queues with exponential
        backoff; after the retry budget (or the quorum queue's delivery
        limit) the message is parked with its reason.
        """

    def peek_parked(self, code: str, limit: int = 100) -> list[Delivery]:
        """The first ``limit`` messages parked for authority ``code``, left in place.

        ``retry.parked_reason(delivery.headers)`` says why each was parked.
        """

    def inbox_states(self, codes: Sequence[str]) -> dict[str, InboxState]:
        """How many messages wait in each authority's inbox and in its retry delay
        queues, and how many consume it.

        Needs no permission on those queues. Raises ``TransportError`` (or
        ``BrokerUnavailableError``) when the broker cannot tell.
        """

    def parked_with(self, code: str, message_id: str) -> list[Delivery]:
        """Every message parked for ``code`` under ``message_id``, however deep in the
        queue (``peek_parked`` stops at its limit), left in place."""

    def replay_parked(
        self, code: str, message_id: str | None = None, digest: str | None = None
    ) -> int:
        """Move parked messages of ``code`` (all, or one id) back to its inbox; how many.

        ``digest``: only the copies whose ``parked_key`` is ``(message_id, digest)``. The
        id alone is whatever the publisher set: another sender's parked message may carry
        it too."""

    def discard_parked(self, code: str, copies: Collection[tuple[str, str]]) -> int:
        """Delete the parked messages of ``code`` named by ``(message id, digest of the
        body)`` (``parked_key``; erasure); how many went. The id alone is whatever the
        publisher set: another sender's parked message may carry it too."""

    def close(self) -> None: ...


def parked_key(message_id: str | None, body: bytes) -> tuple[str, str]:
    """What names one parked message for ``discard_parked``: its id and its body's
    SHA-256 (hex), as the receiver's ledger keeps a message's digest."""
    return message_id or "?", hashlib.sha256(body).hexdigest()


def named(message_id: str | None, body: bytes, wanted_id: str | None, digest: str | None) -> bool:
    """Whether a parked message is one a replay names: any (no id), any under the id, or
    the copy whose ``parked_key`` is the id and ``digest``."""
    if wanted_id is None:
        return True
    if digest is None:
        return message_id == wanted_id
    return parked_key(message_id, body) == (wanted_id, digest)
