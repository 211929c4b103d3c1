"""Webhook and file-drop connectors against a real local HTTP server and a real
directory, driven by the handover loop over an in-memory gateway with a settable
clock (no sleeping: backoff is checked on the clock)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from pathlib import Path

import httpx
import pytest
from local_systems import WebhookReceiver, secret_file, signed_inbound, with_connector
from ops_helpers import Clock, make_gateway
from sqlalchemy import func, select

from gateway.connectors import handover, registry
from gateway.connectors.base import Connector, Handover, LocalMessage, Outcome
from gateway.connectors.filedrop import FileDropConnector, staged_name
from gateway.connectors.webhook import WebhookConnector, signature
from gateway.context import Gateway
from gateway.errors import ConfigError
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import messages
from gateway.services import dead_letters, receiving
from gateway.settings import Settings
from gateway.transport.base import Delivery

pytestmark = pytest.mark.timeout(60)

SENDER, RECIPIENT = "332", "336"


def receive(gw: Gateway, count: int) -> list[str]:
    """``count`` signed messages from SENDER recorded VERIFIED in RECIPIENT's inbox."""
    sent = signed_inbound(gw, SENDER, RECIPIENT, count)
    deliveries = [
        Delivery(
            queue=f"caf.inbox.{RECIPIENT}",
            routing_key=f"{RECIPIENT}.IssueLogEntry.{SENDER}",
            body=m.body or b"",
            message_id=m.message_id,
            headers={},
            delivery_count=0,
            tag=n,
            user_id="guest",  # the broker account that published it
        )
        for n, m in enumerate(sent)
    ]
    receiving.handle_batch(gw, deliveries)
    ids = [m.message_id for m in sent]
    assert all(status_of(gw, m) == Status.VERIFIED for m in ids)
    return ids


def record(gw: Gateway, message_id: str):  # type: ignore[no-untyped-def]
    (found,) = gw.ledger.find(
        message_id=message_id, authority=RECIPIENT, direction=Direction.INBOUND
    )
    return found


def status_of(gw: Gateway, message_id: str) -> Status:
    return record(gw, message_id).status


def webhook_gateway(tmp_path: Path, url: str, clock: Clock) -> Gateway:
    secret_path = tmp_path / "secrets" / "webhook.secret"  # written by secret_file
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=clock)
    settings = with_connector(
        gw.settings, RECIPIENT, kind="webhook", url=url, hmac_secret_file=str(secret_path)
    )
    return dataclasses.replace(gw, settings=settings)


def local(message_id: str, body: bytes = b"<Envelope/>", attempts: int = 0) -> LocalMessage:
    return LocalMessage(1, message_id, RECIPIENT, SENDER, "IssueLogEntry", body, attempts)


def test_webhook_post_is_signed_with_hmac_and_carries_the_message_id_as_idempotency_key(
    tmp_path: Path,
) -> None:
    _, secret = secret_file(tmp_path)
    with WebhookReceiver(secret) as server:
        connector = WebhookConnector(RECIPIENT, server.url, secret)
        try:
            result = connector.deliver(local("m-1", b"<Envelope>hello</Envelope>"))
        finally:
            connector.close()
        calls, taken = server.snapshot()
    assert result.outcome is Outcome.TAKEN
    (call,) = calls
    assert call.signature_ok
    assert call.key == "m-1"
    assert call.message_id == "m-1"
    assert call.attempt == "1"
    assert taken == {"m-1": 1}


def test_webhook_signed_with_another_secret_is_retried_until_the_secret_is_fixed(
    tmp_path: Path,
) -> None:
    _, secret = secret_file(tmp_path)
    with WebhookReceiver(secret) as server:
        connector = WebhookConnector(RECIPIENT, server.url, b"not-the-shared-secret-at-all")
        try:
            result = connector.deliver(local("m-1"))
        finally:
            connector.close()
        calls, taken = server.snapshot()
    assert [c.signature_ok for c in calls] == [False]
    assert result.outcome is Outcome.RETRY
    assert "401" in (result.reason or "")
    assert not taken


