"""Helpers for the operations tests: a gateway on an in-memory transport with a
temporary SQLite ledger and a settable clock, a fake broker probe, and a
shortcut for putting messages into the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support.clock import Clock
from support.gateways import memory_gateway

from gateway.context import Gateway
from gateway.errors import TransportError
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.ops.broker import QueueStats

ROOT = Path(__file__).resolve().parents[1]
OPS_START = datetime(2026, 10, 5, 12, 0, tzinfo=UTC)

__all__ = ["Clock"]


@dataclass
class FakeProbe:
    up: bool = True
    depths: Mapping[str, int | None] = field(default_factory=dict)
    stats: Mapping[str, QueueStats | None] | None = None

    def ping(self) -> None:
        if not self.up:
            raise TransportError("broker at 127.0.0.1:5672 not reachable: ConnectionRefused")

    def queue_stats(self) -> Mapping[str, QueueStats | None]:
        self.ping()
        if self.stats is not None:
            return self.stats
        return {
            name: None if n is None else QueueStats(name, n, None, None, "passive")
            for name, n in self.depths.items()
        }


def make_gateway(
    tmp_path: Path,
    hosted: tuple[str, ...] = ("332", "336"),
    clock: Clock | None = None,
    **overrides: Any,
) -> Gateway:
    """A gateway hosting ``hosted`` on the in-memory transport, with the settable clock."""
    clock = clock or Clock(OPS_START)
    return memory_gateway(tmp_path, hosted, clock=clock, keys_for=hosted, **overrides)


def put(
    gw: Gateway,
    authority: str,
    counterparty: str,
    *statuses: Status,
    direction: Direction = Direction.OUTBOUND,
    message_type: str = "Assessment",
    reason: str | None = None,
    legal_basis: str = "NO_PERSONAL_DATA",
) -> tuple[str, int]:
    """Record one message with ``statuses[0]`` and move it through the rest."""
    message_id = str(uuid.uuid4())
    outbound = direction == Direction.OUTBOUND
    (pk,) = gw.ledger.record(
        [
            NewMessage(
                message_id=message_id,
                direction=direction,
                authority=authority,
                sender=authority if outbound else counterparty,
                recipient=counterparty if outbound else authority,
                message_type=message_type,
                correlation_id=str(uuid.uuid4()),
                legal_basis=legal_basis,
                statuses=((statuses[0], None),),
                digest=uuid.uuid4().hex * 2,
                body=b"<Envelope/>",
            )
        ]
    )
    for status in statuses[1:]:
        gw.ledger.transition([pk], status, reason)
    return message_id, pk
