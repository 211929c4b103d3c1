"""What a received, verified message does to this gateway's state.

Inbound processing records every message; then, inside the same
transaction, the applier registered for its type updates the state that
type owns (consent register, case thread, dispute, issues log). An applier
raises PolicyRefusal for a message it must not act on; the message is then
quarantined with the rule, not retried.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from gateway.context import Gateway
from gateway.cpu_budget import BUDGET
from gateway.model import Envelope, MessageType

# (gateway, receiving authority, envelope, connection of the recording transaction)
Applier = Callable[[Gateway, str, Envelope, Connection], None]

APPLIERS: dict[MessageType, list[Applier]] = {}


def register(message_type: MessageType, applier: Applier) -> None:
    """Add ``applier`` for ``message_type`` (features call this at import)."""
    APPLIERS.setdefault(message_type, []).append(applier)


def apply(gw: Gateway, authority: str, env: Envelope, conn: Connection) -> None:
    with BUDGET.timed("appliers"):
        for applier in APPLIERS.get(env.header.message_type, []):
            applier(gw, authority, env, conn)
