"""A message looked up by its id is found by the message-id index, not by reading
every message of the authority (or of the ledger): local systems ask the status
of each message they sent (``GET /v1/messages/{id}``), and a submitted envelope's
id is checked for reuse, for every message (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from policy_support import DUDLEY, memory_gateway, pump, submit
from sqlalchemy import insert, select
from support.sql import captured, plans

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.ledger.status import Direction
from gateway.ledger.tables import EITHER_DIRECTION, messages
from gateway.services.outbound import knowledge
from gateway.transport.topology import REGIONAL

pytestmark = pytest.mark.timeout(120)

INDEX = "INDEX ix_messages_message_id (direction=? AND authority=? AND message_id=?)"


@pytest.fixture
def gw(tmp_path: Path) -> Gateway:
    gateway = memory_gateway(tmp_path)
    submit(gateway, "332", "dudley-csv", DUDLEY.read_bytes(), "register.csv")
    return gateway


def _sent(gw: Gateway) -> str:
    (first, *_) = gw.ledger.find(authority="332", direction=Direction.OUTBOUND, limit=1)
    return first.message_id


def _message_reads(gw: Gateway, statements: list[tuple[str, object]]) -> dict[str, str]:
    found = plans(gw.ledger.engine, statements)  # type: ignore[arg-type]
    return {sql: plan for sql, plan in found.items() if "FROM messages" in sql}


def test_a_message_of_an_authority_is_found_by_its_id_in_either_direction(gw: Gateway) -> None:
    message_id = _sent(gw)
    with captured(gw.ledger.engine) as statements:
        (found,) = gw.ledger.find(message_id=message_id, authority="332", with_history=False)
        with gw.ledger.transaction() as conn:
            assert knowledge.id_used(conn, "332", message_id)
            assert not knowledge.id_used(conn, "336", message_id)
    assert found.message_id == message_id
    reads = _message_reads(gw, statements)
    assert len(reads) == 2
    for sql, plan in reads.items():
        assert INDEX in plan, (sql, plan)


def test_a_local_systems_status_look_up_is_found_by_the_message_id_index(
    gw: Gateway, tmp_path: Path
) -> None:
    keys = ApiKeys(tmp_path / "api-keys.json")
    dudley = {"Authorization": "Bearer " + keys.issue("332", holder="Dudley case system")}
    sandwell = {"Authorization": "Bearer " + keys.issue("333", holder="Sandwell case system")}
    client = TestClient(create_app(gw, keys))
    message_id = _sent(gw)
    with captured(gw.ledger.engine) as statements:
        answer = client.get(f"/v1/messages/{message_id}", headers=dudley)
    assert answer.status_code == 200, answer.text
    assert {m["authority"] for m in answer.json()} == {"332"}
    (plan,) = [p for sql, p in _message_reads(gw, statements).items() if "message_id =" in sql]
    assert INDEX in plan, plan
    # Another authority's system is told nothing of it.
    assert client.get(f"/v1/messages/{message_id}", headers=sandwell).status_code == 404
    # The dashboard's message detail, for the same local authority's user.
    with captured(gw.ledger.engine) as statements:
        detail = client.get(f"/v1/dashboard/messages/{message_id}", headers=dudley)
    assert detail.status_code == 200, detail.text
    (plan,) = [p for sql, p in _message_reads(gw, statements).items() if "message_id =" in sql]
    assert INDEX in plan, plan


def test_an_administrators_status_look_up_finds_every_copy_by_the_index(
    gw: Gateway, tmp_path: Path
) -> None:
    # An administrator's look-up named no authority and read the whole ledger for one
    # id; it names every authority a row may be of (the region's and the regional
    # group), each searched by the index, and still finds every copy.
    keys = ApiKeys(tmp_path / "api-keys.json")
    admin = {"Authorization": "Bearer " + keys.issue(None, "admin", holder="Gateway admin")}
    regional = {"Authorization": "Bearer " + keys.issue(REGIONAL, holder="Regional group")}
    sandwell = {"Authorization": "Bearer " + keys.issue("333", holder="Sandwell case system")}
    client = TestClient(create_app(gw, keys))
    message_id = _sent(gw)
    pump(gw)  # Dudley's records received by the other hosted authorities
    # A copy the regional group received under the same id (a dispute's, say).
    with gw.ledger.transaction() as conn:
        (row,) = conn.execute(
            select(messages).where(
                EITHER_DIRECTION, messages.c.authority == "332", messages.c.message_id == message_id
            )
        ).mappings()
        conn.execute(
            insert(messages),
            {
                **{k: v for k, v in row.items() if k != "id"},
                "direction": Direction.INBOUND.value,
                "authority": REGIONAL,
            },
        )
    held_by = {r.authority for r in gw.ledger.find(message_id=message_id, limit=50)}
    assert {"332", REGIONAL} <= held_by
    for path in (f"/v1/messages/{message_id}", f"/v1/dashboard/messages/{message_id}"):
        with captured(gw.ledger.engine) as statements:
            answer = client.get(path, headers=admin)
        assert answer.status_code == 200, answer.text
        reads = _message_reads(gw, statements)
        (plan,) = [p for sql, p in reads.items() if "message_id =" in sql]
        assert INDEX in plan, plan
    found = client.get(f"/v1/messages/{message_id}", headers=admin).json()
    assert {m["authority"] for m in found} == held_by
    # The regional group's key sees its own copy only; another authority's, none.
    found = client.get(f"/v1/messages/{message_id}", headers=regional).json()
    assert {m["authority"] for m in found} == {REGIONAL}
    if "333" not in held_by:
        assert client.get(f"/v1/messages/{message_id}", headers=sandwell).status_code == 404
