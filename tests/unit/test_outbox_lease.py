"""The outbox claim lease is a setting, and never shorter than the publish it covers.

A process claims the outbox rows it publishes for ``database.outbox_lease_s``;
one publish waits at most ``broker.confirm_timeout_s`` for the broker's
confirms. A lease that ran out while its publish still waited would let a
second replica publish the same messages, so the settings are refused unless
the lease outlasts the confirm timeout by ``OUTBOX_LEASE_MARGIN_S``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.clock import Clock
from support.gateways import memory_gateway, settings_for
from support.outbound import queued

from gateway.context import Gateway
from gateway.errors import BrokerUnavailableError, ConfigError
from gateway.ledger.records import NewMessage
from gateway.services.delivery import publish_outbox
from gateway.settings import OUTBOX_LEASE_MARGIN_S, load_settings
from gateway.transport.base import OutgoingMessage, PublishResult
from gateway.transport.memory import MemoryTransport

ROOT = Path(__file__).resolve().parents[2]
HOSTED = ("332", "336")


class DiesMidPublish(MemoryTransport):
    """The process dies between claiming its rows and the broker's confirms."""

    def publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> list[PublishResult]:
        raise SystemExit("killed mid-publish")


class Recording(MemoryTransport):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []
        self.published: list[str] = []

    def publish(
        self,
        messages: Sequence[OutgoingMessage],
        timeout_s: float = 30.0,
        *,
        open_only: bool = False,
    ) -> list[PublishResult]:
        self.timeouts.append(timeout_s)
        self.published += [m.message_id or "" for m in messages]
        return super().publish(messages, timeout_s, open_only=open_only)


def _queued(count: int) -> list[NewMessage]:
    return [queued("332", "332", n) for n in range(count)]


def test_the_shipped_settings_have_a_lease_that_outlasts_the_confirm_timeout() -> None:
    settings = load_settings(ROOT / "config", env={})

    assert settings.database.outbox_lease_s == 40
    assert settings.broker.confirm_timeout_s == 30
    assert (
        settings.database.outbox_lease_s
        >= settings.broker.confirm_timeout_s + OUTBOX_LEASE_MARGIN_S
    )


SHIPPED = sorted(
    [ROOT / "config" / "gateway.yaml", *(ROOT / "docker" / "config").glob("*/gateway.yaml")]
)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_gateway_yaml_names_the_lease_and_the_confirm_timeout_within_the_rule(
    path: Path,
) -> None:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))

    lease = config["database"]["outbox_lease_s"]
    confirm = config["broker"]["confirm_timeout_s"]

    assert lease >= confirm + OUTBOX_LEASE_MARGIN_S, path


def test_a_lease_shorter_than_the_confirm_timeout_and_margin_is_refused_naming_both_keys() -> None:
    env = {"CAFGW_DATABASE__OUTBOX_LEASE_S": "34", "CAFGW_BROKER__CONFIRM_TIMEOUT_S": "30"}

    with pytest.raises(ConfigError) as refused:
        load_settings(ROOT / "config", env=env)

    message = str(refused.value)
    assert "database.outbox_lease_s (34)" in message
    assert "broker.confirm_timeout_s (30)" in message


def test_the_lease_and_the_confirm_timeout_are_read_from_the_environment() -> None:
    env = {"CAFGW_DATABASE__OUTBOX_LEASE_S": "20", "CAFGW_BROKER__CONFIRM_TIMEOUT_S": "15"}

    settings = load_settings(ROOT / "config", env=env)

    assert (settings.database.outbox_lease_s, settings.broker.confirm_timeout_s) == (20, 15)


def test_rows_claimed_by_a_replica_that_died_are_published_by_another_after_the_lease(
    tmp_path: Path,
) -> None:
    clock = Clock.starting_now()
    recording = Recording()
    dying, other = _two_replicas(tmp_path, clock, DiesMidPublish(), recording)
    try:
        queued = _queued(3)
        dying.ledger.record(queued)
        with pytest.raises(SystemExit):
            publish_outbox(dying)  # claimed, then killed before any confirm

        publish_outbox(other)
        clock.advance(11.9)
        publish_outbox(other)
        assert recording.published == []  # the dead replica's lease still holds

        clock.advance(0.2)
        summary = publish_outbox(other)

        assert summary.confirmed == 3
        assert sorted(recording.published) == sorted(m.message_id for m in queued)
        assert recording.timeouts == [7]  # the configured confirm timeout
    finally:
        dying.ledger.engine.dispose()
        other.ledger.engine.dispose()


