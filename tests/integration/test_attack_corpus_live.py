"""Issue 13's attacks that are not an envelope, as one table, through the live paths.

The envelope attacks are files (tests/data/attacks/, test_attack_corpus.py).
These are the rest of the attack run, each a named case with the reason it
must be refused, quarantined or detected with:

- ``broker``: on the real RabbitMQ, a vhost of this module's own with the
  accounts ``cafgw broker setup`` makes (``region``) and Wolverhampton's
  gateway running on its own account, copying as the relay
  (``wolverhampton``): what an authority account may not do at all, and what
  a planted message's headers claim, decided by the gateway's consumer;
- ``api``: the gateway's real app (``create_app``) on the in-memory
  transport, with the set-ups of the dedicated tests (tests/support/api_attacks.py);
- ``audit``: two gateways whose chains are anchored at each other
  (tests/support/audit_pair.py), one cut off or rewritten by its host's
  administrator, found by ``audit.verify`` (what ``cafgw audit verify`` runs).

docs/security.md lists every case ("Attacks through the live paths").
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support.api_attacks import (
    FORMULA_CELLS,
    ask_existence,
    existence_region,
    formula_region,
    post_export,
    served_local,
    upload_client,
)
from support.audit_pair import anchored, cut_off, rewrite_with_the_key

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import Gateway
from gateway.ledger import audit
from gateway.ledger.status import Direction, Status
from gateway.transport.accounts import relay_of
from gateway.transport.base import parked_key
from gateway.transport.retry import PUBLISHER_HEADER, REASON_HEADER, ROUTING_KEY_HEADER
from tests.dispute_helpers import Clock
from tests.dispute_helpers import memory_gateway as dispute_gateway
from tests.integration.broker_region import (
    Region,
    authority_settings,
    publish,
    refused,
    send,
    signed,
)
from tests.integration.gateways import running, wait_for
from tests.unit.test_dispute_api import NEW as NEW_DISPUTE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def wolverhampton(region: Region, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Wolverhampton's gateway on its own account, copying as its relay (relay-336)."""
    with running(authority_settings(tmp_path_factory.mktemp("336"), region, "336")) as gw:
        yield gw


@dataclass(frozen=True)
class Fixtures:
    """What a case may ask for, built only when it does (``request.getfixturevalue``)."""

    request: pytest.FixtureRequest

    @property
    def region(self) -> Region:
        found: Region = self.request.getfixturevalue("region")
        return found

    @property
    def wolverhampton(self) -> Gateway:
        found: Gateway = self.request.getfixturevalue("wolverhampton")
        return found

    @property
    def tmp_path(self) -> Path:
        found: Path = self.request.getfixturevalue("tmp_path")
        return found


@dataclass(frozen=True)
class LiveAttack:
    name: str
    via: str  # broker, api or audit
    description: str
    expect: str  # what the refusal, quarantine or detection must say
    run: Callable[[Fixtures], str]  # performs the attack; the reason it met


# --- broker: what an authority account may not do at all --------------------------


def _as_dudley(
    exchange: str, key: str, headers: dict[str, object] | None = None, account: str = "332"
) -> Callable[[Fixtures], str]:
    def run(fx: Fixtures) -> str:
        creds = fx.region.accounts[account]
        code, text = refused(publish(exchange, key, headers=headers), creds)
        return f"{code} {text}"

    return run


# --- broker: what a planted message claims, decided by the gateway's consumer -----


def _decision(gw: Gateway, message_id: str) -> str:
    """The inbound record's status and reason, once the gateway has decided."""

    def decided() -> list[tuple[Status, str]]:
        return [
            (r.status, r.reason or "")
            for r in gw.ledger.find(message_id=message_id, direction=Direction.INBOUND)
            if r.status in (Status.VERIFIED, Status.QUARANTINED)
        ]

    wait_for(lambda: bool(decided()), timeout_s=30, what=f"a decision on {message_id}")
    (status, reason), *_ = decided()
    return f"{status.value}: {reason}"


def _header_spoof(fx: Fixtures) -> str:
    gw, dudley = fx.wolverhampton, fx.region.accounts["332"]
    message_id, data = signed(gw.settings, "333")  # Sandwell's message
    headers = {ROUTING_KEY_HEADER: "336.Notification.333", PUBLISHER_HEADER: ""}
    send(dudley.url(), "336.Notification.332", data, message_id, dudley.username, headers)
    return _decision(gw, message_id)


def _pre_empted(fx: Fixtures) -> str:
    gw, dudley, sandwell = fx.wolverhampton, fx.region.accounts["332"], fx.region.accounts["333"]
    message_id, data = signed(gw.settings, "333")
    send(dudley.url(), "336.Notification.332", data, message_id, dudley.username)
    forged = _decision(gw, message_id)
    send(sandwell.url(), "336.Notification.333", data, message_id, sandwell.username)
    wait_for(
        lambda: _senders(gw, message_id).get("333") == Status.VERIFIED,
        timeout_s=30,
        what=f"Sandwell's own delivery of {message_id} accepted",
    )
    rows = ", ".join(
        f"{s} {status.value}" for s, status in sorted(_senders(gw, message_id).items())
    )
    return f"{forged}; then Sandwell's own delivery: {rows}"


