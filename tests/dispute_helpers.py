"""Helpers for the dispute tests: gateways hosting the parties on the in-memory
transport with the settable clock, run to quiet by their own worker rounds,
and a dispute request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from support.clock import MONDAY, Clock
from support.gateways import ALL, settings_for, settle
from support.gateways import memory_gateway as _memory_gateway

from gateway.context import Gateway
from gateway.disputes.service import NewDispute, PartyInput
from gateway.model import LineManager
from gateway.settings import Settings
from gateway.transport.memory import MemoryTransport

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ALL", "MONDAY", "Clock"]


def dispute_settings(
    tmp_path: Path, hosted: Sequence[str], ledger_url: str, *, now: datetime = MONDAY, **extra: Any
) -> Settings:
    """Settings for the dispute tests (certificates valid from the test's clock)."""
    config = extra.pop("config_dir", None)
    return settings_for(tmp_path, hosted, ledger_url=ledger_url, config=config, now=now, **extra)


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
    return _memory_gateway(tmp_path, hosted, clock=clock, transport=transport, settings=settings)


def drain(*gateways: Gateway, rounds: int = 10) -> None:
    """Run these gateways (publish, consume, receipt, jobs) until every queue is empty."""
    settle(*gateways, rounds=rounds * 3)


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
