"""The pull connector: the local system fetches, the gateway waits.

The local system calls ``GET /v1/inbox`` (served messages become
``DELIVERED_LOCAL``) and ``POST /v1/inbox/{message_id}/ack`` once it has
stored one (``ACKNOWLEDGED``), or ``POST /v1/inbox/ack`` for many; see
``gateway.api.routes.inbox``. Nothing is
pushed, so the handover loop skips pull authorities; only the local
acknowledgement deadline (``deadline``) applies to them.
"""

from __future__ import annotations

from gateway.connectors.base import Handover, LocalMessage, Outcome


class PullConnector:
    kind = "pull"
    pushes = False

    def deliver(self, message: LocalMessage) -> Handover:
        # Not called by the handover loop (pushes is False); a message of a pull
        # authority simply stays in its inbox until fetched.
        return Handover(Outcome.RETRY, f"message {message.message_id} waits in the pull inbox")

    def publish(self, message_ids: list[str]) -> None:
        """Nothing is placed by this connector."""

    def taken(self, message_ids: list[str]) -> set[str]:
        # The local system says so itself, through POST /v1/inbox/{id}/ack.
        return set()

    def withdraw(self, message_id: str) -> bool:
        # A served message was fetched by the local system: nothing can be taken back.
        return False

    def close(self) -> None:
        """Nothing to release."""
