"""Dead letters over the real RabbitMQ: a message that fails processing every time ends
in the parking queue, is listed (API and CLI) with its reason and attempts, and is
replayed with the same id and REPLAYED recorded; a sent message that never gets a
receipt is dead-lettered and replayed from the CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from local_systems import signed_inbound
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.cli import app as cli
from gateway.context import Gateway
from gateway.envelope.keys import ensure_identity
from gateway.errors import LedgerError
from gateway.feature import ApplyContext, Feature, Received
from gateway.features import standard
from gateway.ledger import audit
from gateway.ledger.status import Direction, Status
from gateway.ledger.tables import parked_replays
from gateway.model import MessageType
from gateway.settings import Settings, load_settings
from gateway.transport.base import Delivery, Disposition, Verdict
from gateway.transport.rabbit import RabbitTransport
from gateway.transport.topology import Topology
from tests.integration.gateways import ALL, make_settings, running, wait_for
from tests.integration.procs import write_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SENDER, RECIPIENT = "332", "336"
# Message ids whose processing fails every time, as a transient ledger failure would.
POISONED: set[str] = set()


def _poison(_ctx: ApplyContext, msg: Received) -> None:
    if msg.message_id in POISONED:
        raise LedgerError(f"simulated failure while recording {msg.message_id}")


# The receiver runs the standard features and this one, which fails on POISONED ids.
POISONED_FEATURES = (
    *standard(),
    Feature("poison", appliers={MessageType.ISSUE_LOG_ENTRY: _poison}),
)


def config_dir(
    tmp_path: Path, name: str, hosted: tuple[str, ...], vhost: str, gateway: dict[str, Any]
) -> Settings:
    """A config dir of its own (so that the CLI can be pointed at it) and its settings."""
    folder = write_config(
        tmp_path / name / "config",
        hosted=hosted,
        amqp_url=vhost,
        ledger_url=f"sqlite:///{tmp_path / name / 'ledger.db'}",
        keys_dir=tmp_path / "keys",
        port=1,
        gateway=gateway,
    )
    settings = load_settings(folder, env={})
    for code in ALL:
        ensure_identity(code, settings.directory.get(code).name, settings.keys_dir)
    return settings


def admin_client(gw: Gateway) -> tuple[TestClient, dict[str, str]]:
    keys = ApiKeys(gw.settings.api_keys_file)
    key = keys.issue(None, "admin")
    return TestClient(create_app(gw, keys)), {"Authorization": f"Bearer {key}"}


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_poison_message_is_parked_listed_with_reason_and_attempts_and_replayed_with_its_id(
    tmp_path: Path, vhost: str
) -> None:
    budget = 2
    receiver_settings = config_dir(
        tmp_path,
        "receiver",
        (RECIPIENT,),
        vhost,
        {
            "authority_delivery": {
                RECIPIENT: {"retry_budget": budget, "retry_backoff_s": [0.05, 0.1]}
            }
        },
    )
    sender_settings = make_settings(tmp_path, (SENDER,), f"sqlite:///{tmp_path / 's.db'}", vhost)
    with (
        running(receiver_settings, features=POISONED_FEATURES) as receiver,
        running(sender_settings) as sender,
    ):
        poison, good = signed_inbound(sender, SENDER, RECIPIENT, 2)
        POISONED.add(poison.message_id)
        try:
            sender.ledger.record([poison])
            wait_for(
                lambda: bool(receiver.transport.peek_parked(RECIPIENT)),
                timeout_s=30,
                what="the poison message parked",
            )
            sender.ledger.record([good])
            wait_for(
                lambda: bool(receiver.ledger.find(message_id=good.message_id)),
                what="the next message recorded (nothing held up)",
            )
            client, auth = admin_client(receiver)
            answer = client.get(f"/v1/admin/dead-letters?authority={RECIPIENT}", headers=auth)
            assert answer.status_code == 200, answer.text
            (listed,) = answer.json()
            assert listed["message_id"] == poison.message_id
            assert listed["kind"] == "PARKED"
            assert listed["attempts"] == budget + 1
            assert f"retry budget of {budget} spent" in listed["reason"]
            assert "simulated failure" in listed["reason"]
            assert (listed["sender"], listed["message_type"]) == (SENDER, "IssueLogEntry")

            config = str(receiver_settings.config_dir)
            (from_cli,) = json.loads(
                run_cli(
                    "dead-letters", "list", "--authority", RECIPIENT, "--json", "--config", config
                )
            )
            assert {k: from_cli[k] for k in ("message_id", "kind", "attempts", "reason")} == {
                k: listed[k] for k in ("message_id", "kind", "attempts", "reason")
            }
            # An authority's own key may not see the admin listing.
            own = ApiKeys(receiver.settings.api_keys_file).issue(RECIPIENT)
            assert (
                client.get(
                    "/v1/admin/dead-letters", headers={"Authorization": f"Bearer {own}"}
                ).status_code
                == 403
            )
        finally:
            POISONED.discard(poison.message_id)  # the cause is mended
        answer = client.post(
            f"/v1/admin/dead-letters/{poison.message_id}/replay?requested_by=Jo Admin",
            headers=auth,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "message_id": poison.message_id,
            "authority": RECIPIENT,
            "kind": "PARKED",
            "status": "REPLAYED",
        }
        wait_for(
            lambda: (
                [
                    r.status
                    for r in receiver.ledger.find(
                        message_id=poison.message_id, direction=Direction.INBOUND
                    )
                ]
                == [Status.VERIFIED]
            ),
            what="the replayed message recorded under its own id",
        )
        assert receiver.transport.peek_parked(RECIPIENT) == []
        wait_for(
            lambda: sender.ledger.find(message_id=poison.message_id)[0].status == Status.DELIVERED,
            what="the sender's receipt for the replayed message",
        )
        replay_again = client.post(
            f"/v1/admin/dead-letters/{poison.message_id}/replay", headers=auth
        )
        assert replay_again.status_code == 404
    with receiver.ledger.transaction() as conn:
        rows = conn.execute(select(parked_replays)).mappings().all()
    assert [(r["message_id"], r["status"], r["attempts"]) for r in rows] == [
        (poison.message_id, "REPLAYED", budget + 1)
    ]
    assert "Jo Admin" in rows[0]["actor"]
    replays = [e for e in audit.entries(receiver.ledger, limit=1000) if e.event.action == "REPLAY"]
    assert [(e.event.message_id, e.event.authority) for e in replays] == [
        (poison.message_id, RECIPIENT)
    ]
    assert "Jo Admin" in replays[0].event.actor
    assert audit.verify(receiver.ledger) == []


def test_sent_message_without_receipt_is_dead_lettered_listed_and_replayed_from_the_cli(
    tmp_path: Path, vhost: str
) -> None:
    sender_settings = config_dir(
        tmp_path,
        "sender",
        (SENDER,),
        vhost,
        {"delivery": {"receipt_deadline_s": 0.5, "resend_budget": 1}},
    )
    # The recipient takes its inbox but never records or answers anything (a
    # broken gateway): no receipt will come, and nothing waits in its inbox,
    # so re-sending is right and, after the budget, so is the dead letter.
    # (A message still waiting in the inbox is not re-sent: test_backlog_resend.)
    black_hole = RabbitTransport.from_settings(sender_settings)
    black_hole.declare([RECIPIENT])
    swallowed: list[str] = []
    stop_swallowing = threading.Event()

    def swallow(batch: Sequence[Delivery]) -> list[Disposition]:
        swallowed.extend(d.message_id or "?" for d in batch)
        return [Disposition(Verdict.ACK) for _ in batch]

    swallower = threading.Thread(
        target=lambda: black_hole.consume([Topology().inbox(RECIPIENT)], swallow, stop_swallowing)
    )
    swallower.start()
    with running(sender_settings) as sender:
        (message,) = signed_inbound(sender, SENDER, RECIPIENT, 1)
        sender.ledger.record([message])

        def record() -> Any:
            (found,) = sender.ledger.find(message_id=message.message_id)
            return found

        wait_for(lambda: record().status == Status.DEAD_LETTERED, what="dead-lettered")
        stop_swallowing.set()
        swallower.join(30)
        black_hole.close()
        assert record().attempts == 2
        assert swallowed == [message.message_id] * 2
        client, auth = admin_client(sender)
        (listed,) = client.get("/v1/admin/dead-letters", headers=auth).json()
        assert (listed["message_id"], listed["kind"], listed["attempts"]) == (
            message.message_id,
            "OUTBOUND",
            2,
        )
        assert "no receipt from 336 after 2 sends" in listed["reason"]

        out = run_cli(
            "dead-letters",
            "replay",
            message.message_id,
            "--by",
            "tester",
            "--config",
            str(sender_settings.config_dir),
        )
        assert f"{message.message_id} {SENDER} OUTBOUND: REPLAYED" in out

        def after_replay() -> list[Status]:
            history = [h.status for h in record().history]
            return history[history.index(Status.REPLAYED) :]

        wait_for(lambda: len(after_replay()) >= 2, what="the replayed message published again")
        # Published again with its send count reset (the budget starts over).
        assert after_replay()[:2] == [Status.REPLAYED, Status.SENT]
        replay_entry = next(h for h in record().history if h.status == Status.REPLAYED)
        assert "tester via CLI" in (replay_entry.reason or "")
        receiver_settings = make_settings(
            tmp_path, (RECIPIENT,), f"sqlite:///{tmp_path / 'r.db'}", vhost
        )
        with running(receiver_settings, features=POISONED_FEATURES) as receiver:
            wait_for(lambda: record().status == Status.DELIVERED, what="delivered at last")
            copies = receiver.ledger.find(
                message_id=message.message_id, direction=Direction.INBOUND
            )
        assert [c.status for c in copies] == [Status.VERIFIED]  # deduplicated
    assert record().message_id == message.message_id
