"""REDACT_DELETED_CUSTOMERS: customer.deleted removes the customer's personal data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from service import db
from service.app import create_app
from service.exports.importer import load
from service.replay import replay
from tests.conftest import (
    WEBHOOK,
    compact_json,
    fetch_one,
    load_fixture,
    settings,
    signed,
    start_app,
)

CUSTOMER = {"id": "cust_gdpr", "name": "Ann Person", "email": "ann@example.com",
            "phone": "+48 600 000 000", "source_id": "ann@example.com"}  # fmt: skip


def event(event_type: str, n: int, at: str, **data: Any) -> bytes:
    activity = load_fixture(event_type) | {"id": f"evcus_gdpr_{n}", "created_at": at}
    activity["data"]["customer"].update(CUSTOMER)
    for key, values in data.items():
        activity["data"][key].update(values)
    return compact_json(activity)


@pytest.fixture
async def redacting(database_url: str, conn: db.Connection) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(redact_deleted_customers=True), database_url)
    async with AsyncExitStack() as stack:
        yield await start_app(stack, app)


async def send(client: httpx.AsyncClient, *bodies: bytes) -> None:
    for body in bodies:
        response = await client.post(WEBHOOK, content=body, headers=signed(body))
        assert response.status_code == 202, response.text


async def test_deletion_clears_personal_fields_everywhere_and_leaves_an_audit_row(
    redacting: httpx.AsyncClient, conn: db.Connection
) -> None:
    await send(
        redacting,
        event("customer.created", 1, "2024-01-01T00:00:00Z"),
        event(
            "customer.redemption.succeeded",
            2,
            "2024-01-02T00:00:00Z",
            redemption={"id": "r_gdpr", "customer_id": "cust_gdpr"},
        ),
        event("customer.deleted", 3, "2024-01-03T00:00:00Z"),
    )

    customer = await fetch_one(conn, "SELECT * FROM customers WHERE id = 'cust_gdpr'")
    assert customer["deleted_at"] is not None
    assert customer["redacted_at"] is not None
    for column in ("name", "email", "phone", "source_id", "address_city", "metadata"):
        assert customer[column] is None, column
    redemption = await fetch_one(conn, "SELECT * FROM redemptions WHERE id = 'r_gdpr'")
    assert (redemption["customer_name"], redemption["customer_source_id"]) == (None, None)
    payloads = [r["payload"] for r in await conn.fetch(
        "SELECT payload FROM events WHERE customer_id = 'cust_gdpr'")]  # fmt: skip
    assert len(payloads) == 3
    assert "ann@example.com" not in str(payloads)
    assert "Ann Person" not in str(payloads)
    audit = await fetch_one(conn, "SELECT * FROM customer_redactions")
    assert audit["customer_id"] == "cust_gdpr"
    assert audit["event_id"] == "evcus_gdpr_3"
    assert audit["events_redacted"] == 3


async def test_events_arriving_after_the_redaction_bring_nothing_back(
    redacting: httpx.AsyncClient, conn: db.Connection
) -> None:
    await send(
        redacting,
        event("customer.created", 1, "2024-01-01T00:00:00Z"),
        event("customer.deleted", 3, "2024-01-03T00:00:00Z"),
        # Late: a stale update, an order and a redemption carrying the customer's details.
        event("customer.updated", 2, "2024-01-02T00:00:00Z"),
        event("customer.order.paid", 4, "2024-01-04T00:00:00Z"),
        event(
            "customer.redemption.succeeded",
            5,
            "2024-01-05T00:00:00Z",
            redemption={"id": "r_late", "customer_id": "cust_gdpr"},
        ),
    )
    late = await fetch_one(conn, "SELECT * FROM redemptions WHERE id = 'r_late'")
    assert (late["customer_name"], late["customer_source_id"]) == (None, None)
    customer = await fetch_one(conn, "SELECT name, email FROM customers WHERE id = 'cust_gdpr'")
    assert customer == {"name": None, "email": None}
    payloads = await conn.fetch(
        "SELECT payload::text AS p FROM events WHERE customer_id = 'cust_gdpr'"
    )
    assert all("ann@example.com" not in r["p"] for r in payloads)
    assert await conn.fetchval("SELECT events_redacted FROM customer_redactions") == 5

    # A replay rebuilds the tables from the (redacted) events and stays redacted: even
    # over rows that (say, restored from a backup) hold the personal data again.
    await conn.execute("UPDATE customers SET name = 'Ann', email = 'ann@example.com' "
                       "WHERE id = 'cust_gdpr'")  # fmt: skip
    await conn.execute("UPDATE redemptions SET customer_name = 'Ann' WHERE id = 'r_late'")
    await replay(conn, redact_deleted=True)
    customer = await fetch_one(conn, "SELECT name, email FROM customers WHERE id = 'cust_gdpr'")
    assert customer == {"name": None, "email": None}
    late = await fetch_one(conn, "SELECT * FROM redemptions WHERE id = 'r_late'")
    assert (late["customer_name"], late["customer_source_id"]) == (None, None)


async def test_without_the_setting_deletion_keeps_the_data(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    await send(client, event("customer.created", 1, "2024-01-01T00:00:00Z"),
               event("customer.deleted", 2, "2024-01-02T00:00:00Z"))  # fmt: skip
    customer = await fetch_one(conn, "SELECT * FROM customers WHERE id = 'cust_gdpr'")
    assert customer["deleted_at"] is not None
    assert customer["redacted_at"] is None
    assert customer["email"] == "ann@example.com"
    assert await conn.fetchval("SELECT count(*) FROM customer_redactions") == 0


async def created_and_deleted(client: httpx.AsyncClient) -> None:
    await send(
        client,
        event("customer.created", 1, "2024-01-01T00:00:00Z"),
        event("customer.deleted", 2, "2024-01-03T00:00:00Z"),
    )


async def test_an_import_does_not_bring_a_redacted_customer_back(
    redacting: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """An export file from before the deletion (or any file naming the customer) loads
    around a redacted customer, whatever its rows' times, as a webhook would."""
    await created_and_deleted(redacting)
    path = tmp_path / "customers.csv"
    path.write_text(
        "ID,Name,Email,Phone,Updated At\n"
        "cust_gdpr,Ann Person,ann@example.com,+48 600 000 000,2024-06-01T00:00:00.000Z\n"
        "cust_other,Bob Other,bob@example.com,,2024-06-01T00:00:00.000Z\n"
    )

    assert (await load(conn, "customer", path))[0] == 2

    customer = await fetch_one(conn, "SELECT * FROM customers WHERE id = 'cust_gdpr'")
    assert customer["redacted_at"] is not None
    assert (customer["name"], customer["email"], customer["phone"]) == (None, None, None)
    other = await fetch_one(conn, "SELECT name FROM customers WHERE id = 'cust_other'")
    assert other == {"name": "Bob Other"}


async def test_a_file_of_publications_brings_no_redacted_source_id_back(
    redacting: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """A publication file names the customer's source id (an email here): loaded after
    the customer's deletion, its rows keep the customer's id but not that."""
    await created_and_deleted(redacting)
    path = tmp_path / "publications.csv"
    path.write_text(
        "Voucher Code,Customer ID,Customer Source ID,Date,Channel\n"
        "CODE-1,cust_gdpr,ann@example.com,2024-06-01T00:00:00.000Z,API\n"
        "CODE-2,cust_other,bob@example.com,2024-06-01T00:00:00.000Z,API\n"
    )

    await load(conn, "publication", path)

    rows = await conn.fetch(
        "SELECT voucher_code, customer_id, customer_source_id FROM publications ORDER BY 1"
    )
    assert [tuple(r) for r in rows] == [("CODE-1", "cust_gdpr", None),
                                        ("CODE-2", "cust_other", "bob@example.com")]  # fmt: skip
