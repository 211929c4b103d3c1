"""/readyz with reasons, /metrics over HTTP, /healthz untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from ops_helpers import FakeProbe, make_gateway

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.api.routes.ops import OpsState
from gateway.ops import readiness

pytestmark = pytest.mark.timeout(60)


def client(tmp_path: Path, probe: FakeProbe) -> TestClient:
    gw = make_gateway(tmp_path)
    app = create_app(gw, ApiKeys(tmp_path / "api-keys.json"))
    app.state.cafgw_ops = OpsState.for_gateway(gw, probe)
    return TestClient(app)


def test_readyz_is_ready_when_broker_ledger_disk_and_keys_are_fine(tmp_path: Path) -> None:
    response = client(tmp_path, FakeProbe()).get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"broker", "ledger", "disk", "keys"}
    assert "332, 336" in body["checks"]["keys"]["detail"]


def test_readyz_says_the_broker_is_why_it_is_not_ready(tmp_path: Path) -> None:
    response = client(tmp_path, FakeProbe(up=False)).get("/readyz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False
    assert "not reachable" in broker["detail"]


def test_low_disk_space_makes_the_gateway_not_ready(tmp_path: Path) -> None:
    gw = make_gateway(tmp_path)
    result = readiness.check(gw, FakeProbe(), min_free_bytes=1 << 60)
    disk = next(c for c in result.checks if c.name == "disk")
    assert not result.ready
    assert "below the minimum" in disk.detail


def test_metrics_are_served_in_the_prometheus_text_format(tmp_path: Path) -> None:
    response = client(tmp_path, FakeProbe()).get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE cafgw_messages gauge" in response.text
    assert "# TYPE cafgw_delivery_latency_seconds histogram" in response.text
    assert "# TYPE cafgw_check_processes gauge" in response.text
    assert "# TYPE cafgw_check_process_failures_total counter" in response.text
