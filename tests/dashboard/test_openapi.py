"""schemathesis against /openapi.json: generated requests (bounded), never a 500, and
every answer matches the documented schema.

Schemathesis's pytest plugin does not run under this pytest (9.x); the operations'
Hypothesis strategies are driven directly instead, one test per operation.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.dashboard.conftest import ClientFactory

# Bounded: a few dozen cases per operation keep this well under a minute.
MAX_EXAMPLES = 40
OPERATIONS = (
    ("GET", "/api/deals"),
    ("GET", "/api/deals/new"),
    ("GET", "/api/deals/{domain}/{asin}"),
    ("GET", "/api/status"),
    ("GET", "/api/rejections/summary"),
    ("GET", "/api/runs"),
    ("GET", "/healthz"),
)


def test_every_documented_operation_is_fuzzed(make_client: ClientFactory) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", make_client().app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    found = {(op.method.upper(), op.path) for op in operations}
    assert found == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_the_api_matches_its_openapi_document(
    make_client: ClientFactory, method: str, path: str
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", make_client().app)
    operation = schema[path][method]
    calls: list[int] = []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case: schemathesis.Case[Any]) -> None:
        response = case.call_and_validate()
        calls.append(response.status_code)

    run()
    assert calls  # it really called the API
