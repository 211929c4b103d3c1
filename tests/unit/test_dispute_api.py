"""The dispute and escalation API: parties act, the regional group reads its
stage, everyone else gets 404 exactly as for a dispute that does not exist."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.disputes import escalations, service
from gateway.ledger.status import Direction
from gateway.model import DisputeAction
from tests.dispute_helpers import Clock, drain, memory_gateway

pytestmark = pytest.mark.timeout(60)

NEW = {
    "case_ref": "DUD-2026-00417",
    "subject": "Who funds the housing options referral",
    "asked": "The residence LA funds the housing options work.",
    "raised_by": {
        "name": "Karen Hale",
        "role": "School nurse",
        "organisation": "Dudley Public Health",
        "line_manager": {"name": "Ruth Evans", "email": "ruth.evans@example.org"},
    },
    "against": {"name": "Imran Butt", "la_code": "336"},
    "consent_ref": "DUD-2026-00417/consent/2026-09-02",
}


class Api:
    def __init__(self, gw: Gateway) -> None:
        keys = ApiKeys(gw.settings.api_keys_file)
        self.keys = {
            "332": keys.issue("332"),
            "333": keys.issue("333"),
            "336": keys.issue("336"),
            "regional": keys.issue("regional"),
            "admin": keys.issue(None, "admin"),
        }
        self.client = TestClient(create_app(gw, keys))

    def call(
        self, who: str, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        headers = {**(headers or {}), "Authorization": f"Bearer {self.keys[who]}"}
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Gateway, Api, Clock]:
    clock = Clock()
    gw = memory_gateway(tmp_path, hosted=("332", "333", "336"), clock=clock)
    return gw, Api(gw), clock


def test_a_party_raises_and_the_other_party_sees_the_same_dispute(
    setup: tuple[Gateway, Api, Clock],
) -> None:
    gw, api, _ = setup
    made = api.call("332", "POST", "/v1/disputes", json=NEW)
    assert made.status_code == 201, made.text
    dispute = made.json()
    assert dispute["stage"] == "PRACTITIONERS" and dispute["view_of"] == "332"
    assert dispute["against"]["line_manager"]["name"] == "Wolverhampton Early Help Service Manager"
    drain(gw)
    theirs = api.call("336", "GET", f"/v1/disputes/{dispute['dispute_id']}")
    assert theirs.status_code == 200
    assert theirs.json()["history"] == dispute["history"]
    listed = api.call("336", "GET", "/v1/disputes", params={"stage": "PRACTITIONERS"}).json()
    assert [d["dispute_id"] for d in listed] == [dispute["dispute_id"]]


def test_another_authority_gets_404_like_a_dispute_that_does_not_exist(
    setup: tuple[Gateway, Api, Clock],
) -> None:
    gw, api, _ = setup
    dispute_id = api.call("332", "POST", "/v1/disputes", json=NEW).json()["dispute_id"]
    drain(gw)
    missing = api.call("333", "GET", "/v1/disputes/DSP-332-doesnotexist")
    for method, path, body in [
        ("GET", f"/v1/disputes/{dispute_id}", None),
        ("POST", f"/v1/disputes/{dispute_id}/comment", {"by": "X", "text": "hello"}),
        ("POST", f"/v1/disputes/{dispute_id}/escalate", {"by": "X", "reason": "why not"}),
        ("POST", f"/v1/disputes/{dispute_id}/resolve", {"by": "X", "outcome": "mine"}),
    ]:
        got = api.call("333", method, path, json=body)
        assert got.status_code == 404
        assert got.json()["error"] == missing.json()["error"] == "NotFoundError"
    assert api.call("333", "GET", "/v1/disputes").json() == []
    assert api.call("333", "GET", "/v1/disputes", params={"authority": "332"}).status_code == 404


def test_escalate_comment_and_resolve_through_the_api(setup: tuple[Gateway, Api, Clock]) -> None:
    gw, api, _ = setup
    dispute_id = api.call("332", "POST", "/v1/disputes", json=NEW).json()["dispute_id"]
    drain(gw)
    up = api.call(
        "336",
        "POST",
        f"/v1/disputes/{dispute_id}/escalate",
        json={"by": "Imran Butt", "reason": "the family moves next week"},
    )
    assert up.status_code == 200 and up.json()["stage"] == "COORDINATORS"
    said = api.call(
        "332", "POST", f"/v1/disputes/{dispute_id}/comment", json={"by": "K", "text": "ok"}
    )
    assert said.status_code == 200
    done = api.call(
        "332",
        "POST",
        f"/v1/disputes/{dispute_id}/resolve",
        json={"by": "Dudley CAF Co-ordinator", "outcome": "Split funding 50/50."},
    )
    assert done.status_code == 200 and done.json()["resolved"] and done.json()["deadline"] is None
    drain(gw)
    again = api.call(
        "336", "POST", f"/v1/disputes/{dispute_id}/resolve", json={"by": "I", "outcome": "x"}
    )
    assert again.status_code == 422 and again.json()["rule"] == "dispute.resolved"
    # Who closed it, when and how: what the one who came second needs to know.
    assert "resolved by Dudley CAF Co-ordinator at 20" in again.json()["detail"]
    assert "(Split funding 50/50.)" in again.json()["detail"]
    final = api.call("336", "GET", f"/v1/disputes/{dispute_id}").json()
    assert final["resolved"] and final["outcome"] == "Split funding 50/50."


def test_the_regional_group_sees_only_disputes_that_reached_its_stage(
    setup: tuple[Gateway, Api, Clock],
) -> None:
    gw, api, _ = setup
    first = api.call("332", "POST", "/v1/disputes", json=NEW).json()["dispute_id"]
    second = api.call("332", "POST", "/v1/disputes", json=NEW).json()["dispute_id"]
    for step in ("now", "still no answer"):
        api.call("332", "POST", f"/v1/disputes/{first}/escalate", json={"by": "K", "reason": step})
        drain(gw)
    assert api.call("regional", "GET", f"/v1/disputes/{second}").status_code == 404
    seen = api.call("regional", "GET", f"/v1/disputes/{first}")
    assert seen.status_code == 200 and seen.json()["stage"] == "REGIONAL_GROUP"
    refused = api.call(
        "regional", "POST", f"/v1/disputes/{first}/resolve", json={"by": "R", "outcome": "x"}
    )
    assert refused.status_code == 422
    (esc,) = api.call("regional", "GET", "/v1/escalations").json()
    assert esc["addressee_role"] == "REGIONAL_GROUP" and esc["dispute_id"] == first
    assert "<Dispute>" in esc["content"] or ":Dispute" in esc["content"]
    admin = api.call("admin", "GET", "/v1/disputes", params={"authority": "regional"}).json()
    assert [d["dispute_id"] for d in admin] == [first]


def test_line_managers_pull_and_acknowledge_escalations(setup: tuple[Gateway, Api, Clock]) -> None:
    gw, api, _ = setup
    dispute_id = api.call("332", "POST", "/v1/disputes", json=NEW).json()["dispute_id"]
    for _ in range(3):
        api.call(
            "332", "POST", f"/v1/disputes/{dispute_id}/escalate", json={"by": "K", "reason": "r"}
        )
        drain(gw)
    pulled = api.call("332", "GET", "/v1/escalations").json()
    line = [e for e in pulled if e["addressee_role"] == "LINE_MANAGER"]
    assert [e["addressee_name"] for e in line] == ["Ruth Evans"]
    assert all(e["status"] == "DELIVERED" for e in pulled)
    ack = api.call(
        "332", "POST", f"/v1/escalations/{line[0]['escalation_id']}/ack", json={"by": "Ruth Evans"}
    )
    assert ack.status_code == 200 and ack.json()["status"] == "ACKNOWLEDGED"
    assert (
        api.call(
            "336", "POST", f"/v1/escalations/{line[0]['escalation_id']}/ack", json={"by": "x"}
        ).status_code
        == 404
    )
    left = {e["escalation_id"] for e in api.call("332", "GET", "/v1/escalations").json()}
    assert line[0]["escalation_id"] not in left
    theirs = api.call("336", "GET", "/v1/escalations").json()
    assert [e["addressee_name"] for e in theirs if e["addressee_role"] == "LINE_MANAGER"] == [
        "Wolverhampton Early Help Service Manager"
    ]


def test_two_escalations_of_one_dispute_at_once_climb_one_stage(
    setup: tuple[Gateway, Api, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A double click on "escalate": the second request waited for the first's lock and
    then climbed again from where the first left it, skipping a stage and sending a
    second round of escalation notices. It is refused: the dispute left the stage the
    caller saw."""
    gw, api, _ = setup
    dispute_id = api.call("332", "POST", "/v1/disputes", json=NEW).json()["dispute_id"]
    drain(gw)
    path = f"/v1/disputes/{dispute_id}/escalate"
    real = service._open_for_action
    seconds: list[threading.Thread] = []
    answers: list[Any] = []

    def click_again() -> None:
        answers.append(api.call("332", "POST", path, json={"by": "K", "reason": "again"}))

    def paused(*args: Any, **kwargs: Any) -> Any:
        stored = real(*args, **kwargs)
        if not seconds:  # the first request, holding the dispute's lock: click again
            seconds.append(threading.Thread(target=click_again))
            seconds[0].start()
            seconds[0].join(1.0)  # ends at once without the lock, times out with it
        return stored

    monkeypatch.setattr(service, "_open_for_action", paused)
    first = api.call("332", "POST", path, json={"by": "K", "reason": "urgent"})
    seconds[0].join(30)
    [second] = answers
    assert first.status_code == 200 and first.json()["stage"] == "COORDINATORS"
    assert second.status_code == 422 and second.json()["rule"] == "dispute.moved"
    view = service.get_dispute(gw.kit, "332", dispute_id)
    assert view.stage.value == "COORDINATORS"
    assert sum(e.action is DisputeAction.ESCALATED for e in view.history) == 1
    drain(gw)
    told = [
        e
        for o in ("332", "336", "regional")
        for e in escalations.for_dispute(gw.ledger, o, dispute_id)
    ]
    assert len(told) == 2  # the two CAF coordinators, once each


