"""Property-based API testing from /openapi.json: no 5xx, no answer outside the schema.

Schemathesis generates requests for every documented operation (valid and
invalid parameters and bodies) and sends them as an authority and as an
administrator; every answer must be documented (status, content type, body
schema) and none may be a server error. Its ``ignored_auth`` check also
re-sends each request without the key and expects a 401.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.api_security_app import SecuredApp, secured_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredApp]:
    made = secured_app(tmp_path)
    try:
        yield made
    finally:
        made.gw.ledger.engine.dispose()


EXAMPLES_PER_OPERATION = 10


def test_no_operation_answers_a_server_error_or_outside_its_schema(secured: SecuredApp) -> None:
    # Driven by hand rather than through schemathesis' pytest plugin, which
    # does not run under this pytest version.
    api = schemathesis.openapi.from_asgi("/openapi.json", secured.app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            for key in (secured.dudley, secured.admin):
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {key}"},
                    excluded_checks=[schemathesis.checks.positive_data_acceptance],
                )

        check()
