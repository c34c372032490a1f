"""The exports API over real HTTP, driven with Voucherify's official Python SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from voucherify.api.exports_api import ExportsApi
from voucherify.api_client import ApiClient
from voucherify.configuration import Configuration
from voucherify.exceptions import ApiException
from voucherify.models.exports_create_request_body import ExportsCreateRequestBody

from service import db
from service.app import create_app
from tests.conftest import WEBHOOK, compact_json, load_fixture, settings, signed, start_app
from tests.exports.conftest import APP_ID, APP_TOKEN, LiveServer, seed


@pytest.fixture
def sdk(live: LiveServer) -> Iterator[ExportsApi]:
    """Voucherify's SDK pointed at the service: only the host differs from production."""
    config = Configuration(host=live.base, api_key={"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN})
    with ApiClient(config) as client:
        yield ExportsApi(client)


def wait_done(sdk: ExportsApi, export_id: str) -> Any:
    deadline = time.monotonic() + 15
    while True:
        export = sdk.get_export(export_id)
        if export.status in ("DONE", "ERROR"):
            return export
        assert time.monotonic() < deadline, f"export still {export.status}"
        time.sleep(0.05)


def body(obj: str, **parameters: Any) -> ExportsCreateRequestBody:
    return ExportsCreateRequestBody.from_dict(
        {"exported_object": obj, "parameters": parameters or None}
    )


async def test_the_sdk_creates_polls_downloads_lists_and_deletes_an_export(
    sdk: ExportsApi, conn: db.Connection
) -> None:
    await seed(conn)
    created = sdk.create_export(body("order", fields=["id", "status", "amount"],
                                     order="created_at"))  # fmt: skip
    assert created.status == "SCHEDULED"
    assert created.exported_object == "order"
    assert created.id.startswith("exp_")

    done = wait_done(sdk, created.id)
    assert done.status == "DONE"
    assert done.parameters.fields == ["id", "status", "amount"]
    url = done.result.url
    token = url.split("token=", 1)[1]
    csv_text = sdk.download_export(created.id, token=token)
    assert csv_text.splitlines() == [
        "ID,Status,Amount", "ord_1,PAID,1000", "ord_2,CREATED,2500", "ord_3,CANCELED,50"
    ]  # fmt: skip
    # The URL itself works without API keys: the token stands in for them.
    assert httpx.get(url).text == csv_text

    listed = sdk.list_exports(limit=10, page=1, order="-created_at")
    assert listed.total == 1
    assert [e.id for e in listed.exports] == [created.id]

    sdk.delete_export(created.id)
    with pytest.raises(ApiException) as missing:
        sdk.get_export(created.id)
    assert missing.value.status == 404


async def test_a_filtered_export_through_the_sdk(sdk: ExportsApi, conn: db.Connection) -> None:
    """The filter reaches the file: only v_1's transactions, in the order asked."""
    await seed(conn)
    await conn.execute("""
        INSERT INTO voucher_transactions (id, type, voucher_id, amount, created_at,
                                          last_event_at, last_event_id)
        VALUES ('vtx_1', 'POINTS_ACCRUAL', 'v_1', 100, '2024-01-01', now(), 'e1'),
               ('vtx_2', 'POINTS_ACCRUAL', 'v_2', 200, '2024-01-02', now(), 'e2'),
               ('vtx_3', 'POINTS_REDEMPTION', 'v_1', -50, '2024-01-03', now(), 'e3')
    """)
    created = sdk.create_export(
        body("voucher_transactions", fields=["id", "voucher_id", "amount"], order="created_at",
             filters={"junction": "and", "voucher_id": {"conditions": {"$in": ["v_1"]}}})
    )  # fmt: skip
    done = wait_done(sdk, created.id)
    assert done.status == "DONE"
    csv_text = sdk.download_export(created.id, token=done.result.url.split("token=", 1)[1])
    assert csv_text.splitlines() == ["ID,Voucher ID,Amount", "vtx_1,v_1,100", "vtx_3,v_1,-50"]


def test_invalid_fields_answer_400_naming_the_field(live: LiveServer) -> None:
    response = httpx.post(
        f"{live.base}/v1/exports",
        json={"exported_object": "redemption", "parameters": {"fields": ["id", "colour"]}},
        headers={"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN},
    )
    assert response.status_code == 400
    error = response.json()
    assert error["key"] == "invalid_export_fields"
    assert "colour" in error["details"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-App-Id": APP_ID}, {"X-App-Id": APP_ID, "X-App-Token": "wrong"},
     {"X-App-Id": "other", "X-App-Token": APP_TOKEN}],
)  # fmt: skip
def test_requests_without_a_valid_key_pair_get_401(
    live: LiveServer, headers: dict[str, str]
) -> None:
    routes = [("POST", "/v1/exports"), ("GET", "/v1/exports"),
              ("GET", "/v1/exports/exp_x"), ("DELETE", "/v1/exports/exp_x")]  # fmt: skip
    for method, path in routes:
        response = httpx.request(method, f"{live.base}{path}", headers=headers,
                                 json={"exported_object": "order"})  # fmt: skip
        assert response.status_code == 401, (method, path)
        assert response.json()["key"] == "unauthorized"


async def test_a_wrong_or_expired_download_token_gets_401(
    sdk: ExportsApi, live: LiveServer, conn: db.Connection
) -> None:
    created = sdk.create_export(body("customer"))
    url = wait_done(sdk, created.id).result.url
    assert httpx.get(url).status_code == 200
    assert httpx.get(url + "x").status_code == 401
    await conn.execute("UPDATE exports SET token_expires_at = now() - interval '1 second'")
    assert httpx.get(url).status_code == 401
    # Reading the export again issues a fresh link.
    fresh = sdk.get_export(created.id).result.url
    assert fresh != url
    assert httpx.get(fresh).status_code == 200
    # So does listing the exports (the list once handed out the expired link).
    await conn.execute("UPDATE exports SET token_expires_at = now() - interval '1 second'")
    exports = sdk.list_exports().exports
    assert exports
    listed = exports[0].result.url
    assert listed not in (url, fresh)
    assert httpx.get(listed).status_code == 200


async def test_a_link_read_keeps_working_for_half_the_ttl_at_least(
    sdk: ExportsApi, conn: db.Connection
) -> None:
    """Reading the export, or the list, when less than half the TTL is left extends its
    token to a full TTL: a link read a minute before expiry once worked for that minute.
    The token stays the same, so links handed out before keep working."""
    created = sdk.create_export(body("customer"))
    url = wait_done(sdk, created.id).result.url

    def listed() -> Any:
        exports = sdk.list_exports().exports
        assert exports
        return exports[0]

    left = "SELECT token_expires_at - now() FROM exports"
    for read in (lambda: sdk.get_export(created.id), listed):
        await conn.execute("UPDATE exports SET token_expires_at = now() + interval '1 minute'")
        assert read().result.url == url
        assert await conn.fetchval(left) > timedelta(hours=23, minutes=59)
    # With more than half left, a read writes nothing.
    await conn.execute("UPDATE exports SET token_expires_at = now() + interval '13 hours'")
    assert sdk.get_export(created.id).result.url == url
    assert await conn.fetchval(left) < timedelta(hours=13)
    assert httpx.get(url).status_code == 200


def test_the_webhook_endpoint_ignores_api_keys(live: LiveServer) -> None:
    payload = compact_json(load_fixture("customer.created"))
    response = httpx.post(f"{live.base}{WEBHOOK}", content=payload, headers=signed(payload))
    assert response.status_code == 202


async def test_exports_survive_a_restart_of_the_service(
    database_url: str, conn: db.Connection
) -> None:
    """Scheduled by a process without a worker (or one that died mid-job), finished by the
    next process: the job and its file live in Postgres."""
    await seed(conn)
    headers = {"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN}
    with LiveServer(database_url, export_worker=False) as first:
        created = httpx.post(f"{first.base}/v1/exports", headers=headers,
                             json={"exported_object": "order"}).json()  # fmt: skip
    # A second job was being produced by a worker that died: its lease has run out.
    await conn.execute("""
        INSERT INTO exports (id, exported_object, parameters, status, channel, token,
                             token_expires_at, lease_until)
        VALUES ('exp_orphan', 'customer', '{}', 'IN_PROGRESS', 'API', 't', now() + interval '1h',
                now() - interval '1s')
    """)  # fmt: skip
    with LiveServer(database_url) as second:
        deadline = time.monotonic() + 15
        statuses: dict[str, str] = {}
        while set(statuses.values()) != {"DONE"}:
            assert time.monotonic() < deadline, statuses
            for export_id in (created["id"], "exp_orphan"):
                got = httpx.get(f"{second.base}/v1/exports/{export_id}", headers=headers).json()
                statuses[export_id] = got["status"]
            time.sleep(0.05)
        url = httpx.get(f"{second.base}/v1/exports/{created['id']}", headers=headers).json()
        assert httpx.get(url["result"]["url"]).text.startswith("ID,Source ID,Status\n")


@pytest.mark.parametrize("query", ["page=133312130717076570112", "page=0", "limit=101", "page=x"])
def test_list_parameters_out_of_range_are_a_400(live: LiveServer, query: str) -> None:
    """Found by schemathesis: a huge page number used to overflow into a 500."""
    response = httpx.get(
        f"{live.base}/v1/exports?{query}", headers={"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN}
    )
    assert response.status_code == 400
    assert response.json()["key"] == "invalid_payload"


async def test_an_unreachable_database_answers_503_with_the_configured_retry_after() -> None:
    """The exports API shares the webhook's 503: Retry-After follows RETRY_AFTER_SECONDS."""
    app = create_app(
        settings(api_keys=((APP_ID, APP_TOKEN),), retry_after_seconds=7, export_worker=False),
        "postgresql://postgres@127.0.0.1:1/nowhere",
    )
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        response = await client.post(
            "/v1/exports",
            json={"exported_object": "order"},
            headers={"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN},
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json()["key"] == "service_unavailable"
