"""Failures that show: a failing local handover, quarantined and rejected messages turn the
authority's card red, count as needing a human, and are counted in /metrics; a human can
dismiss what was dealt with (who and why recorded, audited)."""

from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from local_systems import WebhookReceiver, secret_file, signed_inbound, with_connector
from ops_helpers import Clock, FakeProbe, make_gateway, put
from sqlalchemy import event
from support.sql import captured, plans

from gateway import metrics
from gateway.api.app import create_app
from gateway.api.auth import ApiKeys, Caller
from gateway.api.routes.ops import OpsState
from gateway.connectors import handover
from gateway.context import Gateway
from gateway.dashboard.view import build_view
from gateway.ledger import audit
from gateway.ledger.status import Direction, Status
from gateway.ops import attention
from gateway.services import receiving
from gateway.transport.base import Delivery
from tests.unit.test_metrics import labels, parse, scrape

pytestmark = pytest.mark.timeout(60)

SENDER, RECIPIENT = "332", "336"
ADMIN = Caller(None, "admin")


def receive(gw: Gateway, count: int) -> list[str]:
    sent = signed_inbound(gw, SENDER, RECIPIENT, count)
    receiving.handle_batch(
        gw,
        [
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
        ],
    )
    return [m.message_id for m in sent]


def webhook_gateway(tmp_path: Path, url: str, clock: Clock) -> Gateway:
    gw = make_gateway(tmp_path, hosted=(SENDER, RECIPIENT), clock=clock)
    settings = with_connector(
        gw.settings,
        RECIPIENT,
        kind="webhook",
        url=url,
        hmac_secret_file=str(tmp_path / "secrets" / "webhook.secret"),
    )
    return dataclasses.replace(gw, settings=settings)


def test_a_connector_that_cannot_be_used_is_a_failing_handover_too(tmp_path: Path) -> None:
    clock = Clock()
    gw = webhook_gateway(tmp_path, "http://127.0.0.1:9/hook", clock)  # no secret file written
    receive(gw, 2)
    assert handover.deliver_pending(gw) == 0
    _, panel = card(gw, RECIPIENT)
    assert panel.alert and panel.handover.failing
    assert "connector unusable" in (panel.handover.last_error or "")
    assert "webhook secret file" in (panel.handover.last_error or "")
    assert scrape(gw)[("cafgw_handover_failures_total", labels(authority=RECIPIENT))] == 1


def card(gw: Gateway, code: str):  # type: ignore[no-untyped-def]
    view = build_view(gw, ADMIN, FakeProbe())
    return view, next(a for a in view.authorities if a.code == code)


def test_a_webhook_that_keeps_failing_turns_the_card_red_needs_a_human_and_is_counted(
    tmp_path: Path,
) -> None:
    clock = Clock()
    _, secret = secret_file(tmp_path / "secrets")
    with WebhookReceiver(secret) as server:
        gw = webhook_gateway(tmp_path, server.url, clock)
        registry = metrics.build_registry(gw, FakeProbe())
        server.fail_with(503)
        ids = receive(gw, 3)
        assert handover.deliver_pending(gw) == 0
        clock.advance(60)
        assert handover.deliver_pending(gw) == 0

        view, panel = card(gw, RECIPIENT)
        assert panel.alert
        assert panel.handover.failing and panel.handover.waiting == 3
        assert panel.handover.failing_since is not None
        assert "503" in (panel.handover.last_error or "")
        assert panel.needs_human == {"HANDOVER_FAILING": 1}
        assert any("handover failing" in text for text in panel.alerts)
        (line,) = [m for m in view.attention if m.need == "HANDOVER_FAILING"]
        assert line.message_id == ids[0] and "handover failed" in (line.reason or "")
        got = parse(metrics.render(registry))
        assert got[("cafgw_handover_failures_total", labels(authority=RECIPIENT))] == 2
        assert got[("cafgw_handover_failing", labels(authority=RECIPIENT))] == 1
        need = labels(authority=RECIPIENT, need="HANDOVER_FAILING")
        assert got[("cafgw_needs_human", need)] == 1

        server.fail_with(None)
        clock.advance(120)
        assert handover.deliver_pending(gw) == 3
        _, panel = card(gw, RECIPIENT)
        assert not panel.alert and not panel.handover.failing and panel.handover.waiting == 0
        got = parse(metrics.render(registry))
        assert got[("cafgw_handover_failures_total", labels(authority=RECIPIENT))] == 2
        assert got[("cafgw_needs_human", need)] == 0


