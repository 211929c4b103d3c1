"""promtool accepts what /metrics serves and the alerting rules (and their unit tests)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ops_helpers import put

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.context import build
from gateway.ledger.status import Direction, Status
from gateway.transport.rabbit import RabbitTransport
from tests.integration.gateways import make_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian prometheus)"),
]

PROMETHEUS = Path(__file__).resolve().parents[2] / "docker" / "prometheus"


def promtool(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    if data is None:
        # Without a closed stdin promtool test rules waits on it.
        return subprocess.run(
            ["promtool", *args],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
    return subprocess.run(
        ["promtool", *args], check=False, input=data, capture_output=True, timeout=60
    )


def test_promtool_accepts_the_metrics_of_a_gateway_on_the_real_broker(
    tmp_path: Path, vhost: str
) -> None:
    settings = make_settings(tmp_path, ("332", "336"), f"sqlite:///{tmp_path / 'l.db'}", vhost)
    transport = RabbitTransport.from_settings(settings)
    gw = build(settings, transport)
    try:
        transport.declare(gw.hosted)
        _, pk = put(gw, "332", "336", Status.ACCEPTED, Status.SIGNED, Status.SENT)
        gw.ledger.transition([pk], Status.DELIVERED, "receipt verified")
        put(gw, "336", "332", Status.RECEIVED, Status.VERIFIED, direction=Direction.INBOUND)
        put(
            gw,
            "332",
            "334",
            Status.ACCEPTED,
            Status.SIGNED,
            Status.SENT,
            Status.RETRYING,
            Status.SENT,
            Status.DEAD_LETTERED,
            reason="no receipt from 334",
        )
        response = TestClient(create_app(gw, ApiKeys(settings.api_keys_file))).get("/metrics")
        assert response.status_code == 200
        text = response.content
        assert b"cafgw_broker_up 1.0" in text
        assert b'cafgw_queue_messages{queue="caf.inbox.336"} 0.0' in text
        assert b'cafgw_dead_letters_total{authority="332"} 1.0' in text
        result = promtool("check", "metrics", data=text)
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    finally:
        transport.close()
        gw.ledger.engine.dispose()


def test_promtool_accepts_the_alerting_rules() -> None:
    result = promtool("check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"SUCCESS" in result.stdout


def test_alerts_fire_once_per_state_change_as_their_unit_tests_say() -> None:
    tests = sorted(str(p) for p in PROMETHEUS.glob("alerts*_test.yml"))
    assert len(tests) >= 3
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_promtool_accepts_the_prometheus_configuration() -> None:
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