def _senders(gw: Gateway, message_id: str) -> dict[str, Status]:
    rows = gw.ledger.find(message_id=message_id, direction=Direction.INBOUND)
    return {r.sender: r.status for r in rows}


def _planted_copy(fx: Fixtures) -> str:
    gw, dudley = fx.wolverhampton, fx.region.accounts["332"]
    message_id, data = signed(gw.settings, "332")
    headers = {ROUTING_KEY_HEADER: "336.Notification.332", PUBLISHER_HEADER: dudley.username}
    send(fx.region.guest, "caf.inbox.336", data, message_id, "guest", headers, "caf.requeue")
    return _decision(gw, message_id)


def _planted_parking_reason(fx: Fixtures) -> str:
    gw = fx.wolverhampton
    message_id = f"planted-{uuid.uuid4()}"
    headers = {
        REASON_HEADER: "schema: replay me at once",
        ROUTING_KEY_HEADER: "336.Notification.332",
    }
    send(
        fx.region.guest,
        "caf.parking.336",
        b"<Envelope/>",
        message_id,
        "guest",
        headers,
        "caf.parking",
    )
    keys = ApiKeys(gw.settings.api_keys_file)
    auth = {"Authorization": f"Bearer {keys.issue(None, 'admin')}"}
    listed = TestClient(create_app(gw, keys)).get("/v1/admin/dead-letters", headers=auth)
    assert listed.status_code == 200, listed.text
    (shown,) = [d for d in listed.json() if d["message_id"] == message_id]
    gw.transport.discard_parked("336", [parked_key(message_id, b"<Envelope/>")])
    return f"shown with reason {shown['reason']!r} and sender {shown['sender']!r}"


# --- api ---------------------------------------------------------------------------


def _formula_cells(fx: Fixtures) -> str:
    client, keys = formula_region(fx.tmp_path)
    _item, data = served_local(client, keys, "336", "cp1252")
    cells = [cell for row in csv.reader(io.StringIO(data)) for cell in row]
    return next(c for c in cells if FORMULA_CELLS["STRENGTHS"] in c)


def _upload(data: Callable[[], bytes], **limits: int) -> Callable[[Fixtures], str]:
    def run(fx: Fixtures) -> str:
        client, auth, gw = upload_client(fx.tmp_path, **limits)
        answer = post_export(client, auth, data())
        recorded = gw.ledger.find(authority="332", direction=Direction.OUTBOUND, limit=10)
        assert recorded == [], "nothing of a refused upload is recorded"
        body = answer.json()  # names the limit; the request-size guard names itself
        return f"{answer.status_code} {body.get('limit') or body['error']}: {body['detail']}"

    return run


def _wide_csv() -> bytes:
    wide = b",".join([b"a"] * 200_000) + b"\r\n"  # a 400 KB line, within the line limit
    return wide + wide


def _long_line() -> bytes:
    return b"CASE_REF\r\n" + b"x" * 3_000_000 + b"\r\n"


def _fake_approver(fx: Fixtures) -> str:
    client, auth, _gw = existence_region(fx.tmp_path)
    answer = ask_existence(client, auth, "Anyone At All", "curious")
    return f"{answer.status_code} {answer.json()['detail']}"  # the detail names the rule


def _dispute_comment(fx: Fixtures) -> str:
    gw = dispute_gateway(fx.tmp_path, hosted=("332", "336"), clock=Clock())
    keys = ApiKeys(gw.settings.api_keys_file)
    client = TestClient(create_app(gw, keys))
    auth = {"Authorization": f"Bearer {keys.issue('332')}"}
    made = client.post("/v1/disputes", json=NEW_DISPUTE, headers=auth)
    assert made.status_code == 201, made.text
    comment = {"by": "Karen Hale", "text": "x" * 900_000}  # the attack run's 900 KB
    answer = client.post(
        f"/v1/disputes/{made.json()['dispute_id']}/comment", json=comment, headers=auth
    )
    body = answer.json()
    return f"{answer.status_code} {body.get('limit')}: {body.get('detail')}"


# --- audit -------------------------------------------------------------------------


def _audit(tamper: Callable[[Gateway, int], None]) -> Callable[[Fixtures], str]:
    def run(fx: Fixtures) -> str:
        pair, anchor = anchored(fx.tmp_path)
        tamper(pair.dudley, anchor.seq)
        return "; ".join(audit.verify(pair.dudley.ledger))

    return run


def _rewrite(gw: Gateway, _seq: int) -> None:
    rewrite_with_the_key(gw, 1, "nothing was disclosed")


