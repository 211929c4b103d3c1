"""Submitting through the API: an adapter belongs to its authority, and a local
system retrying after a lost answer (Idempotency-Key) never submits twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from policy_support import DUDLEY, SANDWELL, memory_gateway
from typer.testing import CliRunner

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.cli import app as cli
from gateway.context import Gateway
from gateway.errors import AdapterNotYoursError
from gateway.ledger.status import Direction
from gateway.services import outbound
from tests.integration.procs import write_config

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def api(tmp_path: Path) -> tuple[TestClient, dict[str, str], Gateway]:
    gw = memory_gateway(tmp_path)
    keys = ApiKeys(tmp_path / "api-keys.json")
    tokens = {code: keys.issue(code) for code in ("332", "333")}
    return TestClient(create_app(gw, keys)), tokens, gw


def _auth(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **more}


def _outbound(gw: Gateway, authority: str) -> int:
    return len(gw.ledger.find(authority=authority, direction=Direction.OUTBOUND, limit=1000))


def test_an_authority_cannot_submit_through_another_authoritys_adapter(api: tuple) -> None:
    client, tokens, gw = api
    r = client.post(
        "/v1/messages?adapter=sandwell-xml",
        content=SANDWELL.read_bytes(),
        headers=_auth(tokens["332"]),
    )
    assert r.status_code == 403, r.text
    assert "belongs to 333, not 332" in r.json()["detail"]
    assert _outbound(gw, "332") == 0 and _outbound(gw, "333") == 0  # nothing was signed as Dudley
    ok = client.post(
        "/v1/messages?adapter=dudley-csv", content=DUDLEY.read_bytes(), headers=_auth(tokens["332"])
    )
    assert ok.status_code == 202, ok.text


def test_the_cli_refuses_another_authoritys_adapter_with_a_clear_error(tmp_path: Path) -> None:
    gw = memory_gateway(tmp_path)
    with pytest.raises(AdapterNotYoursError, match="belongs to 333, not 332"):
        outbound.submit_local(gw, "332", "sandwell-xml", SANDWELL.open("rb"), SANDWELL.name)
    config = write_config(
        tmp_path / "cli",
        hosted=("332",),
        amqp_url="amqp://guest:guest@127.0.0.1:1/none",  # never reached: refused before
        ledger_url=f"sqlite:///{tmp_path / 'cli' / 'ledger.db'}",
        keys_dir=tmp_path / "keys",
        port=1,
    )
    result = CliRunner().invoke(
        cli,
        [
            "send",
            str(SANDWELL),
            "--authority",
            "332",
            "--adapter",
            "sandwell-xml",
            "--config",
            str(config),
        ],
    )
    assert result.exit_code != 0
    assert "belongs to 333, not 332" in result.output


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer_and_submits_nothing(
    api: tuple,
) -> None:
    client, tokens, gw = api
    headers = _auth(tokens["332"], **{"Idempotency-Key": "dudley-upload-2026-09-0001"})
    first = client.post(
        "/v1/messages?adapter=dudley-csv", content=DUDLEY.read_bytes(), headers=headers
    )
    assert first.status_code == 202, first.text
    recorded = _outbound(gw, "332")
    again = client.post(
        "/v1/messages?adapter=dudley-csv", content=DUDLEY.read_bytes(), headers=headers
    )
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _outbound(gw, "332") == recorded
    other = client.post(
        "/v1/messages?adapter=dudley-csv",
        content=DUDLEY.read_bytes().replace(b"DUD-2026-00418", b"DUD-2026-00499"),
        headers=headers,
    )
    assert other.status_code == 409
    assert "already used for a different request" in other.json()["detail"]


def test_a_refusal_is_an_answer_too_and_is_given_again_for_the_same_key(api: tuple) -> None:
    client, tokens, _ = api
    headers = _auth(tokens["332"], **{"Idempotency-Key": "k-refused"})
    first = client.post("/v1/messages?adapter=sandwell-xml", content=b"x", headers=headers)
    assert first.status_code == 403
    again = client.post("/v1/messages?adapter=sandwell-xml", content=b"x", headers=headers)
    assert (again.status_code, again.json()) == (403, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    bad = client.post(
        "/v1/messages?adapter=dudley-csv",
        content=b"x",
        headers=_auth(tokens["332"], **{"Idempotency-Key": "has a space"}),
    )
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["detail"]
