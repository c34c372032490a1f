"""The analyst views and the read-only analyst role, on delivered events."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from service import db
from tests.conftest import WEBHOOK, compact_json, fetch_one, load_fixture, signed
from tests.test_replay import deliver


def tier_change(change: str, n: int, campaign: str, at: str, **tiers: str) -> bytes:
    """customer.loyalty.tier.<change> of one customer, at `at`, with the given tier ids."""
    activity = load_fixture(f"customer.loyalty.tier.{change}")
    activity |= {"id": f"evcus_tier_{n}", "created_at": at}
    data = activity["data"]
    data["customer"]["id"] = "cust_tiers"
    data["campaign"]["id"] = campaign
    data["created_at"] = at
    for key, tier_id in tiers.items():
        data[key]["id"] = tier_id
    return compact_json(activity)


async def test_current_loyalty_tier_is_the_latest_change_per_customer_and_campaign(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Delivered out of order: in one campaign the customer joined, was upgraded, then
    left (no tier now); in another joined and was upgraded (the upgraded tier now)."""
    events = [
        tier_change("left", 3, "camp_a", "2024-03-01T00:00:00Z", loyalty_tier="tier_a2"),
        tier_change("upgraded", 5, "camp_b", "2024-02-01T00:00:00Z",
                    loyalty_tier_from="tier_b1", loyalty_tier_to="tier_b2"),
        tier_change("joined", 1, "camp_a", "2024-01-01T00:00:00Z", loyalty_tier="tier_a1"),
        tier_change("upgraded", 2, "camp_a", "2024-02-01T00:00:00Z",
                    loyalty_tier_from="tier_a1", loyalty_tier_to="tier_a2"),
        tier_change("joined", 4, "camp_b", "2024-01-01T00:00:00Z", loyalty_tier="tier_b1"),
    ]  # fmt: skip
    assert set(await deliver(client, events)) == {202}
    rows = await conn.fetch("""
        SELECT campaign_id, tier_id, last_change, event_id FROM current_loyalty_tiers
        WHERE customer_id = 'cust_tiers' ORDER BY campaign_id
    """)
    assert [tuple(r) for r in rows] == [
        ("camp_a", None, "left", "evcus_tier_3"),
        ("camp_b", "tier_b2", "upgraded", "evcus_tier_5"),
    ]


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
    """Every table, partition and view, including those made after the role's grant
    (exports, customer_redactions, new monthly partitions: default privileges), can be
    read; none can be written."""
    if not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = 'voucherify_analyst'"):
        pytest.skip("the test server's user cannot create roles")
    relations = await conn.fetch("""
        SELECT c.relname, c.relkind::text AS relkind FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v')
        ORDER BY 1
    """)
    names = {r["relname"] for r in relations}
    assert {"events", "events_default", "customers", "exports", "customer_redactions",
            "current_loyalty_tiers", "ingestion_freshness"} <= names  # fmt: skip
    assert any(n.startswith("events_20") for n in names)  # a monthly partition
    for relation in relations:
        name = relation["relname"]
        await as_analyst(conn, f'SELECT * FROM "{name}" LIMIT 1')  # noqa: S608 - catalog names
        if relation["relkind"] == "v":
            continue
        update = f'UPDATE "{name}" SET {await _a_column(conn, name)}'  # noqa: S608
        for write in (f'DELETE FROM "{name}"', update):  # noqa: S608 - catalog names
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await as_analyst(conn, write)
    insert = ("INSERT INTO customers (id, is_stub, last_event_at, last_event_id) "
              "VALUES ('x', true, now(), 'e')")  # fmt: skip
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_analyst(conn, insert)


async def as_analyst(conn: db.Connection, statement: str) -> None:
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE voucherify_analyst")
        await conn.execute(statement)


async def _a_column(conn: db.Connection, table: str) -> str:
    """`col = col` for one of `table`'s columns: an UPDATE that would change nothing."""
    column: str = await conn.fetchval(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum = 1",
        f'"{table}"',
    )
    return f'"{column}" = "{column}"'
