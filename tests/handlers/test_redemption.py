"""Redemptions and rollbacks: the credits or points they move, and the voucher's holder."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service import db
from tests.conftest import WEBHOOK, compact_json, load_fixture, signed


async def deliver(client: httpx.AsyncClient, activity: dict[str, Any]) -> None:
    body = compact_json(activity)
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.json()["outcome"] == "processed"


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
    await deliver(client, activity)

    rows = await conn.fetch("SELECT gift_amount, loyalty_points FROM redemptions ORDER BY id")
    assert [r["gift_amount"] for r in rows] == list(credits)
    assert [r["loyalty_points"] for r in rows] == list(points)


async def test_credits_a_payload_names_beside_the_amount_come_first(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    activity = load_fixture("customer.redemption.succeeded")
    activity["data"]["voucher"]["type"] = "GIFT_VOUCHER"
    activity["data"]["redemption"].update(amount=1500, gift={"amount": 700})
    await deliver(client, activity)

    assert await conn.fetchval("SELECT gift_amount FROM redemptions") == 700


async def test_a_redeemed_voucher_without_its_holder_id_gets_the_events_holder(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """The event's `holder` is the voucher's holder: vouchers.customer_id."""
    activity = load_fixture("customer.redemption.succeeded")
    del activity["data"]["voucher"]["holder_id"]
    activity["data"]["holder"]["id"] = "cust_holder"
    await deliver(client, activity)

    assert await conn.fetchval("SELECT customer_id FROM vouchers") == "cust_holder"