def test_signature_header_is_hex_hmac_sha256_of_the_exact_body() -> None:
    body = b"<Envelope>x</Envelope>"
    expected = hmac.new(b"k" * 16, body, hashlib.sha256).hexdigest()
    assert signature(b"k" * 16, body) == f"sha256={expected}"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.TAKEN),
        (204, Outcome.TAKEN),
        (503, Outcome.RETRY),
        (500, Outcome.RETRY),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (401, Outcome.RETRY),
        (403, Outcome.RETRY),
        (400, Outcome.REFUSED),
        (404, Outcome.REFUSED),
        (422, Outcome.REFUSED),
    ],
)
def test_webhook_status_decides_between_taken_retry_and_permanent_refusal(
    tmp_path: Path, status: int, outcome: Outcome
) -> None:
    _, secret = secret_file(tmp_path)
    with WebhookReceiver(secret) as server:
        server.fail_with(status)
        connector = WebhookConnector(RECIPIENT, server.url, secret)
        try:
            result = connector.deliver(local("m-1"))
        finally:
            connector.close()
    assert result.outcome is outcome
    assert str(status) in (result.reason or "")


def test_webhook_endpoint_that_is_not_listening_is_retried_not_refused(tmp_path: Path) -> None:
    _, secret = secret_file(tmp_path)
    with WebhookReceiver(secret) as server:
        url = server.url
    # The server is gone: connection refused.
    connector = WebhookConnector(RECIPIENT, url, secret, timeout_s=2)
    try:
        result = connector.deliver(local("m-1"))
    finally:
        connector.close()
    assert result.outcome is Outcome.RETRY
    assert "ConnectError" in (result.reason or "")


def test_webhook_failing_with_503_is_retried_with_exponential_backoff_then_delivered_once(
    tmp_path: Path,
) -> None:
    clock = Clock()
    _, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as server:
        gw = webhook_gateway(tmp_path, server.url, clock)
        ids = receive(gw, 5)
        server.fail_with(503)
        steps = gw.settings.delivery_for(RECIPIENT).local_retry_backoff_s
        for failure, step in enumerate(steps[:3], start=1):
            assert handover.deliver_pending(gw) == 0
            oldest = record(gw, ids[0])
            assert oldest.status == Status.VERIFIED
            assert oldest.attempts == failure
            assert "503" in (oldest.reason or "")
            assert oldest.next_attempt_at is not None
            wait = (oldest.next_attempt_at - clock()).total_seconds()
            jitter = gw.settings.delivery_for(RECIPIENT).local_backoff().jitter
            assert step * (1 - jitter) <= wait <= step
            # Every other waiting message waits too: one POST per backoff step, not per message.
            assert all(record(gw, m).next_attempt_at == oldest.next_attempt_at for m in ids[1:])
            calls_before = len(server.snapshot()[0])
            assert handover.deliver_pending(gw) == 0
            assert len(server.snapshot()[0]) == calls_before
            clock.advance(wait)
        assert len(server.snapshot()[0]) == 3
        server.fail_with(None)
        assert handover.deliver_pending(gw) == 5
        calls, taken = server.snapshot()
    assert taken == {m: 1 for m in ids}
    assert all(c.signature_ok for c in calls)
    for message_id in ids:
        found = record(gw, message_id)
        assert found.status == Status.ACKNOWLEDGED
        assert [h.status for h in found.history][-2:] == [
            Status.DELIVERED_LOCAL,
            Status.ACKNOWLEDGED,
        ]
    assert {c.attempt for c in calls if c.key == ids[0]} == {"1", "2", "3", "4"}


def test_webhook_answering_4xx_dead_letters_that_message_with_the_reason_and_others_go_on(
    tmp_path: Path,
) -> None:
    clock = Clock()
    _, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as server:
        gw = webhook_gateway(tmp_path, server.url, clock)
        ids = receive(gw, 3)
        server.refuse[ids[1]] = 422
        assert handover.deliver_pending(gw) == 3
        refused = record(gw, ids[1])
        assert refused.status == Status.DEAD_LETTERED
        assert "422" in (refused.reason or "")
        assert status_of(gw, ids[0]) == status_of(gw, ids[2]) == Status.ACKNOWLEDGED
        (letter,) = dead_letters.list_dead_letters(gw, RECIPIENT)
        assert (letter.message_id, letter.kind) == (ids[1], dead_letters.DeadLetterKind.LOCAL)
        assert letter.attempts == 1
        assert "422" in (letter.reason or "")

        # The local system is mended; an admin replays it: same id, attempts reset.
        del server.refuse[ids[1]]
        done = dead_letters.replay(gw, RECIPIENT, ids[1], actor="admin test")
        assert done.kind is dead_letters.DeadLetterKind.LOCAL
        replayed = record(gw, ids[1])
        assert (replayed.status, replayed.attempts) == (Status.REPLAYED, 0)
        assert handover.deliver_pending(gw) == 1
        _, taken = server.snapshot()
    assert status_of(gw, ids[1]) == Status.ACKNOWLEDGED
    assert Status.REPLAYED in [h.status for h in record(gw, ids[1]).history]
    assert taken[ids[1]] == 1
    assert dead_letters.list_dead_letters(gw, RECIPIENT) == []


