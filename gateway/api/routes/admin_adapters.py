"""/v1/admin/adapters: list adapters, validate a mapping, dry-run a file, reload mappings.

Admin role only. A mapping that fails validation is refused with 422 and a
message naming the key; on reload the previous mappings stay in force.
"""

from __future__ import annotations

import io
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Body, File, Query, UploadFile
from fastapi.responses import JSONResponse

from adapters.base import Adapter
from gateway.api.deps import AdminDep, GatewayDep
from gateway.context import Gateway
from gateway.errors import MappingError
from gateway.identifiers import la_code_problem
from gateway.services import adapter_admin, preview

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
def reload_mappings(gw: GatewayDep, who: AdminDep) -> dict[str, Any] | JSONResponse:
    """Read every mapping again; if any is invalid, nothing changes. Audited either way."""
    try:
        adapters = adapter_admin.reload(gw, who.actor)
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
    return _dry_run(gw, gw.adapters.get(adapter), authority, body, source)


def _dry_run(
    gw: Gateway, adapter: Adapter, authority: str, body: bytes, source: str
) -> dict[str, Any]:
    report = adapter_admin.dry_run(
        adapter, authority, io.BytesIO(body), source, gw.schema, gw.clock
    )
    answer: dict[str, Any] = {
        "adapter": report.adapter,
        "source": report.source,
        "converted": len(report.records),
        "rejected": report.rejected,
        "records": [asdict(r) for r in report.records],
        "errors": report.errors,
    }
    if authority not in gw.hosted:
        answer["policy"] = {
            "previewed": False,
            "note": f"{authority} is not hosted here: what policy would do is previewed only "
            "for a hosted authority (its consent register and key)",
        }
        return answer
    previewed = preview.preview(gw, adapter, authority, io.BytesIO(body), source)
    answer["policy"] = {
        "previewed": True,
        "summary": preview.summary(previewed),
        "sent": previewed.queued,
        "held": previewed.held,
        "refused": previewed.rejected,
        "outcomes": [
            {
                "record": o.record,
                "case_ref": o.case_ref,
                "kind": o.kind,
                "outcome": o.status.value,
                "recipients": list(o.recipients),
                "reasons": list(o.reasons),
            }
            for o in previewed.outcomes
        ],
        "note": "nothing was kept: a real send gives new message ids, and a consent "
        "recorded in between changes the outcome",
    }
    return answer


@router.post("/draft/dry-run", response_model=None)
async def draft_dry_run(
    gw: GatewayDep,
    _admin: AdminDep,
    mapping: Annotated[UploadFile, File(description="the draft mapping (YAML)")],
    export: Annotated[UploadFile, File(description="a local export to try it on")],
    authority: Annotated[str, Query(pattern=r"^[0-9]{3}$")],
) -> dict[str, Any] | JSONResponse:
    """Try a draft mapping on an export without installing it: conversion and what policy
    would do. Nothing is installed, signed, sent or recorded."""
    text_bytes = await mapping.read(MAX_MAPPING_BYTES + 1)
    body = await export.read(MAX_DRY_RUN_BYTES + 1)
    if len(text_bytes) > MAX_MAPPING_BYTES:
        return _too_large(MAX_MAPPING_BYTES)
    if len(body) > MAX_DRY_RUN_BYTES:
        return _too_large(MAX_DRY_RUN_BYTES)
    if problem := la_code_problem(authority):
        return JSONResponse(
            {"error": "BadAuthority", "detail": f"authority: {problem}"}, status_code=422
        )
    name = mapping.filename or "mapping.yaml"
    try:
        text = text_bytes.decode("utf-8")
        with adapter_admin.draft_adapter(text, name, gw.settings.directory.authorities) as draft:
            return _dry_run(gw, draft, authority, body, export.filename or "upload")
    except UnicodeDecodeError as exc:
        return _refused(MappingError(f"{name}: not UTF-8 text (byte {exc.start})"))
    except MappingError as exc:
        return _refused(exc, valid=False)
