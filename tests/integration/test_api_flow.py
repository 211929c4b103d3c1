"""The HTTP API end to end: a local system submits, another pulls and acknowledges."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.ledger.status import Direction, Status
from tests.integration.gateways import make_settings, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DATA = Path(__file__).resolve().parents[1] / "data"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_dudley_submits_its_export_and_wolverhampton_pulls_and_acknowledges_it(
    tmp_path: Path, vhost: str
) -> None:
    settings = make_settings(
        tmp_path, ("332", "333", "336"), f"sqlite:///{tmp_path / 'l.db'}", vhost
    )
    keys = ApiKeys(settings.api_keys_file)
    dudley, wolves, sandwell = keys.issue("332"), keys.issue("336"), keys.issue("333")
    with running(settings) as gw:
        client = TestClient(create_app(gw, keys))
        export = (DATA / "dudley-332" / "caf-register-2026-09.csv").read_bytes()
        response = client.post(
            "/v1/messages?adapter=dudley-csv&source=register.csv",
            content=export,
            headers={**_auth(dudley), "Content-Type": "text/csv"},
        )
        assert response.status_code == 202, response.text
        report = response.json()
        assert (report["queued"], report["held"], report["rejected"]) == (1, 2, 1)
        bad = next(r for r in report["records"] if r["status"] == "REJECTED")
        assert any(reason.startswith("register.csv:5:UPN:") for reason in bad["reasons"])
        sent = next(r for r in report["records"] if r["status"] == "SIGNED")
        to_wolves = [
            m
            for m in sent["message_ids"]
            if gw.ledger.find(message_id=m, direction=Direction.OUTBOUND)[0].recipient == "336"
        ]
        wait_for(
            lambda: all(
                gw.ledger.find(message_id=m, direction=Direction.OUTBOUND)[0].status
                == Status.DELIVERED
                for m in to_wolves
            ),
            what="receipts from Wolverhampton",
        )

        history = client.get(f"/v1/messages/{to_wolves[0]}", headers=_auth(dudley))
        assert history.status_code == 200
        outbound = next(m for m in history.json() if m["direction"] == "OUTBOUND")
        assert [h["status"] for h in outbound["history"]] == [
            "ACCEPTED",
            "SIGNED",
            "SENT",
            "DELIVERED",
        ]
        # Sandwell is not a party to that message: it must not learn that it exists.
        assert (
            client.get(f"/v1/messages/{to_wolves[0]}", headers=_auth(sandwell)).status_code == 404
        )
        assert client.get(f"/v1/messages/{to_wolves[0]}").status_code == 401

        inbox = client.get("/v1/inbox", headers=_auth(wolves))
        assert inbox.status_code == 200
        items = {i["message_id"]: i for i in inbox.json()}
        assert set(to_wolves) <= set(items)
        assert "urn:caf-exchange:1" in items[to_wolves[0]]["content"]
        for message_id in to_wolves:
            ack = client.post(f"/v1/inbox/{message_id}/ack", headers=_auth(wolves))
            assert ack.status_code == 200 and ack.json()["status"] == "ACKNOWLEDGED"
        again = client.get("/v1/inbox", headers=_auth(wolves)).json()
        assert not set(to_wolves) & {i["message_id"] for i in again}
        # Acknowledging twice is a 409 (nothing changes); someone else's message, a 404.
        assert (
            client.post(f"/v1/inbox/{to_wolves[0]}/ack", headers=_auth(wolves)).status_code == 409
        )
        assert (
            client.post(f"/v1/inbox/{to_wolves[0]}/ack", headers=_auth(sandwell)).status_code == 404
        )


def test_a_canonical_envelope_with_a_forged_sender_is_refused_with_the_rule(
    tmp_path: Path, vhost: str
) -> None:
    settings = make_settings(tmp_path, ("332", "336"), f"sqlite:///{tmp_path / 'l.db'}", vhost)
    keys = ApiKeys(settings.api_keys_file)
    wolves = keys.issue("336")
    example = (
        Path(__file__).resolve().parents[2] / "schemas" / "examples" / "notification.xml"
    ).read_bytes()
    with running(settings) as gw:
        client = TestClient(create_app(gw, keys))
        response = client.post(
            "/v1/messages",
            content=example,
            headers={**_auth(wolves), "Content-Type": "application/xml"},
        )
        assert response.status_code == 422
        assert response.json()["rule"] == "submit.sender"


def test_a_key_issued_by_another_process_works_without_a_restart(
    tmp_path: Path, vhost: str
) -> None:
    settings = make_settings(tmp_path, ("336",), f"sqlite:///{tmp_path / 'l.db'}", vhost)
    served = ApiKeys(settings.api_keys_file)
    with running(settings) as gw:
        client = TestClient(create_app(gw, served))
        # As `cafgw api-keys issue` would, from its own process: a separate store.
        later = ApiKeys(settings.api_keys_file).issue("336")
        assert client.get("/v1/inbox", headers=_auth(later)).status_code == 200
        assert client.get("/v1/inbox", headers=_auth(later + "x")).status_code == 401
