"""The receiver over HTTP against a real Postgres: every row of the contract's status table."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import weakref
from collections.abc import MutableMapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from starlette.middleware.gzip import GZipMiddleware
from structlog.testing import capture_logs

from service import db, migrate
from service.app import GC_THRESHOLDS, create_app, settle_heap
from tests.conftest import (
    SECRET,
    WEBHOOK,
    admin_sql,
    compact_json,
    database_name,
    envelope,
    fixture_types,
    load_fixture,
    pretty_json,
    settings,
    signed,
    start_app,
)

ORDER_PAID = "customer.order.paid"


async def stored(conn: db.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT * FROM events ORDER BY received_at, id")
    return [dict(row) for row in rows]


@pytest.mark.parametrize("shape", ["activity", "envelope"])
@pytest.mark.parametrize("layout", ["compact", "pretty"])
@pytest.mark.parametrize("event_type", fixture_types())
async def test_every_event_type_in_both_shapes_and_layouts_is_stored_and_processed(
    client: httpx.AsyncClient, conn: db.Connection, event_type: str, shape: str, layout: str
) -> None:
    """A signed fixture of each of the 74 types, in either wire shape and either layout, is
    answered 202 after its row is committed with the right id, family and status."""
    activity = load_fixture(event_type)
    payload = envelope(activity) if shape == "envelope" else activity
    body = pretty_json(payload) if layout == "pretty" else compact_json(payload)

    response = await client.post(WEBHOOK, content=body, headers=signed(body))

    assert response.status_code == 202, response.text
    assert response.json() == {"event_id": activity["id"], "outcome": "processed"}
    [row] = await stored(conn)
    assert row["id"] == activity["id"]
    assert row["type"] == event_type
    assert row["family"] != "unknown"
    assert row["status"] == "processed"
    assert row["error"] is None
    assert row["payload"] == payload
    assert row["group_id"] == activity["group_id"]
    assert row["created_at"].isoformat().startswith("2022-08-30T09:14:07.660")
    customer = activity["data"].get("customer") or {}
    assert row["customer_id"] == customer.get("id")
    if shape == "envelope":
        assert row["delivery_id"] == payload["id"]
        assert row["project_id"] == payload["project_id"]


async def test_the_same_event_through_both_shapes_and_retries_is_stored_once(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Retries and the other wire shape of an already stored event id answer 200 duplicate."""
    activity = load_fixture(ORDER_PAID)
    bodies = [
        compact_json(activity),
        pretty_json(activity),
        compact_json(envelope(activity, "whs_first")),
        compact_json(envelope(activity, "whs_retry")),
    ]
    answers = [await client.post(WEBHOOK, content=b, headers=signed(b)) for b in bodies]

    assert [a.status_code for a in answers] == [202, 200, 200, 200]
    assert [a.json()["outcome"] for a in answers[1:]] == ["duplicate"] * 3
    assert len(await stored(conn)) == 1


