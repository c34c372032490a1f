"""Tier changes, and when the tier each one leaves the customer in expires."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from service import db
from service.handlers.loyalty_tier import CHANGE_BY_TYPE
from tests.conftest import WEBHOOK, compact_json, deliver_processed, load_fixture, signed

EXPIRES = "2025-06-30T00:00:00.000Z"
OTHER = "2024-01-01T00:00:00.000Z"


def tier_event(event_type: str, **expirations: str) -> dict[str, Any]:
    """The fixture, each of its tiers expiring as named (`loyalty_tier_to=...`), else OTHER;
    without the `expiration_date` beside them (only expiration.changed sends one)."""
    activity = load_fixture(event_type)
    data = activity["data"]
    data.pop("expiration_date", None)
    for name in ("loyalty_tier", "loyalty_tier_from", "loyalty_tier_to"):
        if name in data:
            data[name]["expiration"]["expiration_date"] = expirations.get(name, OTHER)
    return activity


async def stored_expiration(
    client: httpx.AsyncClient, conn: db.Connection, activity: dict[str, Any]
) -> datetime | None:
    body = compact_json(activity)
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.json()["outcome"] == "processed"
    expiration: datetime | None = await conn.fetchval(
        "SELECT expiration_date FROM loyalty_tier_changes"
    )
    return expiration


@pytest.mark.parametrize(
    ("event_type", "held"),
    [
        ("customer.loyalty.tier.joined", "loyalty_tier"),
        ("customer.loyalty.tier.prolonged", "loyalty_tier"),
        ("customer.loyalty.tier.upgraded", "loyalty_tier_to"),
        ("customer.loyalty.tier.downgraded", "loyalty_tier_to"),
    ],
)
async def test_a_tier_change_records_when_the_tier_it_leaves_the_customer_in_expires(
    client: httpx.AsyncClient, conn: db.Connection, event_type: str, held: str
) -> None:
    """These changes carry the date in the tier held after them (Loyalty Tier
    `expiration.expiration_date`), not beside it."""
    activity = tier_event(event_type, **{held: EXPIRES})
    assert await stored_expiration(client, conn, activity) == datetime(2025, 6, 30, tzinfo=UTC)


async def test_expiration_changed_records_the_date_it_sends_beside_the_tier(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    activity = tier_event("customer.loyalty.tier.expiration.changed")
    activity["data"]["expiration_date"] = EXPIRES
    assert await stored_expiration(client, conn, activity) == datetime(2025, 6, 30, tzinfo=UTC)


async def test_leaving_a_tier_records_no_expiration(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """After left the customer holds no tier: the left tier's expiration is not theirs."""
    activity = tier_event("customer.loyalty.tier.left", loyalty_tier=EXPIRES)
    assert await stored_expiration(client, conn, activity) is None


@pytest.mark.parametrize("event_type", sorted(CHANGE_BY_TYPE))
async def test_a_tier_change_without_its_customer_is_stored_not_quarantined(
    client: httpx.AsyncClient, conn: db.Connection, event_type: str
) -> None:
    """`customer` is optional in every tier event's schema: the change is kept, its
    customer read from the tier's expiration (whose hold it is), else without one."""
    activity = load_fixture(event_type)
    del activity["data"]["customer"]
    bare = json.loads(json.dumps(activity)) | {"id": activity["id"] + "_bare"}
    for tier in bare["data"].values():
        if isinstance(tier, dict):
            tier.pop("expiration", None)
    await deliver_processed(client, activity, bare)

    rows = await conn.fetch("SELECT * FROM loyalty_tier_changes ORDER BY event_id")
    assert [(r["event_id"], r["change"]) for r in rows] == [
        (activity["id"], CHANGE_BY_TYPE[event_type]),
        (bare["id"], CHANGE_BY_TYPE[event_type]),
    ]
    assert [r["customer_id"] for r in rows] == ["cust_7iUa6ICKyU6gH40dBU25kQU1", None]
    assert all(r["tier_id"] is not None for r in rows)


async def test_a_loyalty_update_without_its_customer_is_stored_not_quarantined(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """customer.loyalty.updated requires only `created_at`: nothing to write, nothing wrong."""
    activity = load_fixture("customer.loyalty.updated")
    del activity["data"]["customer"]
    body = compact_json(activity)
    response = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert response.json()["outcome"] == "processed"
    assert await conn.fetchval("SELECT status FROM events") == "processed"
