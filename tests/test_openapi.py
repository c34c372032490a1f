"""schemathesis against a live server: every answer is one the OpenAPI description promises.

Webhook cases are signed the way Voucherify signs, so generated bodies reach decoding and
storage, not only the signature check; exports cases carry a valid API key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from service import signing
from service.openapi import SPEC
from tests.conftest import SECRET
from tests.exports.conftest import APP_ID, APP_TOKEN, LiveServer

schema = schemathesis.openapi.from_dict(SPEC)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(database_url: str) -> Iterator[LiveServer]:
    with LiveServer(database_url) as server:
        yield server


def test_the_description_is_served(live: LiveServer) -> None:
    assert httpx.get(f"{live.base}/openapi.json").json() == json.loads(json.dumps(SPEC))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_described(
    case: schemathesis.Case,  # type: ignore[type-arg]  # generic only in the stubs' eyes
    live: LiveServer,
) -> None:
    headers = {"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN}
    if case.path == "/webhooks/voucherify" and isinstance(case.body, dict):
        # requests sends json.dumps(body); its compacted form is what Voucherify signs.
        compact = json.dumps(case.body, separators=(",", ":")).encode()
        headers["x-voucherify-signature"] = signing.sign(SECRET, compact)
    case.call_and_validate(base_url=live.base, headers=headers, checks=CHECKS)
