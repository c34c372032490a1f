"""Redemptions and rollbacks: the credits or points they move, and the voucher's holder."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from service import db
from service.app import create_app
from service.exports.importer import load
from service.intake import parse
from service.writer import commit, prepare
from tests.conftest import (
    compact_json,
    deliver_processed,
    fetch_one,
    load_fixture,
    settings,
    start_app,
)


@pytest.mark.parametrize(
    ("voucher_type", "credits", "points"),
    [
        ("GIFT_VOUCHER", (1500, -1500), (None, None)),
        ("LOYALTY_CARD", (None, None), (1500, -1500)),
        ("DISCOUNT_VOUCHER", (None, None), (None, None)),
    ],
)
async def test_a_redemption_and_its_rollback_record_the_amount_by_the_vouchers_type(
    client: httpx.AsyncClient,
    conn: db.Connection,
    voucher_type: str,
    credits: tuple[int | None, int | None],
    points: tuple[int | None, int | None],
) -> None:
    """Simple Redemption has no `gift` or `loyalty_card`: its `amount` is the gift credits
    or loyalty points used, by the voucher's type, negative in the rollback."""
    activity = load_fixture("customer.redemption.rollback.succeeded")
    data = activity["data"]
    data["voucher"]["type"] = voucher_type
    data["redemption"].update(id="r_parent", amount=1500)
    data["redemption_rollback"].update(id="rr_child", redemption="r_parent", amount=-1500)
    await deliver_processed(client, activity)

    rows = await conn.fetch("SELECT gift_amount, loyalty_points FROM redemptions ORDER BY id")
    assert [r["gift_amount"] for r in rows] == list(credits)
    assert [r["loyalty_points"] for r in rows] == list(points)


