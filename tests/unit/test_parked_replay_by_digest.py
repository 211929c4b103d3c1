"""A parked message is replayed by its id and digest, never with every message under its id.

A message id is whatever its publisher set: another member's message, or a forgery under
a genuine id, can be parked under the same id. Before, a replay by the id moved them all
back to the inbox, and noted REPLAYED on every row under it."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from policy_support import settings_for
from retention_support import Clock, region
from typer.testing import CliRunner

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.cli import app
from gateway.context import Gateway
from gateway.errors import BrokerUnavailableError, ConflictError
from gateway.ledger import audit
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from gateway.services import dead_letters
from gateway.transport.base import (
    Delivery,
    Disposition,
    OutgoingMessage,
    Verdict,
    routing_key,
)
from gateway.transport.memory import MemoryTransport
from gateway.transport.topology import Topology

pytestmark = pytest.mark.timeout(60)

ID = "parked-under-one-id"
DUDLEYS = b"<Envelope>Dudley's message</Envelope>"
SANDWELLS = b"<Envelope>Sandwell's message, under the same id</Envelope>"


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _parked(gw: Gateway, *copies: tuple[str, bytes], filler: int = 0) -> MemoryTransport:
    """``filler`` other messages, then each (sender, body) under ``ID``, published to 336
    and parked by its consumer."""
    transport = gw.transport
    assert isinstance(transport, MemoryTransport)
    ahead = [
        OutgoingMessage(routing_key("336", "Assessment", "332"), b"%d" % n, f"f-{n}", {})
        for n in range(filler)
    ]
    transport.publish(
        ahead
        + [
            OutgoingMessage(routing_key("336", "Assessment", sender), body, ID, {})
            for sender, body in copies
        ]
    )
    total = filler + len(copies)
    stop = threading.Event()
    parked = 0

    def park(batch: Sequence[Delivery]) -> list[Disposition]:
        nonlocal parked
        parked += len(batch)
        if parked >= total:
            stop.set()
        return [Disposition(Verdict.PARK, "poison for the test") for _ in batch]

    transport.consume([Topology().inbox("336")], park, stop)
    assert len(transport.peek_parked("336", total + 1)) == total
    return transport


def _gateway(tmp_path: Path) -> Gateway:
    return region(tmp_path, Clock.starting_now(), settings_for(tmp_path))


def _in_inbox(transport: MemoryTransport) -> list[bytes]:
    """What waits in 336's inbox, taken off it."""
    taken: list[bytes] = []
    stop = threading.Event()

    def take(batch: Sequence[Delivery]) -> list[Disposition]:
        taken.extend(d.body for d in batch)
        stop.set()
        return [Disposition(Verdict.ACK) for _ in batch]

    if transport.inbox_states(["336"])["336"].waiting:
        transport.consume([Topology().inbox("336")], take, stop)
    return taken


def test_a_replay_by_id_alone_is_refused_where_different_messages_are_parked_under_it(
    tmp_path: Path,
) -> None:
    gw = _gateway(tmp_path)
    transport = _parked(gw, ("332", DUDLEYS), ("333", SANDWELLS))
    with pytest.raises(ConflictError) as refused:
        dead_letters.replay(gw, "336", ID, "Jo Admin")
    said = str(refused.value)
    assert f"parked from 332 (digest {_sha(DUDLEYS)})" in said
    assert f"parked from 333 (digest {_sha(SANDWELLS)})" in said
    assert "Replay one by its digest" in said
    assert len(transport.peek_parked("336")) == 2  # nothing moved
    assert [e for e in audit.entries(gw.ledger, "336") if e.event.action == "REPLAY"] == []


def test_a_replay_by_id_and_digest_moves_only_that_copy_back(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)
    transport = _parked(gw, ("332", DUDLEYS), ("333", SANDWELLS))
    listed = dead_letters.list_dead_letters(gw, "336")
    assert {(d.sender, d.digest) for d in listed} == {
        ("332", _sha(DUDLEYS)),
        ("333", _sha(SANDWELLS)),
    }
    dead_letters.replay(gw, "336", ID, "Jo Admin", digest=_sha(SANDWELLS))
    assert [d.body for d in transport.peek_parked("336")] == [DUDLEYS]
    assert _in_inbox(transport) == [SANDWELLS]
    (entry,) = [e for e in audit.entries(gw.ledger, "336") if e.event.action == "REPLAY"]
    assert (entry.event.counterparty, entry.event.digest) == ("333", _sha(SANDWELLS))


def test_the_same_message_parked_twice_is_replayed_by_its_id(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)
    transport = _parked(gw, ("332", DUDLEYS), ("332", DUDLEYS))
    dead_letters.replay(gw, "336", ID, "Jo Admin")
    assert transport.peek_parked("336") == []
    assert _in_inbox(transport) == [DUDLEYS, DUDLEYS]  # the receiver drops the repeat


