"""Referrals: who was referred, by whom, whichever of them the event names."""

from __future__ import annotations

import json
from typing import Any

import httpx

from service import db
from tests.conftest import deliver_processed, fetch_one, load_fixture


async def stored_referral(
    client: httpx.AsyncClient, conn: db.Connection, activity: dict[str, Any]
) -> dict[str, Any]:
    await deliver_processed(client, activity)
    return await fetch_one(conn, "SELECT * FROM referrals")


async def test_a_referral_names_its_referred_customer_and_referrer(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    activity = load_fixture("customer.referred")
    data = activity["data"]
    data["customer"]["id"], data["referrer"]["id"] = "cust_referee", "cust_referrer"
    row = await stored_referral(client, conn, activity)

    assert (row["customer_id"], row["referrer_id"]) == ("cust_referee", "cust_referrer")
    assert row["voucher_code"] == data["voucher"]["code"]


async def test_a_referral_without_its_customer_names_who_redeemed_the_referral_code(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """`customer` is optional in EventCustomerReferred: the redemption that converted
    the referral names the referred customer."""
    activity = load_fixture("customer.referred")
    del activity["data"]["customer"]
    activity["data"]["redemption"]["customer_id"] = "cust_referee"
    row = await stored_referral(client, conn, activity)

    assert row["customer_id"] == "cust_referee"
    assert row["redemption_id"] == activity["data"]["redemption"]["id"]


async def test_a_referral_converted_by_a_custom_event_names_its_customer_else_none(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Converted by a custom event, without `customer`: the custom event's customer is
    the one referred; without that either, the referral is kept, its customer_id NULL,
    its referrer the custom event's when `referrer` is missing too."""
    activity = load_fixture("customer.referred")
    data = activity["data"]
    for key in ("customer", "referrer", "redemption"):
        del data[key]
    data["custom_event"]["referral"]["referrer_id"] = "cust_referrer"
    data["custom_event"]["customer"] = {"id": "cust_converted", "object": "customer"}
    anonymous = json.loads(json.dumps(activity)) | {"id": activity["id"] + "_anonymous"}
    del anonymous["data"]["custom_event"]["customer"]
    await deliver_processed(client, activity, anonymous)

    rows = await conn.fetch("SELECT * FROM referrals ORDER BY event_id")
    assert [(r["customer_id"], r["referrer_id"]) for r in rows] == [
        ("cust_converted", "cust_referrer"),
        (None, "cust_referrer"),
    ]
    assert {r["custom_event_id"] for r in rows} == {data["custom_event"]["id"]}
