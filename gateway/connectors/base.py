"""The connector contract: hand one received message to a local system, say what happened.

A connector never touches the ledger: the handover loop (``handover``) reads
what is due, calls ``deliver`` and records the outcome, so a restart loses
nothing and every connector gets the same retry, backoff and deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    TAKEN = "TAKEN"  # the local system has it (webhook 2xx): DELIVERED_LOCAL, then ACKNOWLEDGED
    PLACED = "PLACED"  # left where the local system will take it (file): DELIVERED_LOCAL
    RETRY = "RETRY"  # the local system is unavailable; try again after a backoff
    REFUSED = "REFUSED"  # permanent refusal: dead-lettered with the reason, replayable


@dataclass(frozen=True)
class Handover:
    outcome: Outcome
    reason: str | None = None


@dataclass(frozen=True)
class LocalMessage:
    """A verified inbound message waiting for its local system (exact stored bytes)."""

    pk: int
    message_id: str
    authority: str  # the recipient authority whose local system gets it
    sender: str
    message_type: str
    body: bytes
    attempts: int  # failed handover attempts so far


class Connector(Protocol):
    """One authority's way to its local system."""

    kind: str
    # True when the gateway hands messages over (webhook, file); False when the
    # local system fetches them itself (pull: GET /v1/inbox).
    pushes: bool

    def deliver(self, message: LocalMessage) -> Handover:
        """Hand ``message`` over; never raises for a failure of the local system."""

    def publish(self, message_ids: list[str]) -> None:
        """Make PLACED messages visible to the local system, once the ledger recorded them.

        Idempotent; called again for every placed message after a restart, so
        a crash between recording and publishing neither loses nor repeats.
        """

    def taken(self, message_ids: list[str]) -> set[str]:
        """Of messages PLACED earlier, those the local system has since taken away."""

    def withdraw(self, message_id: str) -> bool:
        """Take back a PLACED message the local system has not taken; True if it was still
        there (so the local system never had it). A recall or erasure calls it."""

    def close(self) -> None:
        """Release connections."""
