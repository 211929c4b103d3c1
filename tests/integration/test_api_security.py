"""API access control: every route authenticated, roles, no existence leaks, size limits.

The route tests enumerate the application's routes, so a route added later
is checked without changing this file.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.api import deps
from gateway.ledger.records import NewMessage
from gateway.ledger.status import Direction, Status
from tests.integration.api_security_app import SecuredApp, secured_app

pytestmark = [pytest.mark.timeout(60)]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredApp]:
    made = secured_app(tmp_path)
    try:
        yield made
    finally:
        made.gw.ledger.engine.dispose()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _flatten(routes: list[Any]) -> Iterator[Any]:
    # FastAPI keeps included routers as branches; their effective routes
    # carry the full path, methods and dependencies.
    for route in routes:
        if hasattr(route, "effective_candidates"):
            yield from _flatten(route.effective_candidates())
        elif isinstance(getattr(route, "methods", None), set) and hasattr(route, "dependant"):
            yield route


def _routes(secured: SecuredApp) -> list[tuple[str, str, Any]]:
    found = []
    for route in _flatten(list(secured.app.routes)):
        path = re.sub(r"\{[^}]+\}", "x1", route.path)
        found.extend((method, path, route) for method in sorted(route.methods))
    return found


def _depends_on(route: Any, target: object) -> bool:
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is target:
            return True
        stack.extend(dependant.dependencies)
    return False


def test_every_non_public_route_answers_401_without_a_key_or_with_a_wrong_one(
    secured: SecuredApp,
) -> None:
    client = TestClient(secured.app, raise_server_exceptions=False)
    checked = 0
    for method, path, route in _routes(secured):
        if route.path in deps.PUBLIC_PATHS:
            continue
        for headers in ({}, _auth("cafgw_not-a-real-key"), {"Authorization": "Basic eDp5"}):
            response = client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers.get("www-authenticate") == "Bearer"
        checked += 1
    assert checked >= 10  # messages, inbox, disputes, dashboard, ... are all there


def test_only_the_listed_public_routes_answer_without_a_key(secured: SecuredApp) -> None:
    client = TestClient(secured.app, raise_server_exceptions=False)
    assert client.get("/healthz").status_code == 200
    public = {r.path for _m, _p, r in _routes(secured) if r.path in deps.PUBLIC_PATHS}
    assert public <= deps.PUBLIC_PATHS
    assert not any(p.startswith("/v1/") for p in public)


def test_admin_routes_answer_403_to_an_authority_key(secured: SecuredApp) -> None:
    client = TestClient(secured.app, raise_server_exceptions=False)
    admin_routes = [(m, p) for m, p, r in _routes(secured) if _depends_on(r, deps.admin)]
    assert admin_routes, "no admin route found"
    for method, path in admin_routes:
        response = client.request(method, path, headers=_auth(secured.dudley), json={})
        assert response.status_code == 403, (method, path, response.text)
        assert "www-authenticate" not in response.headers


def _outbound(secured: SecuredApp, sender: str) -> str:
    message_id = str(uuid.uuid4())
    secured.gw.ledger.record(
        [
            NewMessage(
                message_id=message_id,
                direction=Direction.OUTBOUND,
                authority=sender,
                sender=sender,
                recipient="333",
                message_type="Notification",
                correlation_id=str(uuid.uuid4()),
                legal_basis="NO_PERSONAL_DATA",
                statuses=((Status.ACCEPTED, None), (Status.SIGNED, None)),
            )
        ]
    )
    return message_id


def test_another_authoritys_message_is_a_404_indistinguishable_from_a_missing_one(
    secured: SecuredApp,
) -> None:
    client = TestClient(secured.app)
    theirs = _outbound(secured, "332")
    missing = str(uuid.uuid4())
    own = client.get(f"/v1/messages/{theirs}", headers=_auth(secured.dudley))
    assert own.status_code == 200
    foreign = client.get(f"/v1/messages/{theirs}", headers=_auth(secured.wolves))
    absent = client.get(f"/v1/messages/{missing}", headers=_auth(secured.wolves))
    assert foreign.status_code == absent.status_code == 404
    assert foreign.json() == {
        **absent.json(),
        "detail": absent.json()["detail"].replace(missing, theirs),
    }
    assert client.get(f"/v1/messages/{theirs}", headers=_auth(secured.admin)).status_code == 200


def test_an_authority_cannot_read_another_authoritys_inbox_or_listing(
    secured: SecuredApp,
) -> None:
    client = TestClient(secured.app)
    for path in ("/v1/inbox?authority=332", "/v1/messages?authority=332"):
        response = client.get(path, headers=_auth(secured.wolves))
        assert response.status_code == 404, path
    listing = client.get("/v1/messages", headers=_auth(secured.wolves))
    assert listing.status_code == 200
    _outbound(secured, "332")
    assert client.get("/v1/messages", headers=_auth(secured.wolves)).json() == []
    assert len(client.get("/v1/messages", headers=_auth(secured.dudley)).json()) == 1


def test_a_declared_oversize_body_is_refused_with_413_before_the_route_runs(
    secured: SecuredApp,
) -> None:
    client = TestClient(secured.app)
    response = client.post(
        "/v1/disputes",
        headers={**_auth(secured.dudley), "Content-Type": "application/json"},
        content=b"{" + b" " * (2 * 1024 * 1024) + b"}",
    )
    assert response.status_code == 413


def test_a_streamed_oversize_body_without_length_is_cut_off_with_413(
    secured: SecuredApp,
) -> None:
    client = TestClient(secured.app)
    chunk = b"x" * (256 * 1024)

    def body() -> Iterator[bytes]:
        for _ in range(8):  # 2 MiB, no Content-Length
            yield chunk

    response = client.post(
        "/v1/messages",
        headers={**_auth(secured.dudley), "Content-Type": "application/xml"},
        content=body(),
    )
    # Canonical XML submissions are capped at limits.max_message_bytes (2 MB)
    # by the route and at 200 MiB by the middleware; a JSON route at 1 MiB.
    assert response.status_code in (400, 413)
    response = client.post(
        "/v1/disputes",
        headers={**_auth(secured.dudley), "Content-Type": "application/json"},
        content=body(),
    )
    assert response.status_code == 413


def test_api_keys_are_stored_only_as_hashes(secured: SecuredApp, tmp_path: Path) -> None:
    stored = (tmp_path / "api-keys.json").read_text()
    for key in (secured.dudley, secured.wolves, secured.admin):
        assert key not in stored
    assert (tmp_path / "api-keys.json").stat().st_mode & 0o077 == 0