async def test_fifty_concurrent_deliveries_of_one_event_leave_one_row(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Racing deliveries of one event id: exactly one is new, the rest are duplicates."""
    body = compact_json(load_fixture(ORDER_PAID))
    answers = await asyncio.gather(
        *(client.post(WEBHOOK, content=body, headers=signed(body)) for _ in range(50))
    )

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 49 + [202]
    assert await conn.fetchval("SELECT count(*) FROM events") == 1


async def test_an_unknown_type_is_stored_raw_as_family_unknown(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """A type outside Voucherify's 74 is kept, raw, for a later version to understand."""
    payload = {"id": "evcus_new1", "type": "customer.hologram.sent", "data": {"x": [1, {}]}}
    body = compact_json(payload)

    response = await client.post(WEBHOOK, content=body, headers=signed(body))

    assert response.status_code == 202
    assert response.json()["outcome"] == "unknown"
    [row] = await stored(conn)
    assert (row["family"], row["status"], row["payload"]) == ("unknown", "processed", payload)


async def test_a_known_type_whose_data_does_not_decode_is_quarantined_with_the_reason(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Data of the wrong shape is accepted, stored raw, quarantined, and the error says where."""
    activity = load_fixture(ORDER_PAID)
    activity["data"]["order"]["amount"] = "a lot"
    body = compact_json(activity)

    response = await client.post(WEBHOOK, content=body, headers=signed(body))

    assert response.status_code == 202
    assert response.json()["outcome"] == "quarantined"
    [row] = await stored(conn)
    assert row["status"] == "quarantined"
    assert row["family"] == "order"
    assert "$.data.order.amount" in row["error"]
    assert row["payload"] == activity


async def test_an_event_missing_what_its_rows_need_is_quarantined_by_its_handler(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """An order event without an order id decodes, but cannot be normalized: quarantined."""
    activity = load_fixture(ORDER_PAID)
    del activity["data"]["order"]["id"]
    body = compact_json(activity)

    response = await client.post(WEBHOOK, content=body, headers=signed(body))

    assert response.status_code == 202
    assert response.json()["outcome"] == "quarantined"
    [row] = await stored(conn)
    assert row["status"] == "quarantined"
    assert "data.order.id is missing" in row["error"]


async def test_drifted_payloads_with_nulls_missing_and_extra_fields_still_process(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Real payloads drop fields, send nulls and add keys and nested shapes the docs lack."""
    activity = load_fixture(ORDER_PAID)
    data = activity["data"]
    data["order"] = {"id": "ord_drift", "amount": None, "items": None, "brand_new": {"a": [1]}}
    data["customer"]["name"] = None
    del data["customer"]["email"]
    data["surprise"] = [{"nested": {"deeper": True}}]
    activity["event_source"] = None
    activity["extra_top_level"] = "ignored"
    body = compact_json(activity)

    response = await client.post(WEBHOOK, content=body, headers=signed(body))

    assert response.status_code == 202
    assert response.json()["outcome"] == "processed"
    [row] = await stored(conn)
    assert row["payload"]["data"]["surprise"] == [{"nested": {"deeper": True}}]


@pytest.mark.parametrize(
    ("signature", "why"),
    [(None, "missing"), ("0" * 64, "wrong"), ("not-hex", "malformed")],
)
async def test_a_missing_or_wrong_signature_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, conn: db.Connection, signature: str | None, why: str
) -> None:
    """401 for a {why} signature; the database stays empty."""
    body = compact_json(load_fixture(ORDER_PAID))
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-voucherify-signature"] = signature

    response = await client.post(WEBHOOK, content=body, headers=headers)

    assert response.status_code == 401
    assert response.json()["key"] == "invalid_signature"
    assert await stored(conn) == []


async def test_a_signature_made_with_another_secret_is_refused(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    body = compact_json(load_fixture(ORDER_PAID))
    response = await client.post(WEBHOOK, content=body, headers=signed(body, "other-secret"))
    assert response.status_code == 401
    assert await stored(conn) == []


async def test_a_body_altered_after_signing_is_refused(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    body = compact_json(load_fixture(ORDER_PAID))
    headers = signed(body)
    tampered = body.replace(b'"amount":1000', b'"amount":1', 1)
    assert tampered != body
    response = await client.post(WEBHOOK, content=tampered, headers=headers)
    assert response.status_code == 401
    assert await stored(conn) == []


async def test_any_of_several_configured_secrets_is_accepted_during_rotation(
    database_url: str, conn: db.Connection
) -> None:
    """With old and new secrets configured, deliveries signed with either are accepted."""
    app = create_app(settings(webhook_secrets=("new-secret", "old-secret")), database_url)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        for n, secret in enumerate(["old-secret", "new-secret"]):
            activity = load_fixture(ORDER_PAID) | {"id": f"evcus_rot{n}"}
            body = compact_json(activity)
            response = await client.post(WEBHOOK, content=body, headers=signed(body, secret))
            assert response.status_code == 202
        body = compact_json(load_fixture(ORDER_PAID))
        response = await client.post(WEBHOOK, content=body, headers=signed(body, SECRET))
        assert response.status_code == 401
    assert await conn.fetchval("SELECT count(*) FROM events") == 2


@pytest.mark.parametrize(
    ("body", "status", "key"),
    [
        (b"{not json", 400, "invalid_json"),
        (b"", 400, "invalid_json"),
        (
            b'{"id": "evcus_1", "type": "customer.created", "data": {"name": "\xff\xfe"}}',
            400,
            "invalid_encoding",
        ),
        (b"[1, 2, 3]", 422, "invalid_event"),
        (b'"just a string"', 422, "invalid_event"),
        (b'{"type": "customer.created", "data": {}}', 422, "missing_id"),
        (b'{"id": "evcus_1", "data": {}}', 422, "missing_type"),
        (b'{"id": "evcus_1", "type": 7, "data": {}}', 422, "invalid_event"),
        (b'{"id": "", "type": "customer.created", "data": {}}', 422, "missing_id"),
    ],
)
async def test_bodies_that_cannot_be_stored_get_a_json_error_and_store_nothing(
    client: httpx.AsyncClient, conn: db.Connection, body: bytes, status: int, key: str
) -> None:
    """Properly signed but unusable bodies: 400 (not JSON/UTF-8) or 422 (no id or type)."""
    response = await client.post(WEBHOOK, content=body, headers=signed(body))

    assert response.status_code == status
    error = response.json()
    assert error["code"] == status
    assert error["key"] == key
    assert error["message"]
    assert await stored(conn) == []


@pytest.mark.parametrize(
    ("drift", "path"),
    [
        ({"created_at": 1700000000}, "$.created_at"),
        ({"group_id": 123}, "$.group_id"),
        ({"event": {"id": "evcus_drift_env", "entity_id": 5}}, "$.event.entity_id"),
    ],
)
async def test_an_optional_outer_field_of_another_type_is_stored_quarantined_not_refused(
    client: httpx.AsyncClient, conn: db.Connection, drift: dict[str, Any], path: str
) -> None:
    """With a usable id and type the event is kept (contract section 2: 422 only without
    them): a 422 would have Voucherify retry and then drop it. The full decode names the
    mismatch, so it is quarantined, visibly, and replayable once the decoder learns it."""
    activity = load_fixture(ORDER_PAID) | {"id": "evcus_drift"} | drift
    body = compact_json(activity)
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.status_code == 202
    assert response.json()["outcome"] == "quarantined"
    [row] = await stored(conn)
    assert row["id"] == activity.get("event", {}).get("id", "evcus_drift")
    assert row["status"] == "quarantined"
    assert path in row["error"]
    for column in drift.keys() & {"created_at", "group_id"}:
        assert row[column] is None  # as if absent


async def test_a_body_over_the_limit_is_refused_with_413(
    database_url: str, conn: db.Connection
) -> None:
    app = create_app(settings(max_body_bytes=2048), database_url)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        activity = load_fixture(ORDER_PAID)
        activity["data"]["padding"] = "x" * 4096
        body = compact_json(activity)
        response = await client.post(WEBHOOK, content=body, headers=signed(body))

        async def chunks() -> Any:
            # No Content-Length: the limit holds while streaming too.
            for _ in range(5):
                yield b" " * 1024

        streamed = await client.post(WEBHOOK, content=chunks(), headers=signed(b""))
    assert response.status_code == 413
    assert response.json()["key"] == "payload_too_large"
    assert streamed.status_code == 413
    assert await stored(conn) == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_content_type_other_than_json_is_refused_with_415(
    client: httpx.AsyncClient, conn: db.Connection, content_type: str | None
) -> None:
    body = compact_json(load_fixture(ORDER_PAID))
    headers = signed(body)
    del headers["content-type"]
    if content_type:
        headers["content-type"] = content_type
    response = await client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 415
    assert await stored(conn) == []


async def test_json_with_a_charset_parameter_is_accepted(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    body = compact_json(load_fixture(ORDER_PAID))
    headers = signed(body) | {"content-type": "application/json; charset=utf-8"}
    response = await client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 202


async def test_an_unreachable_database_answers_503_with_retry_after_and_ready_fails(
    create_database: Any,
) -> None:
    """Postgres down: Voucherify is told to retry (503 + Retry-After), fast, never a 500."""
    unreachable = "postgresql://postgres@127.0.0.1:1/nowhere"
    app = create_app(settings(retry_after_seconds=7), unreachable)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        body = compact_json(load_fixture(ORDER_PAID))
        response = await client.post(WEBHOOK, content=body, headers=signed(body))
        ready = await client.get("/readyz")
        health = await client.get("/healthz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["key"] == "service_unavailable"
    assert ready.status_code == 503
    assert "unreachable" in ready.json()["reason"]
    assert health.status_code == 200


async def test_a_database_that_refuses_us_answers_503_not_500(
    create_database: Any, server_url: str
) -> None:
    """The server answers but will not let us in (here the database does not exist; a
    wrong password is the same class of error): deliveries get 503 + Retry-After and
    the probe a 503 that names the reason. The probe was once a plain-text 500."""
    url = create_database()
    name = database_name(url)
    admin_sql(server_url, f'DROP DATABASE "{name}"')
    async with AsyncExitStack() as stack:
        client = await start_app(stack, create_app(settings(), url))
        body = compact_json(load_fixture(ORDER_PAID))
        response = await client.post(WEBHOOK, content=body, headers=signed(body))
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert ready.status_code == 503
    assert ready.json()["reason"].startswith("database unreachable: InvalidCatalogNameError")


async def test_ready_only_when_the_schema_is_at_the_latest_migration(
    create_database: Any, database_url: str
) -> None:
    """/readyz is 503 on a database that has not been migrated, 200 on one at head."""
    behind = create_database()
    async with AsyncExitStack() as stack:
        not_migrated = await start_app(stack, create_app(settings(), behind))
        migrated = await start_app(stack, create_app(settings(), database_url))
        behind_answer = await not_migrated.get("/readyz")
        ready_answer = await migrated.get("/readyz")
    assert behind_answer.status_code == 503
    assert "run migrate" in behind_answer.json()["reason"]
    assert ready_answer.status_code == 200


async def test_ready_past_this_release_and_not_ready_behind_it(create_database: Any) -> None:
    """The next release migrates before its rollout: pods of this one stay ready (and a
    rollback becomes ready) on a schema past their head; a schema behind it is not."""
    url = create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    app = create_app(settings(), url)
    answers = []
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        conn = await db.connect(url)
        stack.push_async_callback(conn.close)
        for revision in ("f00dfeedbeef", sorted(migrate.older_revisions())[0]):
            await conn.execute("UPDATE alembic_version SET version_num = $1", revision)
            answers.append(await client.get("/readyz"))
    ahead, behind = answers
    assert ahead.status_code == 200
    assert ahead.json() == {"status": "ready", "schema": "f00dfeedbeef"}
    assert behind.status_code == 503
    assert "run migrate" in behind.json()["reason"]


async def test_not_ready_on_a_database_that_cannot_store_events(
    create_database: Any, server_url: str
) -> None:
    """A standby or a read-only database answers every query, but no event can be stored
    there: the probe must say so rather than let deliveries fail behind a green probe."""
    url = create_database()
    await asyncio.to_thread(migrate.upgrade, url)
    name = database_name(url)
    admin_sql(server_url, f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    async with AsyncExitStack() as stack:
        client = await start_app(stack, create_app(settings(), url))
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert "cannot store events" in ready.json()["reason"]


async def test_one_log_line_per_delivery_with_its_fields_and_no_secrets_or_payload(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Each delivery logs exactly one summary line; signatures and bodies never appear."""
    activity = load_fixture(ORDER_PAID)
    body = compact_json(activity)
    headers = signed(body)
    with capture_logs() as logs:
        await client.post(WEBHOOK, content=body, headers=headers | {"x-request-id": "req-1"})
        await client.post(WEBHOOK, content=body, headers=headers)
        await client.post(WEBHOOK, content=body, headers={"content-type": "application/json"})

    assert [line["event"] for line in logs] == ["webhook"] * 3
    first, second, refused = logs
    assert first["event_id"] == activity["id"]
    assert first["type"] == ORDER_PAID
    assert first["family"] == "order"
    assert first["outcome"] == "processed"
    assert first["status"] == 202
    assert first["request_id"] == "req-1"
    assert first["duration_ms"] >= 0
    assert second["outcome"] == "duplicate"
    assert refused["outcome"] == "refused"
    assert refused["status"] == 401
    assert len(refused["request_id"]) == 32
    assert second["request_id"] != refused["request_id"]  # generated, one per request
    text = json.dumps(logs)
    assert headers["x-voucherify-signature"] not in text
    assert SECRET not in text
    assert activity["data"]["customer"]["email"] not in text
    assert "payload" not in text


async def test_quarantined_deliveries_log_their_error(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    activity = load_fixture(ORDER_PAID)
    del activity["data"]["order"]["id"]
    body = compact_json(activity)
    with capture_logs() as logs:
        await client.post(WEBHOOK, content=body, headers=signed(body))
    [line] = logs
    assert line["outcome"] == "quarantined"
    assert line["log_level"] == "warning"  # a 202 that still needs someone
    assert "data.order.id is missing" in line["error"]


async def test_an_envelope_delivery_logs_its_send_out_id(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """The send-out id (whs_...) is what Voucherify's dashboard shows for each attempt."""
    body = compact_json(envelope(load_fixture(ORDER_PAID), "whs_logged"))
    with capture_logs() as logs:
        await client.post(WEBHOOK, content=body, headers=signed(body))
    [line] = logs
    assert (line["outcome"], line["delivery_id"]) == ("processed", "whs_logged")


async def test_metrics_count_deliveries_by_family_and_outcome_with_a_latency_histogram(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    body = compact_json(load_fixture(ORDER_PAID))
    await client.post(WEBHOOK, content=body, headers=signed(body))
    await client.post(WEBHOOK, content=body, headers=signed(body))
    await client.post(WEBHOOK, content=body, headers={"content-type": "application/json"})

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'voucherify_webhook_deliveries_total{family="order",outcome="processed"} 1.0' in text
    assert 'voucherify_webhook_deliveries_total{family="order",outcome="duplicate"} 1.0' in text
    assert 'voucherify_webhook_deliveries_total{family="none",outcome="refused"} 1.0' in text
    # Which refusal: a signature failing after a secret rotation must stand out.
    assert 'voucherify_webhook_refusals_total{reason="invalid_signature"} 1.0' in text
    assert 'voucherify_webhook_delivery_seconds_count{outcome="processed"} 1.0' in text
    assert 'voucherify_webhook_delivery_seconds_bucket{le="10.0",outcome="processed"}' in text
    # The process' own figures: RSS per worker, CPU, garbage collections.
    rss = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M)
    assert rss is not None
    assert float(rss.group(1)) > 10 * 2**20
    assert re.search(r'^python_gc_collections_total\{generation="0"\} ', text, re.M)


async def test_probes_answer(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    ready = await client.get("/readyz")
    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


async def test_a_client_gone_before_its_body_is_logged_and_counted_not_raised(
    database_url: str, conn: db.Connection
) -> None:
    """The connection closes mid-body: no traceback, one log line (refused,
    client_disconnected), nothing stored. Driven through the ASGI interface, as uvicorn
    does: the first receive says the client is gone."""
    app = create_app(settings(), database_url)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": "POST", "path": WEBHOOK, "raw_path": WEBHOOK.encode(),
             "root_path": "", "query_string": b"", "scheme": "http", "http_version": "1.1",
             "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}  # fmt: skip
    async with AsyncExitStack() as stack:
        await start_app(stack, app)
        with capture_logs() as logs:
            await app(scope, receive, send)
    lines = [e for e in logs if e["event"] == "webhook"]
    assert len(lines) == 1
    assert (lines[0]["outcome"], lines[0]["reason"]) == ("refused", "client_disconnected")
    assert await conn.fetchval("SELECT count(*) FROM events") == 0


def test_no_middleware_can_be_added_that_deliveries_would_skip(database_url: str) -> None:
    app = create_app(settings(), database_url)
    with pytest.raises(RuntimeError, match="deliveries would skip it"):
        app.add_middleware(GZipMiddleware)


async def test_requests_other_than_a_delivery_get_the_routers_answers(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Deliveries go straight to their endpoint (`ServiceApp`); a GET, a trailing slash
    or a path under the webhook's must still get what Starlette's router answers (this
    checks that the shortcut takes nothing else, not that it is taken)."""
    body = compact_json(load_fixture(ORDER_PAID))
    wrong_method = await client.get(WEBHOOK)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    slash = await client.post(WEBHOOK + "/", content=body, headers=signed(body))
    assert slash.status_code == 307
    assert slash.headers["location"].endswith(WEBHOOK)
    below = await client.post(WEBHOOK + "/x", content=body, headers=signed(body))
    assert below.status_code == 404
    assert await conn.fetchval("SELECT count(*) FROM events") == 0
    delivered = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert delivered.status_code == 202
    assert await conn.fetchval("SELECT count(*) FROM events") == 1


async def test_only_allowed_source_networks_may_deliver(
    database_url: str, conn: db.Connection
) -> None:
    """With ALLOWED_SOURCE_NETWORKS set, other addresses get 403 and store nothing."""
    body = compact_json(load_fixture(ORDER_PAID))
    for networks, expected in (((ip_network("10.0.0.0/8"),), 403),
                               ((ip_network("127.0.0.0/8"),), 202)):  # fmt: skip
        app = create_app(settings(allowed_networks=networks), database_url)
        async with AsyncExitStack() as stack:
            client = await start_app(stack, app)
            response = await client.post(WEBHOOK, content=body, headers=signed(body))
        assert response.status_code == expected
    assert await conn.fetchval("SELECT count(*) FROM events") == 1


async def test_events_older_than_the_maximum_age_are_refused_when_configured(
    database_url: str, conn: db.Connection
) -> None:
    """MAX_EVENT_AGE_SECONDS bounds how long a captured signed delivery can be replayed."""
    app = create_app(settings(max_event_age_seconds=3600), database_url)
    old = load_fixture(ORDER_PAID)  # created 2022-08-30
    fresh = load_fixture(ORDER_PAID) | {"id": "evcus_fresh"}
    fresh["created_at"] = datetime.now(UTC).isoformat()
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        answers = [
            await client.post(WEBHOOK, content=b, headers=signed(b))
            for b in (compact_json(old), compact_json(fresh))
        ]
    assert [a.status_code for a in answers] == [422, 202]
    assert answers[0].json()["key"] == "event_too_old"
    assert await conn.fetchval("SELECT array_agg(id) FROM events") == ["evcus_fresh"]


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_serving_processes_collect_less_often_but_still_free_cyclic_garbage() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0  # start-up's heap is exempt from collections
        assert gc.get_threshold() == GC_THRESHOLDS
        freed = 0

        def count(_: object) -> None:
            nonlocal freed
            freed += 1

        refs = []
        for _ in range(5 * GC_THRESHOLDS[0]):
            refs.append(weakref.ref(_Cycle(), count))  # garbage at once, but only the GC frees it
        assert freed > 3 * GC_THRESHOLDS[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_an_unknown_path_or_method_gets_a_json_error_like_every_other(
    client: httpx.AsyncClient,
) -> None:
    """Starlette's own 404 and 405 were plain text; every error is JSON in one shape."""
    missing = await client.get("/no-such-path")
    wrong_method = await client.get(WEBHOOK)
    assert (missing.status_code, missing.json()["key"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["key"]) == (405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["code"] == 405
