"""Shared helpers of the policy tests: a gateway on the in-memory transport
hosting every authority, a pump that moves messages until the region is
quiet, and readers of what the ledger holds."""

from __future__ import annotations

import io
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.context import Gateway, build
from gateway.envelope import xmlsafe
from gateway.envelope.codec import element_to_envelope
from gateway.envelope.keys import ensure_identity
from gateway.ledger.records import MessageRecord
from gateway.ledger.status import Direction
from gateway.model import Envelope, Notification
from gateway.policy import existence
from gateway.services import delivery, inbound, outbound, receipts
from gateway.settings import Settings, load_settings
from gateway.transport.base import Delivery, Disposition, inbox_queue
from gateway.transport.memory import MemoryTransport

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
DUDLEY = DATA / "dudley-332" / "caf-register-2026-09.csv"
WOLVERHAMPTON = DATA / "wolverhampton-336" / "ehm-export-2026-10-01.json"
SANDWELL = DATA / "sandwell-333" / "fwi-forms-20261005.xml"
ALL = ("330", "332", "333", "334", "335", "336")


def policy_config(tmp_path: Path, **policy: Any) -> Path:
    """A copy of the project's config whose policy.yaml points at a test key."""
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
    tmp_path: Path, hosted: tuple[str, ...] = ALL, ledger_url: str | None = None, **extra: Any
) -> Settings:
    config = policy_config(tmp_path)
    settings = load_settings(
        config,
        env={},
        overrides={
            "hosted": list(hosted),
            "database": {"url": ledger_url or f"sqlite:///{tmp_path / 'ledger.db'}"},
            "keys_dir": str(tmp_path / "keys"),
            "api_keys_file": str(tmp_path / "api-keys.json"),
            **extra,
        },
    )
    for code in ALL:
        ensure_identity(code, settings.directory.get(code).name, settings.keys_dir)
    return settings


def memory_gateway(tmp_path: Path, hosted: tuple[str, ...] = ALL) -> Gateway:
    transport = MemoryTransport()
    gw = build(settings_for(tmp_path, hosted), transport)
    transport.declare(gw.hosted)
    return gw


def pump(gw: Gateway, rounds: int = 20) -> None:
    """Publish, receive and receipt until nothing moves (in-memory transport only)."""
    transport = gw.transport
    assert isinstance(transport, MemoryTransport)
    for _ in range(rounds):
        moved = delivery.publish_outbox(gw).confirmed
        for code in gw.hosted:
            queue = inbox_queue(code)
            if not transport.depth(queue):
                continue
            stop = threading.Event()

            def handle(
                batch: list[Delivery],
                code: str = code,
                queue: str = queue,
                stop: threading.Event = stop,
            ) -> list[Disposition]:
                result = inbound.handle_batch(gw, code, batch)
                if not transport.depth(queue):
                    stop.set()
                return result

            transport.consume([queue], handle, stop)  # type: ignore[arg-type]
            moved += 1
        moved += receipts.send_receipts(gw)
        if not moved:
            return
    raise AssertionError("the region did not settle")


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
