"""/readyz (may this gateway take traffic, and if not why) and /metrics (Prometheus)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from gateway import metrics
from gateway.context import Gateway
from gateway.ops import readiness
from gateway.ops.broker import BrokerProbe, RabbitProbe
from gateway.services.receiving.check_pool import CheckPoolCollector

router = APIRouter(tags=["operations"])
_lock = threading.Lock()


@dataclass(frozen=True)
class OpsState:
    """The broker probe and metrics registry of one app, made on first use."""

    probe: BrokerProbe
    registry: CollectorRegistry

    @classmethod
    def for_gateway(cls, gw: Gateway, probe: BrokerProbe | None = None) -> OpsState:
        probe = probe or RabbitProbe.from_settings(gw.settings)
        registry = metrics.build_registry(gw, probe)
        registry.register(CheckPoolCollector())  # this process's check processes
        return cls(probe, registry)


def ops_state(request: Request) -> OpsState:
    """This app's OpsState (tests may set ``app.state.cafgw_ops`` beforehand)."""
    state: OpsState | None = getattr(request.app.state, "cafgw_ops", None)
    if state is None:
        with _lock:
            state = getattr(request.app.state, "cafgw_ops", None)
            if state is None:
                state = OpsState.for_gateway(request.app.state.gateway)
                request.app.state.cafgw_ops = state
    return state


OpsDep = Annotated[OpsState, Depends(ops_state)]


@router.get(
    "/readyz",
    responses={503: {"description": "not ready; `checks` says why"}},
)
def readyz(request: Request, ops: OpsDep) -> JSONResponse:
    """Broker and ledger reachable, enough disk space, signing keys loaded."""
    result = readiness.check(request.app.state.gateway, ops.probe)
    body = {
        "status": "ready" if result.ready else "not ready",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in result.checks},
    }
    return JSONResponse(body, status_code=200 if result.ready else 503)


@router.get("/metrics", response_class=Response)
def prometheus_metrics(ops: OpsDep) -> Response:
    """Prometheus text format (no personal data: counts, depths and deadlines only)."""
    return Response(metrics.render(ops.registry), media_type=CONTENT_TYPE_LATEST)