def test_replaying_every_dead_letter_replays_each_parked_copy_by_its_digest(
    tmp_path: Path,
) -> None:
    gw = _gateway(tmp_path)
    transport = _parked(gw, ("332", DUDLEYS), ("333", SANDWELLS))
    done = dead_letters.replay_all(gw, "336", "Jo Admin")
    assert len(done) == 2
    assert transport.peek_parked("336") == []
    assert sorted(_in_inbox(transport)) == sorted([DUDLEYS, SANDWELLS])


def test_the_admin_api_names_the_copies_and_replays_the_one_asked_for(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)
    transport = _parked(gw, ("332", DUDLEYS), ("333", SANDWELLS))
    keys = ApiKeys(tmp_path / "api-keys.json")
    client = TestClient(create_app(gw, keys))
    admin = {"Authorization": "Bearer " + keys.issue(None, "admin")}
    listed = client.get("/v1/admin/dead-letters?authority=336", headers=admin).json()
    assert {d["digest"] for d in listed} == {_sha(DUDLEYS), _sha(SANDWELLS)}
    path = f"/v1/admin/dead-letters/{ID}/replay?authority=336"
    refused = client.post(path, headers=admin)
    assert refused.status_code == 409, refused.text
    assert _sha(SANDWELLS) in refused.json()["detail"]
    many = client.post(
        "/v1/admin/dead-letters/replay",
        json={"items": [{"authority": "336", "message_id": ID}]},
        headers=admin,
    )
    assert many.status_code == 200 and many.json()[0]["replayed"] is False
    assert "Replay one by its digest" in many.json()[0]["detail"]
    chosen = client.post(
        "/v1/admin/dead-letters/replay",
        json={"items": [{"authority": "336", "message_id": ID, "digest": _sha(SANDWELLS)}]},
        headers=admin,
    )
    assert chosen.json()[0]["replayed"] is True, chosen.text
    assert [d.body for d in transport.peek_parked("336")] == [DUDLEYS]
    one = client.post(f"{path}&digest={_sha(DUDLEYS)}", headers=admin)
    assert one.status_code == 200, one.text
    assert transport.peek_parked("336") == []


def _row(gw: Gateway, sender: str, body: bytes, status: Status, direction: Direction) -> int:
    """A ledger row of 336's under ``ID`` with ``body``'s digest, now at ``status``."""
    outbound = direction is Direction.OUTBOUND
    (pk,) = gw.ledger.record(
        [
            NewMessage(
                message_id=ID,
                direction=direction,
                authority="336",
                sender=sender,
                recipient="334" if outbound else "336",
                message_type="Assessment",
                correlation_id="thread-1",
                legal_basis="CONSENT",
                statuses=((Status.SENT if outbound else Status.VERIFIED, None),),
                body=body,
                digest=_sha(body),
            )
        ]
    )
    gw.ledger.transition([pk], status, "for the test")
    return pk


def _statuses(gw: Gateway) -> dict[tuple[str, str], tuple[str, list[str]]]:
    return {
        (r.direction.value, r.sender): (r.status.value, [h.status.value for h in r.history])
        for r in gw.ledger.find(message_id=ID, authority="336")
    }


def test_copies_parked_past_the_first_thousand_are_still_told_apart(tmp_path: Path) -> None:
    gw = _gateway(tmp_path)
    transport = _parked(gw, ("332", DUDLEYS), ("333", SANDWELLS), filler=dead_letters.PEEK_LIMIT)
    with pytest.raises(ConflictError, match="2 different messages"):
        dead_letters.replay(gw, "336", ID, "Jo Admin")
    dead_letters.replay(gw, "336", ID, "Jo Admin", digest=_sha(DUDLEYS))
    assert [d.body for d in transport.parked_with("336", ID)] == [SANDWELLS]


def test_a_local_dead_letter_and_a_parked_copy_under_one_id_are_told_apart(
    tmp_path: Path,
) -> None:
    gw = _gateway(tmp_path)
    _row(gw, "333", SANDWELLS, Status.DEAD_LETTERED, Direction.INBOUND)
    transport = _parked(gw, ("332", DUDLEYS))
    with pytest.raises(ConflictError) as refused:
        dead_letters.replay(gw, "336", ID, "Jo Admin")
    assert f"a local dead letter from 333 (digest {_sha(SANDWELLS)})" in str(refused.value)
    assert f"parked from 332 (digest {_sha(DUDLEYS)})" in str(refused.value)
    done = dead_letters.replay(gw, "336", ID, "Jo Admin", digest=_sha(DUDLEYS))
    assert done.kind is dead_letters.DeadLetterKind.PARKED
    assert transport.parked_with("336", ID) == []
    assert _statuses(gw)[("INBOUND", "333")][0] == "DEAD_LETTERED"  # still waits


