"""Two gateways with their own ledgers whose audit chains are anchored at each other.

Dudley's gateway (332) and its neighbours' (333, 336) share an in-memory broker;
``anchored`` makes Dudley's chain grow and has 336 give back a head of it in
a signed receipt. ``cut_off`` and ``rewrite_with_the_key`` are what the host's
own administrator can do to Dudley's ledger (issue 13, item 3).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, insert

from gateway.context import Gateway
from gateway.ledger import audit, audit_anchor
from gateway.ledger.tables import audit as audit_table
from gateway.ledger.tables import audit_subjects
from gateway.model import Audience, LegalBasis, Notification, NotificationType
from gateway.services import outbound
from gateway.transport.memory import MemoryTransport
from support.clock import Clock
from support.gateways import config_copy, memory_gateway, settings_for, settle

ROOT = Path(__file__).resolve().parents[2]
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"


@dataclass
class Pair:
    """Dudley's gateway (332) and its neighbours' (333, 336): own ledgers, one broker."""

    dudley: Gateway
    others: Gateway
    clock: Clock

    def settle(self) -> None:
        settle(self.dudley, self.others)


def gateway_of(
    root: Path,
    hosted: tuple[str, ...],
    transport: MemoryTransport,
    clock: Clock,
    **audit_settings: object,
) -> Gateway:
    config = config_copy(root)
    settings = settings_for(
        root,
        hosted,
        config=config,
        now=clock(),
        keys_dir=str(root.parent / "keys"),
        audit=audit_settings,
    )
    return memory_gateway(root, hosted, clock=clock, transport=transport, settings=settings)


def notify(gw: Gateway, sender: str, recipient: str) -> str:
    """A signed notification without personal data, queued in ``gw``'s outbox."""
    env = gw.outbox.envelope(
        sender=sender,
        recipient=recipient,
        body=Notification(
            type=NotificationType.CROSS_BORDER_CASE_IDENTIFIED,
            case_ref=None,
            summary="A cross-border case was identified.",
            audience=Audience.PROFESSIONAL,
        ),
        correlation=str(uuid.uuid4()),
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    with gw.ledger.transaction() as conn:
        gw.outbox.queue(conn, [gw.outbox.sign(env)])
    return env.header.message_id


def pair_of(tmp_path: Path, **audit_settings: object) -> Pair:
    clock = Clock()
    transport = MemoryTransport()
    dudley = gateway_of(tmp_path / "dudley", ("332",), transport, clock, **audit_settings)
    others = gateway_of(tmp_path / "others", ("333", "336"), transport, clock, **audit_settings)
    shutil.copy(
        tmp_path / "dudley" / "secrets" / "regional-existence.key",
        tmp_path / "others" / "secrets" / "regional-existence.key",
    )
    return Pair(dudley, others, clock)


def anchored(tmp_path: Path) -> tuple[Pair, audit_anchor.Anchor]:
    """Dudley discloses (its chain grows), receipts a message from 336 (reporting its
    head), then sends 336 another: 336's receipt gives that head back."""
    pair = pair_of(tmp_path)
    with DUDLEY.open("rb") as stream:
        outbound.submit_local(pair.dudley, "332", "dudley-csv", stream, DUDLEY.name)
    pair.settle()
    assert audit.count(pair.dudley.ledger) > 2
    notify(pair.others, "336", "332")
    pair.settle()
    notify(pair.dudley, "332", "336")
    pair.settle()
    (anchor,) = [a for a in audit_anchor.anchors(pair.dudley.ledger) if a.seq > 0]
    assert (anchor.peer, anchor.authority) == ("336", "332")
    return pair, anchor


def cut_off(gw: Gateway, seq: int) -> None:
    """Delete the newest audit entries from ``seq`` on, as the host's administrator can."""
    with gw.ledger.transaction() as conn:
        conn.execute(delete(audit_subjects).where(audit_subjects.c.seq >= seq))
        conn.execute(delete(audit_table).where(audit_table.c.seq >= seq))


def rewrite_with_the_key(gw: Gateway, seq: int, detail: str) -> None:
    """What the host's administrator can do: change entry ``seq`` and recompute every
    hash from there, with the audit key it can read."""
    chain = audit.entries(gw.ledger, limit=100_000)
    prev = audit.GENESIS
    with gw.ledger.transaction() as conn:
        conn.execute(delete(audit_table))
        for e in chain:
            event = e.event
            if e.seq == seq:
                event = audit.AuditEvent(**{**vars(e.event), "detail": detail})
            digest = audit._entry_hash(e.seq, e.at, event, prev, gw.ledger.audit_key)
            row = {**vars(event), "seq": e.seq, "at": e.at, "prev_hash": prev, "hash": digest}
            row.pop("child_key")
            conn.execute(insert(audit_table).values(**row))
            prev = digest
