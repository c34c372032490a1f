"""The analyst views and the read-only analyst role, on a delivered journey."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from service import db
from tests.conftest import CUSTOMER, WEBHOOK, compact_json, fetch_one, load_fixture, signed
from tests.test_replay import deliver, journey


async def test_current_loyalty_tier_is_the_latest_change_per_customer_and_campaign(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    await deliver(client, [compact_json(e) for e in journey()])
    latest = await fetch_one(conn, """
        SELECT * FROM loyalty_tier_changes WHERE customer_id = $1
        ORDER BY created_at DESC, event_id DESC LIMIT 1
    """, CUSTOMER)  # fmt: skip
    rows = await conn.fetch("SELECT * FROM current_loyalty_tiers WHERE customer_id = $1", CUSTOMER)
    current = {r["campaign_id"]: r for r in rows}[latest["campaign_id"]]
    assert current["event_id"] == latest["event_id"]
    assert current["last_change"] == latest["change"]
    expected_tier = None if latest["change"] == "left" else latest["tier_id"]
    assert current["tier_id"] == expected_tier


async def test_daily_redemptions_count_by_day_campaign_and_result(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    for n, result in enumerate(["SUCCESS", "SUCCESS", "FAILURE"]):
        activity = load_fixture("customer.redemption.succeeded") | {"id": f"evcus_dr_{n}"}
        activity["data"]["redemption"].update(id=f"r_dr_{n}", result=result,
                                              date="2024-05-01T10:00:00Z")  # fmt: skip
        activity["data"]["campaign"].update(id="camp_dr", name="Spring")
        await deliver(client, [compact_json(activity)])

    rows = await conn.fetch("""
        SELECT result, redemptions FROM daily_redemptions
        WHERE day = '2024-05-01' AND campaign_id = 'camp_dr' ORDER BY result
    """)
    assert [tuple(r) for r in rows] == [("FAILURE", 1), ("SUCCESS", 2)]


async def test_ingestion_freshness_shows_last_event_and_quarantine_per_family(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    good = load_fixture("customer.order.paid")
    bad = load_fixture("customer.order.created")
    del bad["data"]["order"]["id"]
    for activity in (good, bad):
        body = compact_json(activity)
        await client.post(WEBHOOK, content=body, headers=signed(body))

    row = await fetch_one(conn, "SELECT * FROM ingestion_freshness WHERE family = 'order'")
    assert row["events"] == 2
    assert row["quarantined"] == 1
    assert row["last_received_at"] is not None
    assert row["since_last_received"].total_seconds() >= 0


async def test_current_segment_members_excludes_those_who_left(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    for n, (event_type, customer, at) in enumerate([
        ("customer.segment.entered", "cust_stay", "2024-01-01T00:00:00Z"),
        ("customer.segment.entered", "cust_go", "2024-01-01T00:00:00Z"),
        ("customer.segment.left", "cust_go", "2024-01-02T00:00:00Z"),
    ]):  # fmt: skip
        activity = load_fixture(event_type) | {"id": f"evcus_seg_{n}", "created_at": at}
        activity["data"]["customer"]["id"] = customer
        activity["data"]["segment"]["id"] = "seg_x"
        await deliver(client, [compact_json(activity)])

    members = await conn.fetch("SELECT customer_id FROM current_segment_members")
    assert [r["customer_id"] for r in members] == ["cust_stay"]


async def test_the_analyst_role_reads_everything_and_writes_nothing(
    conn: db.Connection,
) -> None:
    if not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = 'voucherify_analyst'"):
        pytest.skip("the test server's user cannot create roles")
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE voucherify_analyst")
        assert await conn.fetchval("SELECT count(*) FROM customers") == 0
        assert await conn.fetchval("SELECT count(*) FROM ingestion_freshness") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("INSERT INTO customers (id, is_stub, last_event_at, "
                               "last_event_id) VALUES ('x', true, now(), 'e')")  # fmt: skip
