"""The dashboard in a real browser (headless Debian chromium via Playwright), on a gateway
with the real broker: as admin and as one authority.

One gateway serves both tests (hosting 332, 333, 336): the Dudley sample is fed (one
record rejected, row 1 sent to 336 and 333), two issue-log entries to Solihull (hosted
nowhere) become dead letters, and Wolverhampton's webhook points at a closed port, so
its handover keeps failing. Screenshots go to test-output/ (to docs/ with
CAFGW_UPDATE_SCREENSHOTS=1, which is how the ones in docs/ are made).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from broker_admin import create_vhost, delete_vhost
from local_systems import secret_file, with_connector

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.ledger import audit, bodies
from gateway.ledger.status import Direction, Status
from gateway.services import outbound
from tests.integration.gateways import make_settings, running, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.browser,
    pytest.mark.timeout(240),
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(), reason="Debian chromium is not installed"
    ),
]

ROOT = Path(__file__).resolve().parents[2]
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"
ISSUE = ROOT / "schemas" / "examples" / "issue-log-entry.xml"
SHOTS = ROOT / ("docs" if os.environ.get("CAFGW_UPDATE_SCREENSHOTS") == "1" else "test-output")
ROW1_UPN = "J332412014017"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(gw: Gateway, keys: ApiKeys) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(gw, keys), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the API server did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _issue_to_solihull() -> bytes:
    """Sandwell logs a service gap with Solihull, whose gateway is not running."""
    text = ISSUE.read_text(encoding="utf-8")
    text = re.sub(r"<MessageId>[^<]+", f"<MessageId>{uuid.uuid4()}", text)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = re.sub(r"<CreatedAt>[^<]+", f"<CreatedAt>{now}", text)
    return text.encode("utf-8")


def _outbound(gw: Gateway, message_id: str) -> Any:
    (record,) = gw.ledger.find(message_id=message_id, direction=Direction.OUTBOUND)
    return record


def _management_consumers(vhost: str, queue: str) -> int | None:
    """Consumers on ``queue`` as the management API reports them; None without it."""
    try:
        answer = httpx.get(
            f"http://127.0.0.1:15672/api/queues/{quote(vhost, safe='')}/{queue}",
            auth=("guest", "guest"),
            timeout=5,
        )
    except httpx.ConnectError:
        return None  # not enabled: the dashboard falls back to passive declares
    return int(answer.json().get("consumers") or 0) if answer.status_code == 200 else 0


@dataclass
class Scene:
    gw: Gateway
    base: str
    admin_key: str
    key_336: str
    row1: tuple[str, ...]  # Dudley row 1's sends (to 336 and 333)
    dead: list[str]  # Sandwell's two dead letters


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("dashboard")
    vhost = f"cafgw-test-{uuid.uuid4().hex[:12]}"
    create_vhost(vhost)
    secret_file(tmp / "secrets")
    settings = make_settings(
        tmp,
        ("332", "333", "336"),
        f"sqlite:///{tmp / 'ledger.db'}",
        f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        # Quick dead letters for messages to authorities nobody hosts here;
        # Dudley keeps the normal budget so its sends are delivered as usual.
        delivery={"receipt_deadline_s": 1, "resend_budget": 0},
        authority_delivery={"332": {"receipt_deadline_s": 60, "resend_budget": 5}},
    )
    settings = with_connector(
        settings,
        "336",
        kind="webhook",
        url=f"http://127.0.0.1:{_free_port()}/caf",  # nothing listens: every handover fails
        hmac_secret_file=str(tmp / "secrets" / "webhook.secret"),
    )
    keys = ApiKeys(settings.api_keys_file)
    admin_key, key_336 = keys.issue(None, "admin"), keys.issue("336")
    SHOTS.mkdir(exist_ok=True)
    try:
        with running(settings) as gw:
            with DUDLEY.open("rb") as stream:
                report = outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)
            row1 = next(o for o in report.outcomes if o.case_ref == "DUD-2026-00417")
            dead = [
                outbound.submit_envelope(gw, "333", _issue_to_solihull()).message_ids[0]
                for _ in range(2)
            ]
            wait_for(
                lambda: all(_outbound(gw, m).status == Status.DELIVERED for m in row1.message_ids),
                what="Dudley row 1 delivered",
            )
            wait_for(
                lambda: all(_outbound(gw, m).status == Status.DEAD_LETTERED for m in dead),
                what="two dead letters",
            )
            # The management API samples queue statistics (every 5 s by default):
            # wait until it has seen the consumer the worker opened at start.
            wait_for(
                lambda: _management_consumers(vhost, "caf.inbox.336") in (None, 1),
                timeout_s=30,
                what="the management API to report the inbox consumer",
            )
            with serving(gw, keys) as base:
                yield Scene(gw, base, admin_key, key_336, row1.message_ids, dead)
    finally:
        delete_vhost(vhost)


@pytest.fixture
def page(scene: Scene) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the browser tests

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def _sign_in(page: Any, base: str, key: str) -> None:
    page.goto(base + "/")
    page.fill("#api-key", key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#authorities .card svg.chart")


def test_as_admin_the_board_shows_failures_flows_queues_and_replays_and_dismisses(
    scene: Scene, page: Any
) -> None:
    _sign_in(page, scene.base, scene.admin_key)
    assert page.locator("#who").inner_text() == "Signed in as admin (all hosted authorities)"
    cards = page.locator("#authorities .card")
    assert cards.evaluate_all("els => els.map(e => e.dataset.authority)") == ["332", "333", "336"]

    # Failures show: Wolverhampton's failing webhook and Sandwell's dead letters turn cards red.
    card_336 = page.locator("#authorities .card[data-authority='336']")
    page.wait_for_selector("#authorities .card[data-authority='336'].alert")
    assert "handover failing" in card_336.inner_text()
    assert "handover failing since" in card_336.inner_text()
    assert "Connection refused" in card_336.locator(".handover-error").inner_text()
    # Sandwell's two, and the notices it sent to authorities hosted nowhere.
    assert re.search(
        r"\b[2-9] dead letters", page.locator(".card[data-authority='333']").inner_text()
    )
    assert (
        page.locator(".card[data-authority='332'] ul.alerts").inner_text().startswith("1 rejected")
    )
    # A chart per card, one line per rate.
    assert page.locator(".card[data-authority='332'] svg.chart polyline").count() == 4
    totals = page.locator(".card[data-authority='332'] svg.chart").get_attribute("data-totals")
    assert re.search(r"sent [1-9]", totals or "") and re.search(r"delivered [1-9]", totals or "")

    # Who sends to whom, and the queues with their consumers (management API).
    assert "delivered" in (
        page.locator("#flows td[data-flow='332>336']").get_attribute("class") or ""
    )
    assert "failing" in (
        page.locator("#flows td[data-flow='333>334']").get_attribute("class") or ""
    )
    inbox = page.locator("#queues tr[data-queue='caf.inbox.336']")
    cells = inbox.locator("td").all_inner_texts()
    # Where the figures came from (the management API; a passive declare when it is
    # slow to answer) and the worker's consumer.
    assert cells[-1] in ("management", "passive") and int(cells[4]) >= 1  # consumers

    # The rejected record is one line; its problems open on a click.
    rejected = page.locator("#attention tr", has_text="REJECTED")
    assert "problems (" in rejected.locator("summary").inner_text()
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)

    # Dismiss it: a dialog asks who and why; both are recorded.
    rejected.locator("button", has_text="Dismiss").click()
    page.fill("#dismiss-by", "Jo Bloggs")
    page.fill("#dismiss-reason", "row 4 corrected in the case system and sent again")
    page.click("#dismiss-confirm")
    page.wait_for_selector("#flash:has-text('Dismissed')")
    page.wait_for_selector("#attention tr:has-text('REJECTED')", state="detached")
    (entry,) = [e for e in audit.entries(scene.gw.ledger) if e.event.action == "DISMISS"]
    # The name given, and the key that made the request (which proves who did).
    assert re.fullmatch(r"Jo Bloggs \(admin, key [0-9a-f]+\)", entry.event.actor)

    # Replay both dead letters at once, after a confirmation naming them.
    for message_id in scene.dead:
        page.locator(f"#attention tr[data-message-id='{message_id}'] input[type=checkbox]").check()
    assert page.locator("#attention-selected").inner_text() == "2 selected"
    page.click("#attention-replay")
    assert page.locator("#replay-list li").count() == 2
    page.fill("#replay-by", "Jo Admin")
    page.click("#replay-confirm")
    page.wait_for_selector("#flash:has-text('Replayed')")
    for message_id in scene.dead:
        assert Status.REPLAYED in [h.status for h in _outbound(scene.gw, message_id).history]
    actors = {e.event.actor for e in audit.entries(scene.gw.ledger) if e.event.action == "REPLAY"}
    (actor,) = actors
    assert re.fullmatch(r"Jo Admin \(admin, key [0-9a-f]+\)", actor)

    # The message browser: a message found by the start of its id opens its whole story.
    page.click("#tabs .tab[data-tab='messages']")
    page.fill("#search-form input[name='message_id']", scene.row1[0][:8])
    page.click("#search-button")
    page.wait_for_selector(f"#results tr[data-message-id='{scene.row1[0]}']")
    # Hosting both ends, the gateway holds two copies (332's sent one, 336's received one).
    copies = page.locator(f"#results tr[data-message-id='{scene.row1[0]}']")
    assert copies.count() == 2
    copies.first.locator("button.link").click()
    page.wait_for_selector("#detail-dialog[open] section.copy")
    assert page.locator("#detail-body section.copy").count() == 2
    body = page.locator("#detail-body").inner_text()
    assert "DELIVERED" in body and "SIGNED" in body and "VERIFIED" in body
    assert "DISCLOSURE" in page.locator("#detail-audit").inner_text()
    page.screenshot(path=str(SHOTS / "dashboard-message.png"), full_page=True)


def _dead_letter_to_solihull(gw: Gateway, what: str) -> str:
    """Sandwell's service gap for Solihull, hosted nowhere, once it is a dead letter; its id."""
    sent = outbound.submit_envelope(gw, "333", _issue_to_solihull()).message_ids[0]
    wait_for(lambda: _outbound(gw, sent).status == Status.DEAD_LETTERED, what=what)
    return sent


