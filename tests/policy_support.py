"""Shared helpers of the policy tests: a gateway on the in-memory transport
hosting every authority, a pump that moves messages until the region is
quiet, and readers of what the ledger holds."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.clock import Clock
from support.gateways import ALL, config_copy, settle
from support.gateways import memory_gateway as _memory_gateway
from support.gateways import settings_for as _settings_for

from gateway.context import Gateway
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction
from gateway.model import Envelope, Notification
from gateway.services import outbound
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
DUDLEY = DATA / "dudley-332" / "caf-register-2026-09.csv"
WOLVERHAMPTON = DATA / "wolverhampton-336" / "ehm-export-2026-10-01.json"
SANDWELL = DATA / "sandwell-333" / "fwi-forms-20261005.xml"

__all__ = ["ALL", "Clock", "settle"]


def policy_config(tmp_path: Path, **policy: Any) -> Path:
    """A copy of the project's config whose policy.yaml points at a test key."""
    return config_copy(tmp_path, **policy)


def settings_for(
    tmp_path: Path, hosted: tuple[str, ...] = ALL, ledger_url: str | None = None, **extra: Any
) -> Settings:
    return _settings_for(
        tmp_path, hosted, ledger_url=ledger_url, config=config_copy(tmp_path), **extra
    )


def memory_gateway(tmp_path: Path, hosted: tuple[str, ...] = ALL) -> Gateway:
    """A gateway hosting ``hosted`` on the in-memory transport, with an existence key."""
    return _memory_gateway(tmp_path, hosted, settings=settings_for(tmp_path, hosted))


def pump(gw: Gateway, rounds: int = 20) -> None:
    """Publish, receive and receipt until nothing moves (the worker's own steps)."""
    settle(gw, rounds=rounds)


def submit(
    gw: Gateway, authority: str, adapter: str, data: bytes, name: str
) -> outbound.SubmitReport:
    return outbound.submit_local(gw, authority, adapter, io.BytesIO(data), name)


def envelope_of(gw: Gateway, record: MessageRecord) -> Envelope | None:
    data = gw.ledger.body_of(record.authority, record.direction, record.message_id)
    if data is None:
        return None
    return element_to_envelope(xmlsafe.parse(data, max_bytes=10_000_000, max_depth=64))


@dataclass(frozen=True, order=True)
class Sent:
    """One outbound message as the tests compare them."""

    kind: str  # message type, or the notification type for notifications
    recipient: str
    legal_basis: str
    status: str


def outbound_of(
    gw: Gateway, authority: str, case_ref: str | None = None, correlation_id: str | None = None
) -> list[Sent]:
    """Every outbound message of ``authority`` about one case, as comparable tuples."""
    records = gw.ledger.find(
        authority=authority,
        direction=Direction.OUTBOUND,
        correlation_id=correlation_id,
        limit=1000,
        with_history=False,
    )
    found = []
    for r in records:
        if r.message_type == "Receipt":
            continue
        if case_ref is not None and r.case_ref != case_ref:
            continue
        env = envelope_of(gw, r)
        kind = r.message_type
        if env is not None and isinstance(env.body, Notification):
            kind = env.body.type.value
        found.append(Sent(kind, r.recipient, r.legal_basis, r.status.value))
    return sorted(found)