@pytest.mark.parametrize(
    ("statuses", "direction", "need"),
    [
        ((Status.RECEIVED, Status.QUARANTINED), Direction.INBOUND, "QUARANTINED"),
        ((Status.ACCEPTED, Status.REJECTED), Direction.OUTBOUND, "REJECTED"),
        (
            (Status.RECEIVED, Status.VERIFIED, Status.UNDELIVERABLE),
            Direction.INBOUND,
            "UNDELIVERABLE",
        ),
    ],
)
def test_quarantined_rejected_and_undeliverable_messages_turn_the_card_red(
    tmp_path: Path, statuses: tuple[Status, ...], direction: Direction, need: str
) -> None:
    gw = make_gateway(tmp_path)
    put(gw, "336", "332", *statuses, direction=direction, reason="signature does not verify")
    _, panel = card(gw, "336")
    assert panel.alert
    assert panel.needs_human == {need: 1}
    _, other = card(gw, "332")
    assert not other.alert
    assert scrape(gw)[("cafgw_needs_human", labels(authority="336", need=need))] == 1


def test_card_counts_agree_with_the_lists_they_summarise_and_leave_receipts_out(
    tmp_path: Path,
) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock)
    for _ in range(2):
        _, pk = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED)
        gw.ledger.mark_sent([pk], clock.now)
    for _ in range(3):  # receipts the gateway sent: they wait for nothing
        put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT, message_type="Receipt")
    clock.advance(1)
    view, panel = card(gw, "332")
    assert panel.awaiting_receipt == view.awaiting_receipt_total == len(view.awaiting_receipt) == 2
    assert panel.receipts_overdue == 2
    assert all(m.message_type != "Receipt" for m in view.recent)
    assert len(view.recent) == 2