@pytest.mark.parametrize(
    ("body", "replayed", "waits"),
    [
        (SANDWELLS, ("INBOUND", "333"), ("OUTBOUND", "336")),
        (DUDLEYS, ("OUTBOUND", "336"), ("INBOUND", "333")),
    ],
)
def test_of_two_ledger_dead_letters_under_one_id_the_digest_picks_one(
    tmp_path: Path, body: bytes, replayed: tuple[str, str], waits: tuple[str, str]
) -> None:
    gw = _gateway(tmp_path)
    _row(gw, "336", DUDLEYS, Status.DEAD_LETTERED, Direction.OUTBOUND)
    _row(gw, "333", SANDWELLS, Status.DEAD_LETTERED, Direction.INBOUND)
    with pytest.raises(ConflictError, match="an outbound dead letter to 334"):
        dead_letters.replay(gw, "336", ID, "Jo Admin")
    dead_letters.replay(gw, "336", ID, "Jo Admin", digest=_sha(body))
    statuses = _statuses(gw)
    assert statuses[replayed][0] == "REPLAYED"
    assert statuses[waits][0] == "DEAD_LETTERED"


def test_a_parked_copys_replay_is_noted_only_on_the_rows_with_its_digest(
    tmp_path: Path,
) -> None:
    gw = _gateway(tmp_path)
    _row(gw, "332", DUDLEYS, Status.QUARANTINED, Direction.INBOUND)
    _row(gw, "333", SANDWELLS, Status.QUARANTINED, Direction.INBOUND)
    _parked(gw, ("332", DUDLEYS), ("333", SANDWELLS))
    dead_letters.replay(gw, "336", ID, "Jo Admin", digest=_sha(SANDWELLS))
    statuses = _statuses(gw)
    assert "REPLAYED" in statuses[("INBOUND", "333")][1]
    assert "REPLAYED" not in statuses[("INBOUND", "332")][1]


def test_a_copy_parked_under_the_id_after_the_look_stays_parked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = _gateway(tmp_path)
    transport = _parked(gw, ("332", DUDLEYS), ("333", SANDWELLS))
    first_only = transport.parked_with("336", ID)[:1]
    monkeypatch.setattr(transport, "parked_with", lambda _code, _id: first_only)
    dead_letters.replay(gw, "336", ID, "Jo Admin")  # one message seen: replayed by its digest
    assert [d.body for d in transport.peek_parked("336")] == [SANDWELLS]


def test_a_ledger_dead_letter_named_by_its_digest_is_replayed_without_the_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = _gateway(tmp_path)
    _row(gw, "333", SANDWELLS, Status.DEAD_LETTERED, Direction.INBOUND)

    def broker_down(_code: str, _id: str) -> list[Delivery]:
        raise BrokerUnavailableError("the broker is down for the test")

    monkeypatch.setattr(gw.transport, "parked_with", broker_down)
    assert dead_letters.authority_of(gw, ID, _sha(SANDWELLS)) == "336"
    done = dead_letters.replay(gw, "336", ID, "Jo Admin", digest=_sha(SANDWELLS).upper())
    assert done.kind is dead_letters.DeadLetterKind.LOCAL


def test_a_parked_message_published_without_an_id_is_replayed_as_listed(
    tmp_path: Path,
) -> None:
    gw = _gateway(tmp_path)
    transport = gw.transport
    assert isinstance(transport, MemoryTransport)
    transport.publish([OutgoingMessage(routing_key("336", "Assessment", "332"), DUDLEYS, "", {})])
    stop = threading.Event()

    def park(batch: Sequence[Delivery]) -> list[Disposition]:
        stop.set()
        return [Disposition(Verdict.PARK, "no id") for _ in batch]

    transport.consume([Topology().inbox("336")], park, stop)
    (listed,) = dead_letters.list_dead_letters(gw, "336")
    assert listed.message_id == "?"
    dead_letters.replay(gw, "336", "?", "Jo Admin", digest=listed.digest)
    assert transport.peek_parked("336") == []


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["some-id", "--digest", "abc123"], "a digest is 64 hexadecimal characters"),
        (["--all", "--digest", "a" * 64], "--digest names one dead letter, not with --all"),
    ],
)
def test_the_cli_refuses_a_digest_it_cannot_use_before_touching_anything(
    tmp_path: Path, args: list[str], said: str
) -> None:
    # No configuration at that path: the refusal comes before any gateway is built.
    line = ["dead-letters", "replay", *args, "--config", str(tmp_path / "no-config")]
    result = CliRunner().invoke(app, line)
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())
