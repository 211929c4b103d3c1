"""What a feature is: a value the assembly is handed, never a registry it fills.

A feature (case threads, the cross-border policy registers, disputes, local
delivery) declares its tables, what received messages of each type do to its
state (appliers), the background jobs it needs and any extra queues it wants
consumed. ``gateway.context.build(settings, transport, features=[...])``
creates the tables, and the receiving pipeline and the worker run the rest.
Features get narrow interfaces (``ApplyContext``, ``Kit``), never the
whole assembled gateway, and nothing below them imports them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, MetaData

from gateway.ledger.status import Route, Status
from gateway.ledger.store import Ledger
from gateway.model import ActionTaken, Envelope, MessageType
from gateway.outbox import Outbox
from gateway.settings import Settings
from gateway.transport.base import Transport
from gateway.transport.topology import Topology


@dataclass(frozen=True)
class Received:
    """A received message that passed every check, as an applier sees it.

    ``authority`` is whose copy it is: the hosted LA whose queue it came from,
    or ``regional`` for the regional group's escalation queue. ``sender`` is
    the verified signer (the header's sender, proven by its pinned
    certificate and by the routing key the broker delivered it with).
    """

    authority: str
    route: Route
    env: Envelope
    digest: str
    body: bytes

    @property
    def sender(self) -> str:
        return self.env.header.sender

    @property
    def message_id(self) -> str:
        return self.env.header.message_id


@dataclass
class ApplyContext:
    """What an applier may use: the recording transaction, the time, the
    feature kit (settings, outbox for replies, ...), and a way to act after
    the commit."""

    conn: Connection
    now: datetime
    kit: Kit
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    # Set (``keep_from_local_system``) when the local system has nothing to be
    # told: the message is recorded in this status after VERIFIED, never handed over.
    settled: tuple[Status, str] | None = None
    # One dict for every message of the recording transaction: what a feature read
    # once for the whole batch (``gateway.lifecycle.standing.matching``).
    batch: dict[str, Any] = field(default_factory=dict)
    # Run in the recording transaction once the batch's messages have their rows
    # (``once_recorded``).
    after_record: list[Callable[[], None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.kit.settings

    @property
    def outbox(self) -> Outbox:
        return self.kit.outbox

    def later(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the transaction that recorded the message committed."""
        self.after_commit.append(action)

    def once_recorded(self, action: Callable[[], None]) -> None:
        """Run ``action`` in the recording transaction, once the message's row is in the
        ledger (before the batch's receipt is signed): e.g. erase a record as it
        arrives (a standing erasure request, ``gateway.retention.received``)."""
        self.after_record.append(action)

    def keep_from_local_system(self, reason: str) -> None:
        """Record the message as not for the local system (``WITHDRAWN`` with ``reason``):
        e.g. a recall of a record the local system never had."""
        self.settled = (Status.WITHDRAWN, reason)


# What a received message does to a feature's state, decided but not yet done.
Effect = Callable[[], None]

# An applier judges one received message against the state its feature owns,
# reading only: it raises PolicyRefusal (naming the rule) for a message its
# sender may not make, which is then quarantined with nothing changed, or
# returns the Effect that updates that state (or None when there is nothing to
# do). The pipeline runs every applier's judgement first and only then the
# effects, all in the transaction that records the message, so a refusal by
# any feature leaves every feature's state as it was.
Applier = Callable[[ApplyContext, Received], Effect | None]


@dataclass(frozen=True)
class ReceiptNote:
    """What a feature did about a received message, said in its signed receipt item
    (a recall, correction or erasure request: withdrawn, passed on, erased, ...)."""

    action: ActionTaken
    handed_over_at: datetime | None = None
    reason: str | None = None


# Asked of a new record (one that passed its checks, is no repeat and is in the
# created-at window) before any applier judges it: the reason it is withdrawn as it
# arrives, or None. A withdrawn record is recorded WITHDRAWN and restricted, no
# applier runs (nothing it says takes effect) and it is never handed over: e.g. its
# sender recalled it before it came (a standing recall, ``gateway.lifecycle``). The
# first feature to give a reason decides; what it asks ``once_recorded`` is run.
Arrival = Callable[[ApplyContext, Received], str | None]

# (authority, sender, message id) of received messages owed a receipt -> what the
# feature did about them; read in the receipt loop, after the messages were recorded.
ReceiptKey = tuple[str, str, str]
ReceiptNotes = Callable[[Connection, Sequence[ReceiptKey]], Mapping[ReceiptKey, ReceiptNote]]


class Kit(Protocol):
    """What a feature's jobs, appliers and own services may use (the assembled
    gateway provides it; a feature sees only this, never the whole gateway)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def topology(self) -> Topology: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    @property
    def hosted(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Job:
    """A step the worker runs in a loop of its own; returns the work done (0 when idle).

    Replicas of a gateway sharing a ledger run a job on one of them at a time
    (``gateway.ledger.jobs``), unless ``everywhere``: a job that claims each
    piece of its work row by row (local handover) shares it across replicas.
    A job with a ``topic`` (``gateway.wakeups``) sleeps up to ``idle_s`` when idle
    but is woken at once by a commit that announced work for that topic.
    """

    name: str
    step: Callable[[Kit], int]
    idle_s: float = 0.05
    everywhere: bool = False
    topic: str | None = None


@dataclass(frozen=True)
class Feature:
    """One feature, as a value."""

    name: str
    tables: Sequence[MetaData] = ()
    appliers: Mapping[MessageType, Applier] = field(default_factory=dict)
    jobs: Sequence[Job] = ()
    # Queues consumed besides the hosted inboxes (their messages go through the
    # same receiving pipeline), e.g. escalation queues.
    queues: Callable[[Settings, Topology], Sequence[str]] | None = None
    # What the feature's receipt items say it did (``ReceiptNote``), if anything.
    receipt_notes: ReceiptNotes | None = None
    # Asked of every new record before any applier judges it (``Arrival``).
    on_arrival: Arrival | None = None


def appliers_by_type(features: Sequence[Feature]) -> Mapping[MessageType, tuple[Applier, ...]]:
    """Every feature's appliers, grouped by message type, in the features' order."""
    found: dict[MessageType, list[Applier]] = {}
    for feature in features:
        for message_type, applier in feature.appliers.items():
            found.setdefault(message_type, []).append(applier)
    return {k: tuple(v) for k, v in found.items()}
