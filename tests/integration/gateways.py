"""Real gateways for integration tests: settings, keys, worker threads."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.context import Gateway, build
from gateway.envelope.keys import ensure_identity
from gateway.feature import Feature
from gateway.model import (
    Audience,
    Envelope,
    Header,
    LegalBasis,
    MessageType,
    Notification,
    NotificationType,
)
from gateway.settings import Settings, load_settings
from gateway.transport.rabbit import RabbitTransport
from gateway.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
ALL = ("330", "332", "333", "334", "335", "336")


def make_settings(
    tmp_path: Path, hosted: tuple[str, ...], ledger_url: str, amqp_url: str, **extra: Any
) -> Settings:
    """The project's config with this test's broker, ledger and keys."""
    settings = load_settings(
        ROOT / "config",
        env={},
        overrides={
            "hosted": list(hosted),
            "broker": {"url": amqp_url, "prefetch": 200},
            "database": {"url": ledger_url},
            "keys_dir": str(tmp_path / "keys"),
            "api_keys_file": str(tmp_path / "api-keys.json"),
            **extra,
        },
    )
    for code in ALL:
        ensure_identity(code, settings.directory.get(code).name, settings.keys_dir)
    return settings


@contextmanager
def running(
    settings: Settings,
    clock: Callable[[], Any] | None = None,
    features: Sequence[Feature] | None = None,
) -> Iterator[Gateway]:
    """A gateway (the standard features unless given) with its worker threads,
    stopped and closed afterwards."""
    kwargs = {"clock": clock} if clock is not None else {}
    gw = build(settings, RabbitTransport.from_settings(settings), features=features, **kwargs)
    worker = Worker(gw, RabbitTransport.from_settings(settings))
    worker.start()
    try:
        yield gw
    finally:
        worker.close()
        gw.transport.close()
        worker.consumer_transport.close()
        gw.ledger.engine.dispose()


def wait_for(
    predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def notification_envelope(sender: str, recipient: str) -> Envelope:
    """A small, valid envelope with no personal data, for transport-level tests."""
    header = Header(
        message_id=str(uuid.uuid4()),
        correlation_id=str(uuid.uuid4()),
        message_type=MessageType.NOTIFICATION,
        sender=sender,
        recipient=recipient,
        created_at=datetime.now(UTC).replace(microsecond=0),
        legal_basis=LegalBasis.NO_PERSONAL_DATA,
    )
    body = Notification(
        type=NotificationType.CROSS_BORDER_CASE_IDENTIFIED,
        case_ref="DUD-2026-00417",
        summary="A cross-border case was identified.",
        audience=Audience.PROFESSIONAL,
    )
    return Envelope(header, body)
