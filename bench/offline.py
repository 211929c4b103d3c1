"""Two gateways in this process on the in-memory transport, for the offline benches.

332 sends and 336 receives, each with an SQLite ledger of its own in ``work``; no
broker. ``bench.sender_ledger`` and ``bench.codec`` measure on such a pair, with
copies of the example Assessment (``schemas/examples/assessment.xml``). The
benches put the tree measured, then ``tests/``, on ``sys.path`` before importing
this (``support.gateways`` is the tests' helper).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from support.gateways import memory_gateway, settings_for

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.model import Envelope
from gateway.transport.memory import MemoryTransport

SENDER, RECIPIENT = "332", "336"
EXAMPLE = Path(__file__).resolve().parents[1] / "schemas" / "examples" / "assessment.xml"


@dataclass(frozen=True)
class Pair:
    """The two gateways, their shared transport, and the message they exchange."""

    sender: Gateway
    receiver: Gateway
    transport: MemoryTransport
    template: Envelope
    """The example Assessment, from ``SENDER`` to ``RECIPIENT``."""

    def fresh(self, n: int) -> list[Envelope]:
        """``n`` copies of the template, each with an id of its own, created now."""
        return [
            Envelope(
                replace(
                    self.template.header,
                    message_id=str(uuid.uuid4()),
                    created_at=datetime.now(UTC).replace(microsecond=0),
                ),
                self.template.body,
            )
            for _ in range(n)
        ]


def pair(work: Path) -> Pair:
    """A sending and a receiving gateway whose ledgers are files in ``work``."""
    transport = MemoryTransport()
    sender = memory_gateway(
        work,
        transport=transport,
        settings=settings_for(work, (SENDER,), ledger_url=f"sqlite:///{work / 's.db'}"),
    )
    receiver = memory_gateway(
        work,
        transport=transport,
        settings=settings_for(work, (RECIPIENT,), ledger_url=f"sqlite:///{work / 'r.db'}"),
    )
    root = xmlsafe.parse(EXAMPLE.read_bytes(), max_bytes=1_000_000, max_depth=64)
    example = element_to_envelope(root)
    template = Envelope(replace(example.header, sender=SENDER, recipient=RECIPIENT), example.body)
    return Pair(sender, receiver, transport, template)