def test_webhook_post_that_succeeded_before_a_crash_is_sent_again_with_the_same_key(
    tmp_path: Path,
) -> None:
    clock = Clock()
    _, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as server:
        gw = webhook_gateway(tmp_path, server.url, clock)
        (message_id,) = receive(gw, 1)
        # The POST succeeds, then the gateway dies before recording it.
        connector = registry.connector_for(gw.settings, RECIPIENT)
        (due,) = handover.state.due(gw.ledger, RECIPIENT, clock(), 10)
        assert connector.deliver(due).outcome is Outcome.TAKEN
        connector.close()
        assert status_of(gw, message_id) == Status.VERIFIED
        # After the restart the loop sends it again: same key, same bytes.
        assert handover.deliver_pending(gw) == 1
        calls, taken = server.snapshot()
    assert [c.key for c in calls] == [message_id, message_id]
    assert len({c.body_sha256 for c in calls}) == 1
    assert taken == {message_id: 2}
    assert status_of(gw, message_id) == Status.ACKNOWLEDGED


class Killed(BaseException):
    """The process dies here (a SIGKILL runs no handler; nothing below catches this)."""


def test_a_replica_killed_mid_turn_repeats_only_the_webhook_post_it_had_in_flight(
    tmp_path: Path,
) -> None:
    clock = Clock()
    _, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as server:
        gw = webhook_gateway(tmp_path, server.url, clock)
        ids = receive(gw, 25)
        calls = 0
        claimed_at_kill: list[int] = []

        def dies_after_the_13th_post(settings: Settings, code: str) -> Connector:
            real = registry.connector_for(settings, code)
            post = real.deliver

            def deliver(message: LocalMessage) -> Handover:
                nonlocal calls
                handed = post(message)
                calls += 1
                if calls == 13:  # the local system took it; the answer is never recorded
                    claimed_at_kill.append(claimed(gw))
                    raise Killed
                return handed

            real.deliver = deliver  # type: ignore[method-assign]
            return real

        with pytest.raises(Killed):
            handover.deliver_pending(gw, connector_for=dies_after_the_13th_post)
        # Every POST before the one in flight was recorded as it happened.
        assert [status_of(gw, m) for m in ids[:12]] == [Status.ACKNOWLEDGED] * 12
        assert status_of(gw, ids[12]) == Status.VERIFIED
        # What the dead replica held beyond its POST in flight: the rest of one claim.
        assert 1 <= claimed_at_kill[0] <= handover.CLAIM
        clock.advance(handover.CLAIM_LEASE_S + 1)  # its claims lapse; another replica goes on
        assert handover.deliver_pending(gw) == 13
        sent, taken = server.snapshot()
    assert taken == {**dict.fromkeys(ids, 1), ids[12]: 2}
    assert [c.attempt for c in sent if c.key == ids[12]] == ["1", "1"]


def claimed(gw: Gateway) -> int:
    """Inbound rows of RECIPIENT claimed for handover now."""
    with gw.ledger.transaction() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(messages)
                .where(messages.c.authority == RECIPIENT, messages.c.claimed_until.is_not(None))
            ).scalar_one()
        )


def test_webhook_connector_without_a_secret_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hmac_secret_file"):
        with_connector(
            make_gateway(tmp_path).settings, RECIPIENT, kind="webhook", url="http://127.0.0.1:1/"
        )


def test_webhook_over_plain_http_to_another_host_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="https"):
        with_connector(
            make_gateway(tmp_path).settings,
            RECIPIENT,
            kind="webhook",
            url="http://la.example.org/caf",
            hmac_secret_file="/secret",
        )


def test_a_short_webhook_secret_is_refused_naming_the_file(tmp_path: Path) -> None:
    short = tmp_path / "short.secret"
    short.write_text("tiny")
    gw = make_gateway(tmp_path)
    settings = with_connector(
        gw.settings,
        RECIPIENT,
        kind="webhook",
        url="http://127.0.0.1:1/",
        hmac_secret_file=str(short),
    )
    with pytest.raises(ConfigError, match=str(short)):
        registry.connector_for(settings, RECIPIENT)


