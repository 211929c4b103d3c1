"""/healthz: the process is alive."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    return HealthOut(status="ok")