CASES = [
    LiveAttack(
        "retry-injection",
        "broker",
        "Dudley's account publishes on caf.relay a 'retry copy' that would reach 336's inbox",
        "403 ACCESS_REFUSED - access to exchange 'caf.relay'",
        _as_dudley("caf.relay", "caf.retry.336.1"),
    ),
    LiveAttack(
        "relay-cross-lane",
        "broker",
        "Dudley's relay account (which copies into Dudley's lanes) publishes a 'retry copy' "
        "into Wolverhampton's",
        "403 ACCESS_REFUSED - access to topic 'caf.retry.336.1' in exchange 'caf.relay'",
        _as_dudley("caf.relay", "caf.retry.336.1", account=relay_of("332")),
    ),
    LiveAttack(
        "parking-injection",
        "broker",
        "Dudley's account parks a message for 336 with a reason of its own",
        "403 ACCESS_REFUSED - access to exchange 'caf.parking'",
        _as_dudley("caf.parking", "caf.parking.336", {REASON_HEADER: "schema: replay me"}),
    ),
    LiveAttack(
        "requeue-injection",
        "broker",
        "Dudley's account puts a 'replayed' message straight into 336's inbox",
        "403 ACCESS_REFUSED - access to exchange 'caf.requeue'",
        _as_dudley("caf.requeue", "caf.inbox.336"),
    ),
    LiveAttack(
        "sender-key-spoof",
        "broker",
        "Dudley's account publishes with a routing key naming Sandwell as sender",
        "403 ACCESS_REFUSED - access to topic '336.Notification.333'",
        _as_dudley("caf.exchange", "336.Notification.333"),
    ),
    LiveAttack(
        "header-spoof",
        "broker",
        "Sandwell's signed message on Dudley's key, with headers naming Sandwell's key",
        "QUARANTINED: routing key '336.Notification.332' does not name",
        _header_spoof,
    ),
    LiveAttack(
        "pre-empted-delivery",
        "broker",
        "Dudley's account delivers Sandwell's signed message first, on Dudley's key; then "
        "Sandwell's account delivers it",
        "then Sandwell's own delivery: 333 VERIFIED, ? QUARANTINED",
        _pre_empted,
    ),
    LiveAttack(
        "planted-retry-copy",
        "broker",
        "an operator account (not the relay) puts a 'retry copy' through caf.requeue, its "
        "headers naming the original key and Dudley's account",
        "QUARANTINED: routing key 'caf.inbox.336' does not name",
        _planted_copy,
    ),
    LiveAttack(
        "planted-parking-reason",
        "broker",
        "an operator account (not the relay) parks a message with a reason and a key in "
        "headers; the dead-letter list shows neither",
        "shown with reason 'unknown' and sender '?'",
        _planted_parking_reason,
    ),
    LiveAttack(
        "formula-cells",
        "api",
        "a received record's cell =cmd|' /C calc'!A1 in GET /v1/inbox?format=local (CSV)",
        "'=cmd|' /C calc'!A1",
        _formula_cells,
    ),
    LiveAttack(
        "oversized-upload-columns",
        "api",
        "a CSV export with 200,000 columns",
        "413 max_upload_columns: upload: row 1 has 200000 columns",
        _upload(_wide_csv),
    ),
    LiveAttack(
        "oversized-upload-line",
        "api",
        "a CSV export with a 3 MB line",
        "413 max_upload_line_bytes: upload: line 2 is longer than limits.max_upload_line_bytes",
        _upload(_long_line),
    ),
    LiveAttack(
        "oversized-upload-bytes",
        "api",
        "an export over max_upload_bytes (4096 here)",
        "413 RequestTooLarge: request body over the limit of 4096 bytes",
        _upload(lambda: b"CASE_REF\r\n" + b"x,\r\n" * 2_000, max_upload_bytes=4096),
    ),
    LiveAttack(
        "fake-approver",
        "api",
        "a safeguarding existence query approved by 'Anyone At All', reason 'curious'",
        "422 safeguarding.approver: 'Anyone At All' is not a safeguarding approver of 334 "
        "(reason given: 'curious')",
        _fake_approver,
    ),
    LiveAttack(
        "oversized-dispute-comment",
        "api",
        "a 900 KB dispute comment (too large for the peer once signed)",
        "413 max_comment_chars: text is 900000 characters, more than limits.max_comment_chars",
        _dispute_comment,
    ),
    LiveAttack(
        "audit-truncation",
        "audit",
        "the host's administrator deletes the newest audit entries, down to a head 336 holds",
        "): entries were cut off",  # after "peer 336 holds audit head SEQ:HASH (...)"
        _audit(cut_off),
    ),
    LiveAttack(
        "audit-rewrite",
        "audit",
        "the host's administrator rewrites the whole chain, recomputing every keyed hash",
        "has another hash: the chain was rewritten",
        _audit(_rewrite),
    ),
]


@pytest.mark.parametrize("attack", CASES, ids=[c.name for c in CASES])
def test_a_live_attack_is_refused_quarantined_or_detected_with_its_reason(
    request: pytest.FixtureRequest, attack: LiveAttack
) -> None:
    reason = attack.run(Fixtures(request))
    assert attack.expect in reason, f"{attack.name} ({attack.via}): {reason}"


def test_every_case_is_listed_in_the_security_document() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text("utf-8")
    assert [c.name for c in CASES if f"`{c.name}`" not in text] == []
