"""Issue 13, item 10 (API): every route is either in the documented public list or needs a
key; /docs and /redoc load nothing from a CDN; a dispute's text is limited at the API."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from gateway.api.app import create_app
from gateway.api.auth import ApiKeys
from gateway.api.deps import PUBLIC_PATHS
from tests.dispute_helpers import Clock, memory_gateway
from tests.unit.test_dispute_api import NEW

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_and_keys(tmp_path: Path) -> tuple[TestClient, ApiKeys]:
    gw = memory_gateway(tmp_path, hosted=("332", "336"), clock=Clock())
    keys = ApiKeys(gw.settings.api_keys_file)
    return TestClient(create_app(gw, keys)), keys


def _documented_public_paths() -> set[str]:
    """The paths docs/security.md lists under "Public routes"."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    section = text.split("### Public routes", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^\| `(/[^`]*)` \|", section, flags=re.MULTILINE))


def test_every_route_is_public_by_the_documented_list_or_needs_a_key(
    app_and_keys: tuple[TestClient, ApiKeys],
) -> None:
    client, _ = app_and_keys
    assert _documented_public_paths() == set(PUBLIC_PATHS)
    checked = 0
    for context in iter_route_contexts(client.app.routes):  # type: ignore[attr-defined]
        route = context.route
        assert not isinstance(route, Mount), f"{context.path}: a mount is outside the key check"
        path = context.path
        if path in PUBLIC_PATHS:
            continue
        # Only an APIRoute gets the application's key dependency.
        assert isinstance(route, APIRoute), f"{path} is not in PUBLIC_PATHS and needs no key"
        concrete = re.sub(r"\{[^}]+\}", "332", path)
        for method in context.methods or ():
            answer = client.request(method, concrete)
            assert answer.status_code == 401, (method, path, answer.status_code, answer.text)
            checked += 1
    assert checked > 40


def test_docs_and_redoc_load_their_scripts_from_this_gateway(
    app_and_keys: tuple[TestClient, ApiKeys],
) -> None:
    client, _ = app_and_keys
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200, page
        sources = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html.text)
        sources += re.findall(r"""url: ?['"]([^'"]+)['"]""", html.text)
        assert sources, page
        assert not [s for s in sources if "//" in s], (page, sources)  # no CDN, no host
        for source in sources:
            if source.startswith("/docs/static/"):
                asset = client.get(source)
                assert asset.status_code == 200 and len(asset.content) > 1000, source
    assert client.get("/docs/static/../../etc/passwd").status_code == 404
    assert client.get("/openapi.json").json()["info"]["title"] == "cafgw"


def test_a_dispute_comment_over_the_limit_is_refused_naming_it(
    app_and_keys: tuple[TestClient, ApiKeys],
) -> None:
    client, keys = app_and_keys
    auth = {"Authorization": f"Bearer {keys.issue('332')}"}
    made = client.post("/v1/disputes", json=NEW, headers=auth)
    assert made.status_code == 201, made.text
    dispute = made.json()["dispute_id"]
    long_text = "x" * 900_000  # the attack run's 900 KB comment
    refused = client.post(
        f"/v1/disputes/{dispute}/comment",
        json={"by": "Karen Hale", "text": long_text},
        headers=auth,
    )
    assert refused.status_code == 413, refused.text[:300]
    assert refused.json()["limit"] == "max_comment_chars"
    assert "900000 characters" in refused.json()["detail"]
    too_long_subject = dict(NEW, subject="y" * 20_001)
    assert client.post("/v1/disputes", json=too_long_subject, headers=auth).status_code == 413
    fits = client.post(
        f"/v1/disputes/{dispute}/comment",
        json={"by": "Karen Hale", "text": "z" * 20_000},
        headers=auth,
    )
    assert fits.status_code == 200, fits.text[:300]