class Reconnects(Recording):
    """Its publisher connection was lost: opening a new one takes ``takes_s`` (fake
    clock), during which ``meanwhile`` runs (another replica's turn)."""

    def __init__(self, clock: Clock, takes_s: float, meanwhile: Callable[[], object]) -> None:
        super().__init__()
        self.clock, self.takes_s, self.meanwhile = clock, takes_s, meanwhile

    def connect_publisher(self) -> bool:
        self.clock.advance(self.takes_s)
        self.meanwhile()
        return True


def _two_replicas(
    tmp_path: Path, clock: Clock, first: MemoryTransport, second: MemoryTransport
) -> tuple[Gateway, Gateway]:
    settings = settings_for(
        tmp_path,
        HOSTED,
        now=clock(),
        database={"url": f"sqlite:///{tmp_path / 'ledger.db'}", "outbox_lease_s": 12},
        broker={"confirm_timeout_s": 7},
    )
    return (
        memory_gateway(tmp_path, HOSTED, clock=clock, settings=settings, transport=first),
        memory_gateway(tmp_path, HOSTED, clock=clock, settings=settings, transport=second),
    )


@dataclass(frozen=True)
class Reconnecting:
    """Two replicas with rows queued; the first one's publisher reconnects slowly."""

    first: Gateway
    other: Gateway
    slow: Reconnects
    other_transport: Recording
    queued: list[NewMessage]
    clock: Clock


@contextmanager
def _reconnecting(tmp_path: Path, takes_s: float) -> Iterator[Reconnecting]:
    """The first replica's publisher reconnects for ``takes_s`` (fake clock) once it
    has claimed the three queued rows, while the other replica takes a turn."""
    clock = Clock.starting_now()
    other_transport = Recording()
    holder: list[Gateway] = []
    slow = Reconnects(clock, takes_s, lambda: publish_outbox(holder[0]))
    first, other = _two_replicas(tmp_path, clock, slow, other_transport)
    holder.append(other)
    try:
        queued = _queued(3)
        first.ledger.record(queued)
        yield Reconnecting(first, other, slow, other_transport, queued, clock)
    finally:
        first.ledger.engine.dispose()
        other.ledger.engine.dispose()


def test_a_replica_whose_reconnect_outlasted_its_lease_leaves_the_rows_another_took(
    tmp_path: Path,
) -> None:
    with _reconnecting(tmp_path, 13) as r:
        summary = publish_outbox(r.first)  # claims, reconnects for 13 s > the 12 s lease

        assert summary.confirmed == 0
        assert r.slow.published == []
        assert sorted(r.other_transport.published) == sorted(m.message_id for m in r.queued)


def test_a_replica_that_reconnected_within_its_lease_renews_it_and_publishes_its_rows(
    tmp_path: Path,
) -> None:
    with _reconnecting(tmp_path, 11) as r:
        summary = publish_outbox(r.first)  # the other replica's turn at 11 s finds them claimed

        assert summary.confirmed == 3
        assert sorted(r.slow.published) == sorted(m.message_id for m in r.queued)
        assert r.other_transport.published == []
        r.clock.advance(12.5)  # past the first lease, within the renewed one: nothing to take
        assert publish_outbox(r.other).confirmed == 0


def test_with_no_broker_the_claims_go_back_at_once_for_a_replica_that_has_one(
    tmp_path: Path,
) -> None:
    clock = Clock.starting_now()
    down, up = MemoryTransport(), Recording()
    down.available = False
    first, other = _two_replicas(tmp_path, clock, down, up)
    try:
        queued = _queued(3)
        first.ledger.record(queued)

        with pytest.raises(BrokerUnavailableError):
            publish_outbox(first)
        summary = publish_outbox(other)  # no time passed: nothing waits for a lease

        assert summary.confirmed == 3
        assert sorted(up.published) == sorted(m.message_id for m in queued)
    finally:
        first.ledger.engine.dispose()
        other.ledger.engine.dispose()