def test_a_rejected_record_is_summarised_on_one_line_with_its_fields(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    put(
        gw,
        "332",
        "332",
        Status.ACCEPTED,
        Status.REJECTED,
        reason="export.csv:5:DOB: no such day (31/04/2014)\n"
        "export.csv:5:GENDER: unknown gender code (known: M, F) (Q)\n"
        "export.csv:5:UPN: UPN check letter is Q, expected N (Q331200109990)",
    )
    view, _ = card(gw, "332")
    (line,) = view.attention
    assert line.summary == "export.csv:5: 3 problems (DOB, GENDER, UPN)"
    assert "Q331200109990" not in (line.reason or "") and "31/04/2014" not in (line.reason or "")
    assert line.can_dismiss and not line.can_replay


class Api:
    def __init__(self, tmp_path: Path) -> None:
        self.gw = make_gateway(tmp_path, hosted=("332", "333", "336"))
        keys = ApiKeys(tmp_path / "api-keys.json")
        self.admin = {"Authorization": "Bearer " + keys.issue(None, "admin")}
        self.k336 = {"Authorization": "Bearer " + keys.issue("336")}
        self.k332 = {"Authorization": "Bearer " + keys.issue("332")}
        app = create_app(self.gw, keys)
        app.state.cafgw_ops = OpsState.for_gateway(self.gw, FakeProbe())
        self.client = TestClient(app)


def test_an_authority_dismisses_its_rejected_record_with_who_and_why_audited(
    tmp_path: Path,
) -> None:
    api = Api(tmp_path)
    message_id, _ = put(api.gw, "336", "336", Status.ACCEPTED, Status.REJECTED, reason="bad row")
    answer = api.client.post(
        f"/v1/messages/{message_id}/dismiss",
        headers=api.k336,
        json={"by": "Jo Bloggs", "reason": "row fixed in the case system and sent again"},
    )
    assert answer.status_code == 200, answer.text
    # The name given, and the key that made the request (which proves who did).
    assert re.fullmatch(r"Jo Bloggs \(for 336, key [0-9a-f]+\)", answer.json()[0]["actor"])
    view = api.client.get("/v1/dashboard", headers=api.k336).json()
    assert view["attention"] == [] and view["authorities"][0]["alert"] is False
    (entry,) = [e for e in audit.entries(api.gw.ledger) if e.event.action == "DISMISS"]
    assert entry.event.actor == answer.json()[0]["actor"]
    assert entry.event.detail == "REJECTED dismissed: row fixed in the case system and sent again"
    assert audit.verify(api.gw.ledger) == []
    # The record and its history are kept as they were.
    (record,) = api.gw.ledger.find(message_id=message_id)
    assert record.status == Status.REJECTED
    # Dismissing again (a second click, a colleague): that dismissal, nothing recorded.
    first = answer.json()[0]
    assert first["already_dismissed"] is False and first["reason"].startswith("row fixed")
    again = api.client.post(
        f"/v1/messages/{message_id}/dismiss",
        headers=api.k336,
        json={"by": "Sam Colleague", "reason": "twice"},
    )
    assert again.status_code == 200, again.text
    assert again.json() == [{**first, "already_dismissed": True}]
    assert [e.event.action for e in audit.entries(api.gw.ledger)].count("DISMISS") == 1
    # A message never waiting for a human is still not found.
    other, _ = put(api.gw, "336", "336", Status.ACCEPTED, Status.SIGNED)
    never = api.client.post(
        f"/v1/messages/{other}/dismiss",
        headers=api.k336,
        json={"by": "Jo Bloggs", "reason": "not waiting"},
    )
    assert never.status_code == 404


def test_another_authoritys_message_cannot_be_dismissed_and_is_not_confirmed(
    tmp_path: Path,
) -> None:
    api = Api(tmp_path)
    message_id, _ = put(api.gw, "336", "336", Status.ACCEPTED, Status.REJECTED, reason="bad row")
    answer = api.client.post(
        f"/v1/messages/{message_id}/dismiss",
        headers=api.k332,
        json={"by": "Someone Else", "reason": "not mine to dismiss"},
    )
    assert answer.status_code == 404
    assert api.client.get("/v1/dashboard", headers=api.k336).json()["attention"]


def test_a_dismissed_dead_letter_needs_a_human_again_when_it_fails_again(tmp_path: Path) -> None:
    clock = Clock()
    gw = make_gateway(tmp_path, clock=clock)
    message_id, pk = put(
        gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.DEAD_LETTERED
    )
    from gateway.ops import attention  # noqa: PLC0415

    attention.dismiss(gw.ledger, "332", message_id, "Jo (admin)", "recipient phoned; resent")
    assert card(gw, "332")[1].needs_human == {}
    clock.advance(5)
    gw.ledger.transition([pk], Status.REPLAYED, "replayed")
    clock.advance(5)
    gw.ledger.transition([pk], Status.DEAD_LETTERED, "no receipt again")
    assert card(gw, "332")[1].needs_human == {"DEAD_LETTERED": 1}


def test_two_dismissals_of_one_message_at_once_record_one_dismissal_and_one_audit_entry(
    tmp_path: Path,
) -> None:
    # A double click: the second read the message as not dismissed before the first
    # committed, and both recorded a dismissal and a DISMISS audit entry.
    from gateway.ops import attention  # noqa: PLC0415

    gw = make_gateway(tmp_path, clock=Clock())
    message_id, _ = put(gw, "336", "336", Status.ACCEPTED, Status.REJECTED, reason="bad row")
    second: list[object] = []

    def dismiss_again() -> None:
        try:
            second.append(attention.dismiss(gw.ledger, "336", message_id, "Sam", "again"))
        except Exception as exc:  # reported by the assertions below
            second.append(exc)

    def the_other_dismisses_after_this_read(
        _conn: object, _cursor: object, statement: str, *_: object
    ) -> None:
        if (
            statement.startswith("SELECT messages.id")
            and threading.current_thread() is threading.main_thread()
            and not second
        ):
            other = threading.Thread(target=dismiss_again)
            other.start()
            other.join(1.0)  # ends at once without the lock, times out with it
            second.append(other)

    event.listen(gw.ledger.engine, "after_cursor_execute", the_other_dismisses_after_this_read)
    try:
        attention.dismiss(gw.ledger, "336", message_id, "Jo", "row fixed and sent again")
    finally:
        event.remove(gw.ledger.engine, "after_cursor_execute", the_other_dismisses_after_this_read)
    for item in second:
        if isinstance(item, threading.Thread):
            item.join(30)
    (then,) = [x for x in second if not isinstance(x, threading.Thread)]
    # The second waited for the first, then heard of it: Jo's dismissal, nothing recorded.
    assert isinstance(then, list), then
    assert [(d.already, d.actor, d.reason) for d in then] == [
        (True, "Jo", "row fixed and sent again")
    ]
    assert [e.event.action for e in audit.entries(gw.ledger)].count("DISMISS") == 1


def test_what_needs_a_human_is_found_by_status_not_by_reading_every_message(
    tmp_path: Path,
) -> None:
    gw = make_gateway(tmp_path)
    for _ in range(3):  # the bulk of a ledger: delivered, needing no one
        put(gw, "336", "332", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.DELIVERED)
    put(gw, "336", "332", Status.DEAD_LETTERED, reason="no receipt from 332 after 6 sends")
    with captured(gw.ledger.engine) as statements:
        counted = attention.counts(gw.ledger, ["336"])
        listed = attention.records(gw.ledger, ["336"], 50)
    assert counted == {("336", attention.Need.DEAD_LETTERED): 1}
    assert [r.status for r in listed] == [Status.DEAD_LETTERED]
    found = plans(gw.ledger.engine, statements)
    reads = [plan for sql, plan in found.items() if "FROM messages" in sql]
    assert len(reads) == 2
    for plan in reads:
        # Each status that may need a human looked up in the index, not every message
        # of the authority (``ix_messages_inbox (authority=?)`` alone) read.
        assert "ix_messages_inbox (authority=? AND direction=? AND status=?)" in plan, plan


def test_every_state_that_needs_a_human_is_among_the_statuses_looked_up() -> None:
    # The look-up by status (``attention._MAY_NEED``) must not leave out a need added later.
    for status in Status:
        for direction in Direction:
            for attempts in (0, 1):
                if attention.need_of(status, direction, attempts) is not None:
                    assert status.value in attention._MAY_NEED, (status, direction, attempts)


def test_an_admins_dismissal_and_replay_find_the_message_by_its_id(tmp_path: Path) -> None:
    # Issue 14: both named the authority and the id but no direction, and the id's index
    # starts with the direction: every message of the authority was read for one. With
    # both directions named, SQLite still took the status's index where it could (every
    # message of the authority waiting for a human, dismissed ones included, and these
    # stay): the status is not searched by now.
    from gateway.services import dead_letters  # noqa: PLC0415

    gw = make_gateway(tmp_path, clock=Clock())
    dismissed_id, _ = put(
        gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.DEAD_LETTERED
    )
    by_sender_id, _ = put(
        gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.DEAD_LETTERED
    )
    replayed_id, _ = put(
        gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT, Status.DEAD_LETTERED
    )
    with captured(gw.ledger.engine) as statements:
        assert attention.dismiss(gw.ledger, "332", dismissed_id, "Jo (admin)", "resent by hand")
        # Again: the earlier dismissal is the answer (read by ``_dismissed_before``).
        (again,) = attention.dismiss(gw.ledger, "332", dismissed_id, "Jo (admin)", "twice")
        assert again.already
        # As the dashboard asks: one sender's rows, in one status.
        assert attention.dismiss(
            gw.ledger, "332", by_sender_id, "Jo", "by hand", "332", Status.DEAD_LETTERED
        )
        assert dead_letters.replay(gw, "332", replayed_id, "Jo (admin)").message_id == replayed_id
    by_id = {
        sql: plan
        for sql, plan in plans(gw.ledger.engine, statements).items()
        if "FROM messages" in sql and "messages.message_id = ?" in sql
    }
    assert len(by_id) >= 4, list(by_id)  # the dismissal's, the earlier one's, by sender, replay
    for sql, plan in by_id.items():
        first = plan.splitlines()[0]
        assert "message_id=?" in first and first.startswith("SEARCH messages"), f"{sql}\n{plan}"
