"""How the queues on the broker differ from the ones the gateway declares.

AMQP tells a client a queue's depth and consumers (a passive declare) but
not its type or arguments. So each wanted queue that exists is declared
again in the wanted shape on a channel of its own: RabbitMQ answers an
equivalent declare with declare-ok (nothing changes) and a different shape
with 406 PRECONDITION_FAILED, whose text names the first argument that
differs. A queue that does not exist is only looked at, never created.

A move that stopped half way left its messages in ``<queue>.migrating``
(``holding_name``); the survey reports those too, so that a run resumes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pika.exceptions

from gateway.transport.probe import PassiveCount, passive_on
from gateway.transport.topology import QueueSpec

PRECONDITION_FAILED = 406
HOLDING_SUFFIX = ".migrating"

_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for queue .*?: received (?P<wanted>.+?) "
    r"but current (?P<found>.+)$"
)
_OF_TYPE = re.compile(r" of type '[^']*'$")


def holding_name(queue: str) -> str:
    """The queue that holds ``queue``'s messages while it is declared anew."""
    return queue + HOLDING_SUFFIX


@dataclass(frozen=True)
class QueueSurvey:
    """One wanted queue as the broker has it."""

    spec: QueueSpec
    found: PassiveCount | None  # None: the queue does not exist
    wrong: str | None  # how its shape differs from the wanted one; None: as wanted
    holding: PassiveCount | None  # ``<queue>.migrating``; None: no such queue

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def needs_move(self) -> bool:
        """Whether ``migrate-queues --apply`` has work on this queue."""
        return self.wrong is not None or self.holding is not None

    @property
    def consumers(self) -> int:
        """Consumers on the queue and on its holding queue."""
        return sum(d.consumers for d in (self.found, self.holding) if d is not None)

    @property
    def action(self) -> str:
        """What ``--apply`` does with this queue, in a few words."""
        held = holding_name(self.name)
        if self.wrong is not None:
            return f"move messages to {held}, delete, declare as wanted, move them back"
        if self.holding is not None:
            return f"resume: declare as wanted, move the messages in {held} back"
        if self.found is None:
            return "none (declared when a gateway starts)"
        return "none"


def describe_inequivalence(reply_text: str) -> str:
    """A 406 reply's ``inequivalent arg`` as ``arg: wanted X, found Y`` (else the text)."""
    match = _INEQUIVALENT.search(reply_text)
    if match is None:
        return reply_text.removeprefix("PRECONDITION_FAILED - ")
    wanted, found = (_value(match[part]) for part in ("wanted", "found"))
    return f"{match['arg']}: wanted {wanted}, found {found}"


def _value(text: str) -> str:
    """``the value 'quorum' of type 'longstr'`` as ``'quorum'``; ``is none`` as ``none``."""
    text = text.removeprefix("is ").removeprefix("value is ").removeprefix("the value ")
    return _OF_TYPE.sub("", text)


def depth(conn: Any, name: str) -> PassiveCount | None:
    """Ready messages and consumers of queue ``name`` (None when it does not exist)."""
    return passive_on(conn, [name])[name]


def shape_difference(conn: Any, spec: QueueSpec) -> str | None:
    """How an existing queue differs from ``spec`` (None: equivalent). Declares
    ``spec``: call only for a queue that exists, or it is created."""
    channel = conn.channel()
    try:
        channel.queue_declare(spec.name, durable=True, arguments=dict(spec.arguments) or None)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == PRECONDITION_FAILED:
            return describe_inequivalence(str(exc.reply_text))
        raise
    channel.close()
    return None


def survey(conn: Any, wanted: Sequence[QueueSpec]) -> list[QueueSurvey]:
    """Each wanted queue as the broker has it, in ``wanted``'s order."""
    found: list[QueueSurvey] = []
    for spec in wanted:
        here = depth(conn, spec.name)
        wrong = None if here is None else shape_difference(conn, spec)
        found.append(QueueSurvey(spec, here, wrong, depth(conn, holding_name(spec.name))))
    return found
