"""Gateways for tests on the in-memory transport, and running them to quiet.

``settings_for`` is the project's configuration pointed at the test's ledger,
keys and (optionally) a copy of ``config/`` with the test's regional
existence key; ``memory_gateway`` builds a gateway from it on an in-memory
transport (shared between gateways when given, so several gateways with
their own ledgers can talk); ``settle`` runs gateways' worker rounds until
none of them has anything left to do.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from gateway.context import Gateway, build
from gateway.envelope.keys import ensure_identity
from gateway.feature import Feature
from gateway.ledger.store import utc_now
from gateway.ledger.tables import messages
from gateway.policy import existence
from gateway.services import receiving
from gateway.settings import Settings, load_settings
from gateway.transport.base import Delivery, Disposition
from gateway.transport.memory import MemoryTransport
from gateway.wakeups import Wakeups
from gateway.worker import Worker
from support.clock import Clock

ROOT = Path(__file__).resolve().parents[2]
ALL = ("330", "332", "333", "334", "335", "336")


def config_copy(tmp_path: Path, **policy: Any) -> Path:
    """A copy of the project's config whose policy.yaml points at a fresh test key."""
    config = tmp_path / "config"
    if not config.exists():
        shutil.copytree(ROOT / "config", config)
    key = tmp_path / "secrets" / "regional-existence.key"
    existence.create_key(key)
    data = yaml.safe_load((config / "policy.yaml").read_text(encoding="utf-8"))
    data.update({"existence_key_file": str(key), **policy})
    (config / "policy.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    return config


def settings_for(
    tmp_path: Path,
    hosted: Sequence[str] = ALL,
    *,
    ledger_url: str | None = None,
    config: Path | None = None,
    now: datetime | None = None,
    keys_for: Sequence[str] = ALL,
    **overrides: Any,
) -> Settings:
    """The project's settings for a test: its ledger, keys and API key file under ``tmp_path``."""
    settings = load_settings(
        config or ROOT / "config",
        env={},
        overrides={
            "hosted": list(hosted),
            "database": {"url": ledger_url or f"sqlite:///{tmp_path / 'ledger.db'}"},
            "keys_dir": str(tmp_path / "keys"),
            "api_keys_file": str(tmp_path / "api-keys.json"),
            **overrides,
        },
    )
    for code in keys_for:
        kwargs = {"now": now} if now is not None else {}
        ensure_identity(code, settings.directory.get(code).name, settings.keys_dir, **kwargs)
    return settings


def memory_gateway(
    tmp_path: Path,
    hosted: Sequence[str] = ALL,
    *,
    clock: Clock | Callable[[], datetime] | None = None,
    transport: MemoryTransport | None = None,
    features: Sequence[Feature] | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> Gateway:
    """A gateway on the in-memory transport (the given one, shared, or a new one);
    real time unless given a clock (keys are then valid from the clock's time)."""
    if clock is None:
        clock = utc_now
        settings = settings or settings_for(tmp_path, hosted, **overrides)
    else:
        settings = settings or settings_for(tmp_path, hosted, now=clock(), **overrides)
    transport = transport or MemoryTransport()
    gw = build(settings, transport, clock=clock, features=features)
    transport.declare(gw.hosted)  # as the worker does at start
    return gw


def settle(*gateways: Gateway, rounds: int = 30) -> None:
    """Run every gateway's worker rounds until none of them moves anything."""
    workers = [Worker(gw, gw.transport) for gw in gateways]
    for _ in range(rounds):
        if not sum(w.run_round() for w in workers):
            return
    raise AssertionError(f"the gateways did not settle after {rounds} rounds")


def deliver_queue(
    gw: Gateway, queue: str, seen: Callable[[Sequence[Delivery]], None] | None = None
) -> int:
    """Hand what waits on ``queue`` of ``gw``'s in-memory transport to its receiving
    pipeline, batch by batch, until the queue is empty; how many (``seen`` sees each
    batch first)."""
    transport = gw.transport
    assert isinstance(transport, MemoryTransport)
    handled = 0
    stop = threading.Event()

    def handle(batch: Sequence[Delivery]) -> Sequence[Disposition]:
        nonlocal handled
        handled += len(batch)
        if seen is not None:
            seen(batch)
        if not transport.depth(queue):
            stop.set()
        return receiving.handle_batch(gw, batch)

    if transport.depth(queue):
        transport.consume([queue], handle, stop)
    return handled


def claimed_until(gw: Gateway, pk: int) -> object:
    """Until when message ``pk`` is claimed by a publisher (None: not claimed)."""
    with gw.ledger.transaction() as conn:
        return conn.scalar(select(messages.c.claimed_until).where(messages.c.id == pk))


def watching(gw: Gateway) -> Wakeups:
    """Wake-ups that hear ``gw``'s ledger's commits, as a running worker's do."""
    wakeups = Wakeups()
    wakeups.watch(gw.ledger.engine)
    return wakeups