async def test_credits_a_payload_names_beside_the_amount_come_first(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    activity = load_fixture("customer.redemption.succeeded")
    activity["data"]["voucher"]["type"] = "GIFT_VOUCHER"
    activity["data"]["redemption"].update(amount=1500, gift={"amount": 700})
    await deliver_processed(client, activity)

    assert await conn.fetchval("SELECT gift_amount FROM redemptions") == 700


async def test_a_redeemed_voucher_without_its_holder_id_gets_the_events_holder(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """The event's `holder` is the voucher's holder: vouchers.customer_id."""
    activity = load_fixture("customer.redemption.succeeded")
    del activity["data"]["voucher"]["holder_id"]
    activity["data"]["holder"]["id"] = "cust_holder"
    await deliver_processed(client, activity)

    assert await conn.fetchval("SELECT customer_id FROM vouchers") == "cust_holder"


ORIGINAL_AT, ROLLBACK_AT = "2024-02-01T10:00:00Z", "2024-02-02T10:00:00Z"


def redeemed(customer: dict[str, Any] | None = None) -> dict[str, Any]:
    """r_1 redeemed at ORIGINAL_AT: 2000 credits of a gift card, by cust_original."""
    activity = load_fixture("customer.redemption.succeeded")
    activity.update(id="evcus_redeemed", created_at=ORIGINAL_AT)
    data = activity["data"]
    data["customer"].update(customer or {"id": "cust_original", "name": "Ann", "source_id": "ann"})
    data["voucher"]["type"] = "GIFT_VOUCHER"
    data["redemption"].update(id="r_1", result="SUCCESS", status="SUCCEEDED", amount=2000,
                              tracking_id="trk", customer_id=data["customer"]["id"])  # fmt: skip
    return activity


def rolled_back() -> dict[str, Any]:
    """r_1 rolled back at ROLLBACK_AT; the event's `redemption` (the parent) holds only
    what OpenAPI's Simple Redemption requires, and its customer is another copy."""
    activity = load_fixture("customer.redemption.rollback.succeeded")
    activity.update(id="evcus_rolled_back", created_at=ROLLBACK_AT)
    data = activity["data"]
    data["customer"]["id"] = "cust_of_the_rollback"
    data["voucher"]["type"] = "GIFT_VOUCHER"
    data["redemption"] = {"id": "r_1", "object": "redemption", "date": "2024-02-01T10:00:00Z",
                          "metadata": {}, "status": "ROLLED BACK"}  # fmt: skip
    data["redemption_rollback"].update(id="rr_1", redemption="r_1", amount=-2000)
    return activity


PARENT_COLUMNS = ("object", "result", "status", "amount", "gift_amount", "tracking_id",
                  "customer_id", "customer_name", "customer_source_id", "date",
                  "last_event_id")  # fmt: skip
PARENT_AFTER_ROLLBACK = {
    # Sent as the OpenAPI enum spells it ("ROLLED BACK"), stored as the API and exports do.
    "object": "redemption", "result": "SUCCESS", "status": "ROLLED_BACK", "amount": 2000,
    "gift_amount": 2000, "tracking_id": "trk", "customer_id": "cust_original",
    "customer_name": "Ann", "customer_source_id": "ann",
    "date": datetime(2024, 2, 1, 10, tzinfo=UTC), "last_event_id": "evcus_rolled_back",
}  # fmt: skip


async def parent_row(conn: db.Connection) -> dict[str, Any]:
    columns = ", ".join(PARENT_COLUMNS)
    return await fetch_one(conn, f"SELECT {columns} FROM redemptions WHERE id = 'r_1'")  # noqa: S608


@pytest.mark.parametrize("rollback_first", [False, True], ids=["in_order", "rollback_first"])
async def test_a_rollback_changes_only_what_its_copy_of_the_redemption_carries(
    client: httpx.AsyncClient, conn: db.Connection, rollback_first: bool
) -> None:
    """The rollback's copy of its parent leaves out result, amount, tracking id and the
    redeeming customer: the original's values stay, whichever event arrives first."""
    events = [redeemed(), rolled_back()]
    for activity in reversed(events) if rollback_first else events:
        await deliver_processed(client, activity)

    assert await parent_row(conn) == PARENT_AFTER_ROLLBACK
    rollback = await fetch_one(conn, "SELECT * FROM redemptions WHERE id = 'rr_1'")
    assert (rollback["object"], rollback["parent_redemption_id"]) == ("redemption_rollback", "r_1")
    assert rollback["gift_amount"] == -2000


@pytest.mark.parametrize("rollback_first", [False, True], ids=["in_order", "rollback_first"])
async def test_a_redemption_and_its_rollback_in_one_batch_merge_as_one_by_one(
    conn: db.Connection, rollback_first: bool
) -> None:
    """One batch (one statement applying both rows of r_1) leaves what two deliveries do."""
    events = [redeemed(), rolled_back()]
    received = datetime.now(UTC)
    batch = [prepare(parse(compact_json(a)), received) for a in events]
    await commit(conn, list(reversed(batch)) if rollback_first else batch)

    assert await parent_row(conn) == PARENT_AFTER_ROLLBACK


def original_deleted() -> dict[str, Any]:
    """cust_original deleted, after the rollback."""
    deleted = load_fixture("customer.deleted") | {"id": "evcus_deleted"}
    deleted["created_at"] = "2024-02-03T10:00:00Z"
    deleted["data"]["customer"].update(id="cust_original")
    return deleted


async def deliver_redacting(database_url: str, *activities: dict[str, Any]) -> None:
    """Deliver each activity, in order, to an app with REDACT_DELETED_CUSTOMERS on."""
    app = create_app(settings(redact_deleted_customers=True), database_url)
    async with AsyncExitStack() as stack:
        await deliver_processed(await start_app(stack, app), *activities)


async def test_a_late_original_does_not_bring_back_a_redacted_customers_names(
    database_url: str, conn: db.Connection
) -> None:
    """REDACT_DELETED_CUSTOMERS: the rollback's copy, the deletion, then the original
    (older, late): it fills the result and amounts, not the deleted customer's names."""
    await deliver_redacting(database_url, rolled_back(), original_deleted(), redeemed())

    row = await parent_row(conn)
    assert (row["result"], row["amount"], row["customer_id"]) == ("SUCCESS", 2000, "cust_original")
    assert (row["customer_name"], row["customer_source_id"]) == (None, None)


async def test_a_file_brings_no_redacted_customers_names_back(
    database_url: str, conn: db.Connection, tmp_path: Path
) -> None:
    """REDACT_DELETED_CUSTOMERS: a redemption file loaded after the customer's deletion
    (newer than the row, so it writes what it names) keeps the customer's id and the
    rest of the file's values, not the names."""
    await deliver_redacting(database_url, redeemed(), original_deleted())
    path = tmp_path / "redemptions.csv"
    path.write_text(
        "ID,Date,Customer ID,Customer Name,Customer Source ID,Tracking ID\n"
        "r_1,2024-06-01T10:00:00.000Z,cust_original,Ann,ann,trk_from_the_file\n"
    )

    await load(conn, "redemption", path)

    row = await parent_row(conn)
    assert (row["customer_id"], row["tracking_id"]) == ("cust_original", "trk_from_the_file")
    assert (row["customer_name"], row["customer_source_id"]) == (None, None)