def test_an_escalation_retried_after_the_dispute_moved_on_is_refused_not_repeated(
    setup: tuple[Gateway, Api, Clock],
) -> None:
    _, api, _ = setup
    dispute_id = api.call("332", "POST", "/v1/disputes", json=NEW).json()["dispute_id"]
    path = f"/v1/disputes/{dispute_id}/escalate"
    asked = {"by": "K", "reason": "urgent", "from_stage": "PRACTITIONERS"}
    assert api.call("332", "POST", path, json=asked).json()["stage"] == "COORDINATORS"
    retried = api.call("332", "POST", path, json=asked)
    assert retried.status_code == 422 and retried.json()["rule"] == "dispute.moved"
    assert "COORDINATORS" in retried.json()["detail"]
    onwards = {"by": "K", "reason": "still nothing", "from_stage": "COORDINATORS"}
    assert api.call("332", "POST", path, json=onwards).json()["stage"] == "REGIONAL_GROUP"


def test_a_dispute_raised_again_with_the_same_idempotency_key_is_raised_once(
    setup: tuple[Gateway, Api, Clock],
) -> None:
    """A retry after a lost answer raised a second dispute against the same practitioner
    (and sent the other party a second one): the key was ignored off POST /v1/messages."""
    gw, api, _ = setup
    key = {"Idempotency-Key": "raise-2026-11-30-0001"}
    first = api.call("332", "POST", "/v1/disputes", json=NEW, headers=key)
    again = api.call("332", "POST", "/v1/disputes", json=NEW, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert [d["dispute_id"] for d in api.call("332", "GET", "/v1/disputes").json()] == [
        first.json()["dispute_id"]
    ]
    other = api.call("332", "POST", "/v1/disputes", json={**NEW, "subject": "x"}, headers=key)
    assert other.status_code == 409
    drain(gw)
    assert len(api.call("336", "GET", "/v1/disputes").json()) == 1


def _sent_disputes(gw: Gateway, authority: str) -> list[str]:
    """The signed Dispute messages ``authority`` sent its counterpart, oldest first."""
    found = gw.ledger.find(authority=authority, direction=Direction.OUTBOUND, limit=500)
    return [r.message_id for r in reversed(found) if r.message_type == "Dispute"]


def test_a_comment_retried_with_the_same_idempotency_key_is_added_once(
    setup: tuple[Gateway, Api, Clock],
) -> None:
    """A retry after a lost answer, a second or more later, added the comment again
    and sent the other party a second signed Dispute: the key was not honoured here."""
    gw, api, clock = setup
    dispute_id = api.call("332", "POST", "/v1/disputes", json=NEW).json()["dispute_id"]
    drain(gw)
    path = f"/v1/disputes/{dispute_id}/comment"
    said = {"by": "Karen Hale", "text": "A TAC meeting is proposed for Friday"}
    key = {"Idempotency-Key": "comment-2026-11-30-0001"}
    first = api.call("332", "POST", path, json=said, headers=key)
    clock.advance(5)
    again = api.call("332", "POST", path, json=said, headers=key)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = api.call("332", "POST", path, json={**said, "text": "another"}, headers=key)
    assert other.status_code == 409 and other.json()["error"] == "ConflictError"
    drain(gw)
    assert len(_sent_disputes(gw, "332")) == 2  # the dispute raised, the comment once
    for party in ("332", "336"):
        history = api.call(party, "GET", f"/v1/disputes/{dispute_id}").json()["history"]
        assert [e["text"] for e in history if e["action"] == "COMMENTED"] == [said["text"]]
