"""/v1/admin/adapters: list adapters, validate a mapping, dry-run a file, reload mappings.

Admin role only. A mapping that fails validation is refused with 422 and a
message naming the key; on reload the previous mappings stay in force.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from gateway.api.deps import AdminDep, GatewayDep
from gateway.errors import MappingError
from gateway.identifiers import la_code_problem
from gateway.services import adapter_admin

router = APIRouter(prefix="/v1/admin/adapters", tags=["admin"])

# A dry run answers with every record's XML, so the file it takes is bounded.
MAX_DRY_RUN_BYTES = 20_000_000
MAX_MAPPING_BYTES = 1_000_000

RawBody = Annotated[bytes, Body(media_type="application/octet-stream")]


def _refused(exc: MappingError, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": "MappingError", "detail": str(exc), **extra}, status_code=422)


def _too_large(limit: int) -> JSONResponse:
    detail = f"the body is larger than {limit} bytes"
    return JSONResponse({"error": "TooLarge", "detail": detail}, status_code=413)


@router.get("")
def list_adapters(gw: GatewayDep, _admin: AdminDep) -> list[dict[str, Any]]:
    """Every adapter in force, with its version, authority and kind."""
    return [asdict(a) for a in adapter_admin.describe(gw.adapters)]


@router.post("/validate", response_model=None)
def validate_mapping(body: RawBody, _admin: AdminDep) -> dict[str, Any] | JSONResponse:
    """Check a mapping file (the body, YAML) without putting it in force."""
    if len(body) > MAX_MAPPING_BYTES:
        return _too_large(MAX_MAPPING_BYTES)
    try:
        text = body.decode("utf-8")
        found = adapter_admin.validate_mapping(text, "mapping")
    except UnicodeDecodeError as exc:
        return _refused(MappingError(f"mapping: not UTF-8 text (byte {exc.start})"))
    except MappingError as exc:
        return _refused(exc, valid=False)
    return {"valid": True, **asdict(found)}


@router.post("/reload", response_model=None)
def reload_mappings(gw: GatewayDep, _admin: AdminDep) -> dict[str, Any] | JSONResponse:
    """Read every mapping again; if any is invalid, nothing changes."""
    try:
        adapters = adapter_admin.reload(gw)
    except MappingError as exc:
        return _refused(exc, reloaded=False, note="the previous mappings remain in force")
    return {"reloaded": True, "adapters": [asdict(a) for a in adapters]}


@router.post("/dry-run", response_model=None)
def dry_run(
    body: RawBody,
    gw: GatewayDep,
    _admin: AdminDep,
    adapter: Annotated[str, Query(min_length=1, max_length=100)],
    authority: Annotated[str, Query(pattern=r"^[0-9]{3}$")],
    source: Annotated[str, Query(max_length=200)] = "upload",
) -> dict[str, Any] | JSONResponse:
    """Convert the body as ``authority`` would send it: canonical XML and every error.

    Nothing is signed, sent or recorded.
    """
    if len(body) > MAX_DRY_RUN_BYTES:
        return _too_large(MAX_DRY_RUN_BYTES)
    if problem := la_code_problem(authority):
        # Any DfE code: an administrator may try a new authority's mapping
        # before the authority is in the region directory.
        detail = f"authority: {problem}"
        return JSONResponse({"error": "BadAuthority", "detail": detail}, status_code=422)
    report = adapter_admin.dry_run(
        gw.adapters.get(adapter), authority, io.BytesIO(body), source, gw.schema, gw.clock
    )
    return {
        "adapter": report.adapter,
        "source": report.source,
        "converted": len(report.records),
        "rejected": report.rejected,
        "records": [asdict(r) for r in report.records],
        "errors": report.errors,
    }
