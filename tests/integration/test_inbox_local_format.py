"""GET /v1/inbox?format=local: a Dudley assessment, sent over the real RabbitMQ, is
served to Wolverhampton as EHM JSON and to Sandwell as FWI XML; what their formats have
no place for comes in the documented JSON form."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.services import outbound
from tests.integration.gateways import make_settings, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DUDLEY = Path(__file__).resolve().parents[1] / "data" / "dudley-332" / "caf-register-2026-09.csv"
HOSTED = ("332", "333", "334", "336")


def test_received_assessments_are_served_in_each_authoritys_own_format(
    tmp_path: Path, vhost: str
) -> None:
    settings = make_settings(tmp_path, HOSTED, f"sqlite:///{tmp_path / 'ledger.db'}", vhost)
    with running(settings) as gw:
        with DUDLEY.open("rb") as stream:
            outbound.submit_local(gw, "332", "dudley-csv", stream, DUDLEY.name)

        def arrived(code: str) -> bool:
            return {"Assessment", "ConsentChange"} <= {
                i.message_type for i in gw.ledger.inbox(code)
            }

        wait_for(lambda: arrived("336") and arrived("333"), what="row 1 in both inboxes")
        keys = ApiKeys(settings.api_keys_file)
        client = TestClient(create_app(gw, keys))

        def pull(code: str, **params: str) -> Any:
            auth = {"Authorization": f"Bearer {keys.issue(code)}"}
            return client.get("/v1/inbox", params=params, headers=auth)

        ehm = pull("336", format="local")
        assert ehm.status_code == 200, ehm.text
        (assessment,) = [i for i in ehm.json() if i["message_type"] == "Assessment"]
        assert assessment["format"] == "local"
        assert assessment["content_type"] == "application/json; charset=utf-8"
        episode = json.loads(assessment["content"])["episodes"][0]
        assert episode["episodeId"] == "DUD-2026-00417"
        assert episode["child"]["names"]["family"] == "O’Neill"
        (consent,) = [i for i in ehm.json() if i["message_type"] == "ConsentChange"]
        # EHM has no place for a consent change: the documented JSON form.
        assert consent["format"] == "local" and consent["note"] is None
        form = json.loads(consent["content"])
        assert form["format"] == "cafgw-local-json/1"
        assert form["body"]["case_ref"] == "DUD-2026-00417"

        fwi = pull("333", format="local")
        (form,) = [i for i in fwi.json() if i["message_type"] == "Assessment"]
        data = base64.b64decode(form["content_base64"])
        assert data.startswith(b"<?xml version='1.0' encoding='ISO-8859-1'?>")
        root = etree.fromstring(data)
        assert root.tag == "FWIExport" and root.find("Form") is not None
        assert form["content_type"] == "application/xml; charset=ISO-8859-1"

        canonical = pull("336")
        (signed,) = [i for i in canonical.json() if i["message_type"] == "Assessment"]
        assert signed["format"] == "canonical" and signed["note"] is None
        assert "urn:caf-exchange:1" in signed["content"] and "Signature" in signed["content"]

        # Solihull has no adapter: every type, the assessment too, in the JSON form.
        solihull = pull("334", format="local")
        assert solihull.status_code == 200, solihull.text
        assert all(
            json.loads(i["content"])["format"] == "cafgw-local-json/1" for i in solihull.json()
        )
