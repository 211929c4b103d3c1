"""Helpers for the dispute tests: a gateway on the in-memory transport with a
settable clock, a drain that runs the whole pipeline to quiet, and a request."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.context import Gateway, build
from gateway.disputes import escalations
from gateway.disputes.feature import escalation_queues
from gateway.disputes.notices import publish_notices
from gateway.disputes.service import NewDispute, PartyInput
from gateway.envelope.keys import ensure_identity
from gateway.ledger.store import Ledger
from gateway.model import LineManager
from gateway.services import delivery, inbound, receipts
from gateway.settings import Settings, load_settings
from gateway.transport.base import Delivery, Disposition, inbox_queue
from gateway.transport.memory import MemoryTransport

ROOT = Path(__file__).resolve().parents[1]
ALL = ("330", "332", "333", "334", "335", "336")
# Monday 5 October 2026, 10:00 in London (09:00 UTC)
MONDAY = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = MONDAY) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def dispute_settings(
    tmp_path: Path, hosted: Sequence[str], ledger_url: str, *, now: datetime = MONDAY, **extra: Any
) -> Settings:
    settings = load_settings(
        extra.pop("config_dir", ROOT / "config"),
        env={},
        overrides={
            "hosted": list(hosted),
            "database": {"url": ledger_url},
            "keys_dir": str(tmp_path / "keys"),
            "api_keys_file": str(tmp_path / "api-keys.json"),
            **extra,
        },
    )
    for code in ALL:
        # certificates valid from the test's clock, which may be before today
        ensure_identity(code, settings.directory.get(code).name, settings.keys_dir, now=now)
    return settings


def memory_gateway(
    tmp_path: Path,
    hosted: Sequence[str] = ("332", "336"),
    clock: Clock | None = None,
    transport: MemoryTransport | None = None,
    **extra: Any,
) -> Gateway:
    clock = clock or Clock()
    settings = dispute_settings(
        tmp_path, hosted, f"sqlite:///{tmp_path / 'ledger.db'}", now=clock(), **extra
    )
    transport = transport or MemoryTransport()
    gw = build(settings, transport, ledger=Ledger.open(settings.database.url, clock), clock=clock)
    transport.declare(gw.hosted)
    return gw


def _dispatch(gw: Gateway, batch: Sequence[Delivery]) -> list[Disposition]:
    out: list[Disposition] = []
    for d in batch:
        if ".escalation." in d.queue:
            out.extend(escalations.handle_batch(gw, [d]))
        else:
            out.extend(inbound.handle_batch(gw, d.queue.rsplit(".", 1)[-1], [d]))
    return out


def drain(*gateways: Gateway, rounds: int = 10) -> None:
    """Publish, consume and receipt until every queue of these gateways is empty."""
    for _ in range(rounds):
        for gw in gateways:
            while delivery.publish_outbox(gw).confirmed:
                pass
            while publish_notices(gw):
                pass
        busy = False
        for gw in gateways:
            transport = gw.transport
            assert isinstance(transport, MemoryTransport)
            queues = [inbox_queue(c) for c in gw.hosted] + escalation_queues(gw)
            if not any(transport.depth(q) for q in queues):
                continue
            busy = True
            stop = threading.Event()

            def handler(
                batch: Sequence[Delivery],
                gw: Gateway = gw,
                qs: list[str] = queues,
                t: MemoryTransport = transport,
                s: threading.Event = stop,
            ) -> list[Disposition]:
                result = _dispatch(gw, batch)
                if not any(t.depth(q) for q in qs):
                    s.set()
                return result

            transport.consume(queues, handler, stop)
            receipts.send_receipts(gw)
        if not busy:
            return


def request(against: str = "336", **changes: Any) -> NewDispute:
    fields: dict[str, Any] = {
        "case_ref": "DUD-2026-00417",
        "subject": "Funding of the housing options referral",
        "asked": "Wolverhampton, as the residence LA, funds the housing options work.",
        "raised_by": PartyInput(
            name="Karen Hale",
            la_code="332",
            role="School nurse",
            organisation="Dudley Public Health",
            line_manager=LineManager("Ruth Evans", "ruth.evans@example.org", "Nursing manager"),
        ),
        "against": PartyInput(name="Imran Butt", la_code=against, role="Early help coordinator"),
        "consent_ref": "DUD-2026-00417/consent/2026-09-02",
    }
    fields.update(changes)
    return NewDispute(**fields)
