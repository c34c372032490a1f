"""The `orders` row an order event makes: its customer and referrer."""

from __future__ import annotations

from typing import Any

import httpx

from service import db
from tests.conftest import deliver_processed, fetch_one, load_fixture


async def order_row(
    client: httpx.AsyncClient, conn: db.Connection, activity: dict[str, Any]
) -> dict[str, Any]:
    """Deliver the event; returns the row of its `data.order`."""
    await deliver_processed(client, activity)
    order_id = activity["data"]["order"]["id"]
    return await fetch_one(conn, "SELECT * FROM orders WHERE id = $1", order_id)


def paid_without_ids() -> dict[str, Any]:
    """customer.order.paid whose order leaves out `customer_id` and `referrer_id`, and
    whose event names no customer."""
    activity = load_fixture("customer.order.paid")
    order = activity["data"]["order"]
    del order["customer_id"], order["referrer_id"], order["customer"], order["referrer"]
    activity["data"]["customer"] = None
    activity["data"]["referrer"] = {"id": "cust_referrer", "object": "customer"}
    return activity


async def test_an_order_without_its_referrer_id_takes_the_events_referrer(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Event Customer Order names the referrer beside the order (`data.referrer`)."""
    row = await order_row(client, conn, paid_without_ids())
    assert (row["referrer_id"], row["customer_id"]) == ("cust_referrer", None)


async def test_the_orders_own_ids_win_over_the_events_customer_and_referrer(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    activity = load_fixture("customer.order.paid")
    order = activity["data"]["order"]
    row = await order_row(client, conn, activity)
    assert (row["customer_id"], row["referrer_id"]) == (order["customer_id"], order["referrer_id"])


async def test_an_order_without_its_ids_takes_those_of_its_customer_and_referrer_objects(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Order Calculated may carry its customer and referrer as objects only."""
    activity = paid_without_ids()
    order = activity["data"]["order"]
    order["customer"] = {"id": "cust_of_the_order", "object": "customer"}
    order["referrer"] = {"id": "cust_referrer", "object": "customer"}

    row = await order_row(client, conn, activity)
    assert (row["customer_id"], row["referrer_id"]) == ("cust_of_the_order", "cust_referrer")
