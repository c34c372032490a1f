"""Hostile and random input: every answer is one of the contract's, never a 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import db
from service.app import create_app
from service.intake import Rejected, parse
from service.signing import SIGNATURE_HEADER
from tests.conftest import (
    WEBHOOK,
    compact_json,
    fixture_types,
    load_fixture,
    signed,
    start_app,
)
from tests.conftest import settings as app_settings

CONTRACT_STATUSES = {200, 202, 400, 401, 408, 413, 415, 422, 431, 503}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A real fixture with one field replaced by something random, or random JSON."""
    if draw(st.booleans()):
        return json.dumps(draw(json_values)).encode()
    activity: dict[str, Any] = load_fixture(draw(st.sampled_from(fixture_types())))
    target: Any = activity
    path = draw(st.lists(st.text(min_size=1, max_size=6), max_size=3))
    for wanted in ["data", *path]:
        if not isinstance(target, dict) or not target:
            break
        key = wanted if wanted in target else draw(st.sampled_from(sorted(target)))
        if not isinstance(target[key], dict):
            target[key] = draw(json_values)
            break
        target = target[key]
    else:
        target["injected"] = draw(json_values)
    return compact_json(activity)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512) | mutated_events())
def test_parse_accepts_or_rejects_anything_without_crashing(body: bytes) -> None:
    """Random bytes and mutated events: an Incoming, or a Rejected with a contract status."""
    try:
        incoming = parse(body)
    except Rejected as exc:
        status = exc.status
    else:
        assert incoming.event_id
        assert incoming.type
        return
    assert status in (400, 422)


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deeply_nested_json_is_refused_not_crashed(depth: int) -> None:
    deep = b'{"id":"e","type":"customer.created","data":' + b"[" * depth + b"]" * depth + b"}"
    with pytest.raises(Rejected) as raised:
        parse(deep)
    assert raised.value.status == 400
    assert raised.value.key == "json_too_deep"


async def test_deeply_nested_json_gets_401_or_400_not_500(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """A wrong signature makes the check compact the body, which nests too deep to
    compact: still a 401 (it was an uncaught RecursionError, a 500). Signed, it is refused
    as too deep."""
    deep = b'{"id":"e","type":"customer.created","data":' + b"[" * 5000 + b"]" * 5000 + b"}"
    headers = {"content-type": "application/json"}
    wrong = await client.post(WEBHOOK, content=deep, headers=headers | {SIGNATURE_HEADER: "00"})
    assert (wrong.status_code, wrong.json()["key"]) == (401, "invalid_signature")
    right = await client.post(WEBHOOK, content=deep, headers=signed(deep))
    assert (right.status_code, right.json()["key"]) == (400, "json_too_deep")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=mutated_events())
async def test_the_endpoint_answers_random_signed_payloads_with_contract_statuses(
    client: httpx.AsyncClient, conn: db.Connection, body: bytes
) -> None:
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.status_code in CONTRACT_STATUSES, response.text
    assert response.status_code != 503, response.text
    if response.status_code >= 400:
        assert response.json()["key"]


async def test_huge_numbers_and_strings_are_stored_or_quarantined(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    activity = load_fixture("customer.order.paid")
    activity["data"]["order"]["amount"] = 10**40
    activity["data"]["customer"]["name"] = "x" * 200_000
    body = compact_json(activity)
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.status_code == 202
    assert response.json()["outcome"] == "quarantined"


async def test_oversized_headers_are_refused_with_431(
    database_url: str, conn: db.Connection
) -> None:
    app = create_app(app_settings(max_header_bytes=4096), database_url)
    body = compact_json(load_fixture("customer.created"))
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        response = await client.post(
            WEBHOOK, content=body, headers=signed(body) | {"x-padding": "a" * 8192}
        )
    assert response.status_code == 431
    assert await conn.fetchval("SELECT count(*) FROM events") == 0


async def test_a_body_that_trickles_in_is_cut_off_with_408(
    database_url: str, conn: db.Connection
) -> None:
    """Slow clients (slowloris) cannot hold a request open past BODY_TIMEOUT_SECONDS."""
    app = create_app(app_settings(body_timeout_seconds=0.3), database_url)
    body = compact_json(load_fixture("customer.created"))

    async def trickle() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64):
            await asyncio.sleep(0.05)
            yield body[start : start + 64]

    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        response = await client.post(WEBHOOK, content=trickle(), headers=signed(body))
    assert response.status_code == 408
    assert response.json()["key"] == "request_timeout"
    assert await conn.fetchval("SELECT count(*) FROM events") == 0