def test_a_dead_letter_whose_body_was_erased_shows_why_it_cannot_be_replayed(
    scene: Scene, page: Any
) -> None:
    # Another dead letter for Solihull, its body then erased as an earlier version
    # erased one: without the dismissal that now comes with the erasure.
    gone = _dead_letter_to_solihull(scene.gw, "a dead letter to erase")
    with scene.gw.ledger.transaction() as conn:
        assert bodies.erase(conn, [_outbound(scene.gw, gone).pk]) == 1
    _sign_in(page, scene.base, scene.admin_key)
    row = page.locator(f"#attention tr[data-message-id='{gone}']")
    row.wait_for()
    assert row.locator(".actions").inner_text().startswith("body erased: nothing to replay")
    assert row.locator("button", has_text="Replay").count() == 0
    assert row.locator("input[type=checkbox]").count() == 0  # not offered for a bulk replay
    assert row.locator("button", has_text="Dismiss").count() == 1


def test_a_message_a_colleague_dismissed_meanwhile_is_reported_and_not_dismissed_again(
    scene: Scene, page: Any
) -> None:
    # A third service gap for Solihull, hosted nowhere: another dead letter.
    late = _dead_letter_to_solihull(scene.gw, "a third dead letter")
    _sign_in(page, scene.base, scene.admin_key)
    row = page.locator(f"#attention tr[data-message-id='{late}']")
    row.wait_for()
    row.locator("button", has_text="Dismiss").click()
    page.wait_for_selector("#dismiss-dialog[open]")

    # A colleague dismisses it from another screen while this dialog is open.
    answer = httpx.post(
        f"{scene.base}/v1/messages/{late}/dismiss?authority=333",
        json={"by": "Sam Other", "reason": "Solihull is not live yet; told by phone"},
        headers={"Authorization": f"Bearer {scene.admin_key}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert [d["already_dismissed"] for d in answer.json()] == [False]

    page.fill("#dismiss-by", "Jo Bloggs")
    page.fill("#dismiss-reason", "the same service gap, logged twice")
    page.click("#dismiss-confirm")
    page.wait_for_selector("#flash:has-text('Already dismissed')")
    said = page.locator("#flash").inner_text()
    assert "Sam Other (admin, key " in said and "told by phone" in said
    assert "Nothing recorded again." in said
    page.wait_for_selector(f"#attention tr[data-message-id='{late}']", state="detached")
    dismissals = [
        e.event.actor
        for e in audit.entries(scene.gw.ledger)
        if e.event.action == "DISMISS" and e.event.message_id == late
    ]
    assert len(dismissals) == 1  # Jo's click recorded nothing
    assert dismissals[0].startswith("Sam Other (admin, key ")


def test_as_one_authority_only_its_own_data_is_shown_or_found(scene: Scene, page: Any) -> None:
    _sign_in(page, scene.base, scene.key_336)
    assert page.locator("#who").inner_text() == "Signed in as authority 336"
    cards = page.locator("#authorities .card")
    assert cards.evaluate_all("els => els.map(e => e.dataset.authority)") == ["336"]
    page.wait_for_selector("#recent tr")
    board = page.locator("#board").inner_text()
    to_333 = [m for m in scene.row1 if _outbound(scene.gw, m).recipient == "333"]
    assert to_333
    for other in (*scene.dead, *to_333):
        assert other not in board  # Sandwell's dead letters, Dudley's send to Sandwell
    assert page.locator("#attention button", has_text="Replay").count() == 0
    page.screenshot(path=str(SHOTS / "dashboard-authority-336.png"), full_page=True)

    page.click("#tabs .tab[data-tab='messages']")
    assert page.locator("#child-field").is_visible()
    assert not page.locator("#authority-field").is_visible()
    # Another authority's message is not found, by search or by address.
    page.fill("#search-form input[name='message_id']", scene.dead[0])
    page.click("#search-button")
    page.wait_for_selector("#results-empty:has-text('No message matches')")
    status = page.evaluate(
        """async (id) => (await fetch('/v1/dashboard/messages/' + id, {headers:
             {Authorization: 'Bearer ' + sessionStorage.getItem('cafgw.apiKey')}})).status""",
        scene.dead[0],
    )
    assert status == 404
    # Its own copies of Dudley's row 1 (the assessment, the consent) are found by the UPN.
    page.fill("#search-form input[name='message_id']", "")
    page.fill("#search-form input[name='child']", ROW1_UPN)
    page.click("#search-button")
    page.wait_for_selector("#results tr[data-message-id]")
    found = page.locator("#results tr[data-message-id]").evaluate_all(
        "els => els.map(e => e.dataset.messageId)"
    )
    inbound = [
        r.message_id for r in scene.gw.ledger.find(authority="336", direction=Direction.INBOUND)
    ]
    assert found and set(found) <= set(inbound)
    assert set(found) & set(scene.row1)