def test_file_drop_stages_then_publishes_one_whole_file_named_by_message_id(
    tmp_path: Path,
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    connector = FileDropConnector(RECIPIENT, drop)
    body = b"<Envelope>" + b"x" * 100_000 + b"</Envelope>"
    result = connector.deliver(local("0f3c", body))
    assert result.outcome is Outcome.PLACED
    # Staged under a hidden name, not yet visible to the local system.
    assert sorted(os.listdir(drop)) == [staged_name("0f3c")]
    assert connector.taken(["0f3c"]) == set()
    connector.publish(["0f3c"])
    connector.publish(["0f3c"])  # idempotent
    assert sorted(os.listdir(drop)) == ["0f3c.xml"]
    assert (drop / "0f3c.xml").read_bytes() == body
    assert connector.taken(["0f3c"]) == set()
    (drop / "0f3c.xml").unlink()  # the local system takes it
    assert connector.taken(["0f3c"]) == {"0f3c"}


def test_file_drop_that_fails_mid_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    connector = FileDropConnector(RECIPIENT, drop)

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    result = connector.deliver(local("0f3c", b"<Envelope>partial?</Envelope>"))
    assert result.outcome is Outcome.RETRY
    assert "No space left" in (result.reason or "")
    assert os.listdir(drop) == []


def test_file_drop_into_a_missing_directory_waits_and_never_creates_it(tmp_path: Path) -> None:
    connector = FileDropConnector(RECIPIENT, tmp_path / "unmounted")
    assert connector.deliver(local("0f3c")).outcome is Outcome.RETRY
    assert not (tmp_path / "unmounted").exists()


def test_file_drop_refuses_a_message_id_that_could_escape_the_directory(tmp_path: Path) -> None:
    connector = FileDropConnector(RECIPIENT, tmp_path)
    for bad in ("../etc/passwd", ".hidden", "a/b", ""):
        assert connector.deliver(local(bad)).outcome is Outcome.REFUSED
    assert os.listdir(tmp_path) == []


def test_file_drop_staged_before_a_crash_is_published_exactly_once(tmp_path: Path) -> None:
    clock = Clock()
    drop = tmp_path / "drop"
    drop.mkdir()
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=clock)
    gw = dataclasses.replace(
        gw, settings=with_connector(gw.settings, RECIPIENT, kind="file", directory=str(drop))
    )
    first, second = receive(gw, 2)
    # Crash 1: staged, not yet recorded -> staged again and published once.
    connector = registry.connector_for(gw.settings, RECIPIENT)
    due = handover.state.due(gw.ledger, RECIPIENT, clock(), 10)
    assert connector.deliver(due[0]).outcome is Outcome.PLACED
    assert handover.deliver_pending(gw) == 2
    assert sorted(p.name for p in drop.iterdir()) == sorted([f"{first}.xml", f"{second}.xml"])
    assert status_of(gw, first) == status_of(gw, second) == Status.DELIVERED_LOCAL
    # The local system takes the first; the sweep records ACKNOWLEDGED for it only.
    (drop / f"{first}.xml").unlink()
    assert handover.sweep_taken(gw) == 1
    assert status_of(gw, first) == Status.ACKNOWLEDGED
    assert status_of(gw, second) == Status.DELIVERED_LOCAL
    # Crash 2: recorded DELIVERED_LOCAL but the rename never happened -> published by the sweep.
    os.replace(drop / f"{second}.xml", drop / staged_name(second))
    assert handover.sweep_taken(gw) == 0
    assert sorted(p.name for p in drop.iterdir()) == [f"{second}.xml"]
    assert (drop / f"{second}.xml").read_bytes() == gw.ledger.body_of(
        RECIPIENT, Direction.INBOUND, second
    )


def test_backoff_steps_grow_and_the_last_one_repeats(tmp_path: Path) -> None:
    delivery = make_gateway(tmp_path).settings.delivery
    steps = delivery.local_retry_backoff_s
    assert [delivery.local_backoff().wait_s(n) for n in range(1, len(steps) + 3)] == [
        *steps,
        steps[-1],
        steps[-1],
    ]
    assert list(steps) == sorted(steps)


def test_webhook_timeout_comes_from_the_authority_delivery_settings(tmp_path: Path) -> None:
    secret_path, _ = secret_file(tmp_path / "s")
    gw = make_gateway(tmp_path, authority_delivery={RECIPIENT: {"local_timeout_s": 3}})
    settings = with_connector(
        gw.settings,
        RECIPIENT,
        kind="webhook",
        url="http://127.0.0.1:1/",
        hmac_secret_file=str(secret_path),
    )
    connector = registry.connector_for(settings, RECIPIENT)
    assert isinstance(connector, WebhookConnector)
    assert connector._client.timeout == httpx.Timeout(3)
    connector.close()
