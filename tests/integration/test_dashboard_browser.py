"""The dashboard in a real browser (headless Debian chromium via Playwright):
it loads, shows the demo's messages, an admin's replay click works, and an
authority's user sees only its own data. Screenshots go to test-output/."""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.ledger.status import Direction, Status
from gateway.services import outbound
from tests.integration.gateways import make_settings, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
DUDLEY = ROOT / "tests" / "data" / "dudley-332" / "caf-register-2026-09.csv"
ISSUE = ROOT / "schemas" / "examples" / "issue-log-entry.xml"
OUTPUT = ROOT / "test-output"
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


def _status(gw: Gateway, message_id: str) -> Status:
    (record,) = gw.ledger.find(
        message_id=message_id, direction=Direction.OUTBOUND, with_history=False
    )
    return record.status


def _sign_in(page: object, base: str, key: str) -> None:
    page.goto(base + "/")  # type: ignore[attr-defined]
    page.fill("#api-key", key)  # type: ignore[attr-defined]
    page.click("#login-form button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#authorities .card")  # type: ignore[attr-defined]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
def test_dashboard_shows_the_demo_replays_a_dead_letter_and_hides_other_authorities(
    tmp_path: Path, vhost: str
) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the browser tests

    settings = make_settings(
        tmp_path,
        ("332", "333", "336"),
        f"sqlite:///{tmp_path / 'ledger.db'}",
        vhost,
        # Quick dead letters for messages to authorities nobody hosts here;
        # Dudley keeps the normal budget so its sends are delivered as usual.
        delivery={"receipt_deadline_s": 1, "resend_budget": 0},
        authority_delivery={"332": {"receipt_deadline_s": 60, "resend_budget": 5}},
    )
    keys = ApiKeys(settings.api_keys_file)
    admin_key = keys.issue(None, "admin")
    key_336 = keys.issue("336")
    OUTPUT.mkdir(exist_ok=True)

    with running(settings) as gw:
        with DUDLEY.open("rb") as stream:
            report = outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)
        row1 = next(o for o in report.outcomes if o.case_ref == "DUD-2026-00417")
        dead = outbound.submit_envelope(gw, "333", _issue_to_solihull()).message_ids[0]
        wait_for(
            lambda: all(_status(gw, m) == Status.DELIVERED for m in row1.message_ids),
            what="Dudley row 1 delivered",
        )
        wait_for(lambda: _status(gw, dead) == Status.DEAD_LETTERED, what="a dead letter")
        to_333 = next(
            m
            for m in row1.message_ids
            if gw.ledger.find(message_id=m, direction=Direction.OUTBOUND)[0].recipient == "333"
        )

        with serving(gw, keys) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                _sign_in(page, base, admin_key)
                assert page.locator("#who").inner_text() == (
                    "Signed in as admin (all hosted authorities)"
                )
                cards = page.locator("#authorities .card")
                assert sorted(cards.evaluate_all("els => els.map(e => e.dataset.authority)")) == [
                    "332",
                    "333",
                    "336",
                ]
                for message_id in row1.message_ids:
                    page.wait_for_selector(f"#recent tr[data-message-id='{message_id}']")
                row = page.locator(f"#attention tr[data-message-id='{dead}']")
                assert "DEAD_LETTERED" in row.inner_text()
                assert "no receipt from 334" in row.inner_text()
                page.wait_for_selector("#health li")
                assert "broker: ok" in page.locator("#health").inner_text()
                page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)

                row.locator("button", has_text="Replay").click()
                page.wait_for_selector(f"#flash:has-text('Replayed {dead}')")
                history = [
                    h.status
                    for h in gw.ledger.find(message_id=dead, direction=Direction.OUTBOUND)[
                        0
                    ].history
                ]
                assert Status.REPLAYED in history
                # Published again after the replay (the sender loop picks it up).
                wait_for(
                    lambda: (
                        gw.ledger.find(message_id=dead, direction=Direction.OUTBOUND)[0]
                        .history[-1]
                        .status
                        in (Status.SENT, Status.DEAD_LETTERED)
                        and len(gw.ledger.find(message_id=dead)[0].history) > len(history)
                    ),
                    what="the replayed message published again",
                )

                page.click("#logout")
                page.wait_for_selector("#login-form", state="visible")
                _sign_in(page, base, key_336)
                assert page.locator("#who").inner_text() == "Signed in as authority 336"
                assert cards.evaluate_all("els => els.map(e => e.dataset.authority)") == ["336"]
                page.wait_for_selector("#recent tr")
                text = page.locator("#board").inner_text()
                assert dead not in text
                assert to_333 not in text
                assert page.locator("#attention button").count() == 0
                page.screenshot(path=str(OUTPUT / "dashboard-authority-336.png"), full_page=True)
            finally:
                browser.close()
