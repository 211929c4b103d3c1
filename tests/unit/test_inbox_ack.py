"""Pull-inbox moves are conditional: an acknowledged message is never reopened, and
a second acknowledgement answers 409 with nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.ledger.status import Direction, Status
from tests.policy_support import DUDLEY, memory_gateway, pump, submit

pytestmark = pytest.mark.timeout(120)


def test_an_inbox_read_racing_an_acknowledgement_never_reopens_it_and_a_second_ack_is_409(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), DUDLEY.name)
    pump(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    auth = {"Authorization": f"Bearer {keys.issue('336')}"}
    client = TestClient(create_app(gw, keys))
    read = gw.ledger.inbox
    raced: list[str] = []

    def inbox_then_acknowledged_elsewhere(*args: Any, **kwargs: Any) -> Any:
        # What another replica (or request) does between this read and its write.
        items = read(*args, **kwargs)
        if items and not raced:
            raced.append(items[0].message_id)
            assert gw.ledger.acknowledge_local("336", items[0].message_id)
        return items

    gw.ledger.inbox = inbox_then_acknowledged_elsewhere  # type: ignore[method-assign]
    served = client.get("/v1/inbox", headers=auth)
    assert served.status_code == 200, served.text
    (message_id,) = raced
    (record,) = gw.ledger.find(message_id=message_id, authority="336", direction=Direction.INBOUND)
    assert record.status == Status.ACKNOWLEDGED
    assert [h.status for h in record.history][-1] == Status.ACKNOWLEDGED

    again = client.post(f"/v1/inbox/{message_id}/ack", headers=auth)
    assert again.status_code == 409, again.text
    assert "already acknowledged" in again.text
    (after,) = gw.ledger.find(message_id=message_id, authority="336", direction=Direction.INBOUND)
    assert after.history == record.history
    assert client.post("/v1/inbox/no-such-message/ack", headers=auth).status_code == 404


def test_a_batch_acknowledgement_answers_each_id_as_the_single_one_would_and_moves_each_once(
    tmp_path: Path,
) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), DUDLEY.name)
    pump(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    auth = {"Authorization": f"Bearer {keys.issue('336')}"}
    client = TestClient(create_app(gw, keys))
    served = client.get("/v1/inbox", headers=auth)
    assert served.status_code == 200, served.text
    ids = [i["message_id"] for i in served.json()]
    assert len(ids) >= 2
    first, *rest = ids
    assert client.post(f"/v1/inbox/{first}/ack", headers=auth).status_code == 200

    answer = client.post(
        "/v1/inbox/ack", headers=auth, json={"message_ids": [*ids, "no-such-message", rest[0]]}
    )

    assert answer.status_code == 200, answer.text
    outcomes = {i["message_id"]: (i["outcome"], i["status"]) for i in answer.json()}
    assert [i["message_id"] for i in answer.json()] == [*ids, "no-such-message"]
    assert outcomes[first] == ("already_acknowledged", "ACKNOWLEDGED")
    assert {outcomes[m] for m in rest} == {("acknowledged", "ACKNOWLEDGED")}
    assert outcomes["no-such-message"] == ("not_in_inbox", None)
    for message_id in ids:
        (record,) = gw.ledger.find(
            message_id=message_id, authority="336", direction=Direction.INBOUND
        )
        assert record.status == Status.ACKNOWLEDGED
        assert [h.status for h in record.history].count(Status.ACKNOWLEDGED) == 1
    again = client.post("/v1/inbox/ack", headers=auth, json={"message_ids": rest})
    assert {i["outcome"] for i in again.json()} == {"already_acknowledged"}
    assert client.post("/v1/inbox/ack", headers=auth, json={"message_ids": []}).status_code == 422


def test_a_batch_acknowledgement_moves_only_the_callers_own_messages(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path, ("332", "336"))
    submit(gw, "332", "dudley-csv", DUDLEY.read_bytes(), DUDLEY.name)
    pump(gw)
    keys = ApiKeys(tmp_path / "api-keys.json")
    client = TestClient(create_app(gw, keys))
    theirs = client.get("/v1/inbox", headers={"Authorization": f"Bearer {keys.issue('336')}"})
    ids = [i["message_id"] for i in theirs.json()]
    assert ids

    answer = client.post(
        "/v1/inbox/ack",
        headers={"Authorization": f"Bearer {keys.issue('332')}"},
        json={"message_ids": ids},
    )

    assert {i["outcome"] for i in answer.json()} == {"not_in_inbox"}
    for message_id in ids:
        (record,) = gw.ledger.find(
            message_id=message_id, authority="336", direction=Direction.INBOUND
        )
        assert record.status == Status.DELIVERED_LOCAL
