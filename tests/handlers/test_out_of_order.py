"""Current-state rows follow the newest event, whatever order the events arrive in."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx

from service import db
from service.intake import parse
from service.writer import Prepared, commit, prepare
from tests.conftest import WEBHOOK, compact_json, fetch_one, load_fixture, reset, signed
from tests.test_writer import waiting_on_a_lock


def event(event_type: str, n: int, at: str, **data: Any) -> dict[str, Any]:
    activity = load_fixture(event_type)
    activity.update(id=f"evcus_ooo_{n}", created_at=at)
    for key, values in data.items():
        activity["data"][key].update(values)
    return activity


async def send(client: httpx.AsyncClient, *activities: dict[str, Any]) -> None:
    for activity in activities:
        body = compact_json(activity)
        response = await client.post(WEBHOOK, content=body, headers=signed(body))
        assert response.status_code == 202, response.text


async def test_a_stale_update_after_deletion_does_not_bring_the_customer_back(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    customer = {"id": "cust_gone"}
    created = event("customer.created", 1, "2024-01-01T10:00:00Z", customer=customer)
    deleted = event("customer.deleted", 2, "2024-01-03T10:00:00Z", customer=customer)
    stale = event("customer.updated", 3, "2024-01-02T10:00:00Z",
                  customer=customer | {"name": "Stale name"})  # fmt: skip

    await send(client, created, deleted, stale)

    row = await fetch_one(conn, "SELECT * FROM customers WHERE id = 'cust_gone'")
    assert row["deleted_at"] == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert row["last_event_id"] == "evcus_ooo_2"
    assert row["name"] == created["data"]["customer"]["name"]  # not the stale one, nor blank
    assert row["name"] not in (None, "Stale name")


async def test_an_older_order_event_arriving_late_does_not_roll_the_order_back(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    order = {"id": "ord_late"}
    paid = event("customer.order.paid", 1, "2024-01-02T10:00:00Z",
                 order=order | {"status": "PAID", "amount": 900})  # fmt: skip
    created = event("customer.order.created", 2, "2024-01-01T10:00:00Z",
                    order=order | {"status": "CREATED", "amount": 1000})  # fmt: skip

    await send(client, paid, created)

    row = await fetch_one(conn, "SELECT status, amount, last_event_id FROM orders")
    assert dict(row) == {"status": "PAID", "amount": 900, "last_event_id": "evcus_ooo_1"}


async def test_a_customer_copy_embedded_in_a_newer_event_never_overwrites_the_full_profile(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Stubs fill gaps only: the full customer.updated wins over a newer embedded copy,
    in either arrival order, and is kept when the stub came first."""
    customer = {"id": "cust_full"}
    full = event("customer.updated", 1, "2024-01-01T10:00:00Z",
                 customer=customer | {"name": "Full Name", "phone": "+1 555"})  # fmt: skip
    copy = event("customer.order.paid", 2, "2024-01-05T10:00:00Z",
                 customer=customer | {"name": "Copy Name"})  # fmt: skip

    await send(client, copy)
    stub = await fetch_one(conn, "SELECT name, is_stub FROM customers WHERE id = 'cust_full'")
    await send(client, full)
    row = await fetch_one(conn, "SELECT name, phone, is_stub FROM customers WHERE id = 'cust_full'")

    assert dict(stub) == {"name": "Copy Name", "is_stub": True}
    assert dict(row) == {"name": "Full Name", "phone": "+1 555", "is_stub": False}


async def test_segment_membership_is_right_whichever_of_enter_and_leave_arrives_first(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    segment = {"id": "seg_vip", "name": "VIP"}
    customer = {"id": "cust_seg"}
    entered = event("customer.segment.entered", 1, "2024-01-01T10:00:00Z",
                    segment=segment, customer=customer)  # fmt: skip
    left = event("customer.segment.left", 2, "2024-01-02T10:00:00Z",
                 segment=segment, customer=customer)  # fmt: skip

    await send(client, left, entered)

    row = await fetch_one(conn, "SELECT * FROM segment_memberships")
    assert row["segment_name"] == "VIP"
    assert row["entered_at"] == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert row["left_at"] == datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert row["last_event_id"] == "evcus_ooo_2"


async def test_segment_events_in_one_batch_merge_as_if_applied_one_by_one(
    conn: db.Connection,
) -> None:
    """One batch (one statement) holds enter, leave and enter again for one membership,
    shuffled: the row is what applying them one by one in any order leaves."""
    segment = {"id": "seg_batch"}
    customer = {"id": "cust_seg_batch"}
    activities = [
        event("customer.segment.entered", 11, "2024-01-01T10:00:00Z",
              segment=segment | {"name": "Old"}, customer=customer),
        event("customer.segment.left", 12, "2024-01-02T10:00:00Z",
              segment=segment | {"name": "Middle"}, customer=customer),
        event("customer.segment.entered", 13, "2024-01-03T10:00:00Z",
              segment=segment | {"name": "Newest"}, customer=customer),
    ]  # fmt: skip
    received = datetime.now(UTC)
    batch = [prepare(parse(compact_json(a)), received) for a in reversed(activities)]
    await commit(conn, [batch[1], batch[0], batch[2]])
    late = event("customer.segment.left", 14, "2023-12-31T10:00:00Z",
                 segment=segment | {"name": "Stale"}, customer=customer)  # fmt: skip
    await commit(conn, [prepare(parse(compact_json(late)), received)])

    row = await fetch_one(conn, "SELECT * FROM segment_memberships")
    assert row["segment_name"] == "Newest"
    assert row["entered_at"] == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert row["left_at"] == datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert row["last_event_at"] == datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert row["last_event_id"] == "evcus_ooo_13"


async def test_a_rollback_writes_its_own_row_pointing_at_its_parent(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    rollback = event(
        "customer.redemption.rollback.succeeded",
        1,
        "2024-01-02T10:00:00Z",
        redemption={"id": "r_parent", "status": "ROLLED_BACK"},
        redemption_rollback={"id": "rr_child", "object": "redemption_rollback",
                             "redemption": "r_parent", "status": "SUCCEEDED"},
    )  # fmt: skip
    await send(client, rollback)

    rows = await conn.fetch(
        "SELECT id, object, status, parent_redemption_id FROM redemptions ORDER BY id"
    )
    assert [dict(r) for r in rows] == [
        {"id": "r_parent", "object": "redemption", "status": "ROLLED_BACK",
         "parent_redemption_id": None},
        {"id": "rr_child", "object": "redemption_rollback", "status": "SUCCEEDED",
         "parent_redemption_id": "r_parent"},
    ]  # fmt: skip


async def test_history_rows_append_once_per_event(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Tier changes and distributions get one row per event; retries add nothing."""
    upgraded = event("customer.loyalty.tier.upgraded", 1, "2024-01-01T10:00:00Z")
    sms = event("customer.sms.failed", 2, "2024-01-01T11:00:00Z")
    await send(client, upgraded, sms)
    for activity in (upgraded, sms):
        body = compact_json(activity)
        await client.post(WEBHOOK, content=body, headers=signed(body))

    tier = await fetch_one(conn, "SELECT * FROM loyalty_tier_changes")
    assert tier["change"] == "upgraded"
    assert tier["tier_from_id"] == upgraded["data"]["loyalty_tier_from"]["id"]
    assert tier["tier_to_id"] == upgraded["data"]["loyalty_tier_to"]["id"]
    assert tier["customer_id"] == upgraded["data"]["customer"]["id"]
    distribution = await fetch_one(conn, "SELECT * FROM distributions")
    assert (distribution["channel"], distribution["status"]) == ("sms", "failed")
    assert await conn.fetchval("SELECT count(*) FROM loyalty_tier_changes") == 1
    assert await conn.fetchval("SELECT count(*) FROM distributions") == 1


def gift_balance(n: int, at: str, balance: int) -> dict[str, Any]:
    """A gift card's balance_added at `at`, naming its holder and its balance after."""
    return event("customer.voucher.gift.balance_added", n, at,
                 customer={"id": "cust_kept"},
                 voucher={"id": "v_kept", "type": "GIFT_VOUCHER", "holder_id": "cust_kept",
                          "gift": {"amount": 5000, "balance": balance}})  # fmt: skip


def prepared(*activities: dict[str, Any]) -> list[Prepared]:
    """Deliveries as the writer takes them, for `commit` (one batch)."""
    received = datetime.now(UTC)
    return [prepare(parse(compact_json(a)), received) for a in activities]


def late_balance_and_newer_copy() -> list[Prepared]:
    """One batch: a late balance of 2024-01-03 (800), and a copy of 2024-01-07 without
    one."""
    _, copy = voucher_events()
    copy["id"], copy["created_at"] = "evcus_ooo_7", "2024-01-07T10:00:00Z"
    return prepared(gift_balance(3, "2024-01-03T10:00:00Z", 800), copy)


def voucher_events() -> tuple[dict[str, Any], dict[str, Any]]:
    """A gift card's balance_added naming its holder, then a redemption whose copy of the
    card names neither holder nor balance nor campaign (Simple Voucher leaves them out)."""
    added = gift_balance(1, "2024-01-01T10:00:00Z", 4200)
    redeemed = event("customer.redemption.succeeded", 2, "2024-01-02T10:00:00Z",
                     voucher={"id": "v_kept", "type": "GIFT_VOUCHER"})  # fmt: skip
    del redeemed["data"]["holder"]
    for name in ("holder_id", "gift", "campaign", "campaign_id", "categories"):
        del redeemed["data"]["voucher"][name]
    return added, redeemed


async def test_a_voucher_copy_without_holder_or_balance_keeps_them_in_either_order(
    conn: db.Connection,
) -> None:
    """The newer copy leaves out what the older event set: the row keeps it whichever
    arrives first, one by one, in one batch, or in a batch beside a retry (which takes
    `sql_skipping`), and is the same row every time (`upsert(kept_if_null=...)`)."""
    stored = event("customer.created", 3, "2024-01-03T10:00:00Z")
    rows = []
    for first, second in (voucher_events(), voucher_events()[::-1]):
        for batches in (
            [[first], [second]],
            [[first, second]],
            [[stored], [stored, first, second]],
        ):
            await reset(conn)
            for batch in batches:
                await commit(conn, prepared(*batch))
            rows.append(await fetch_one(conn, "SELECT * FROM vouchers"))

    added, redeemed = voucher_events()
    assert rows[0]["customer_id"] == "cust_kept"
    assert (rows[0]["gift_balance"], rows[0]["value"]) == (4200, 4200)
    assert rows[0]["campaign_id"] == added["data"]["voucher"]["campaign_id"]
    assert rows[0]["last_event_id"] == redeemed["id"]
    assert all(row == rows[0] for row in rows[1:])


async def test_a_late_balance_in_a_batch_does_not_ride_in_on_a_newer_copy(
    conn: db.Connection,
) -> None:
    """Stored: the balance of 2024-01-05. One batch then brings a late balance of
    2024-01-03 and a copy of 2024-01-07 without one. One by one, the late balance is
    older than the stored one and the copy keeps it; merged in the batch, the late value
    once rode in on the copy's newer time and rolled the balance back."""
    await commit(conn, prepared(gift_balance(5, "2024-01-05T10:00:00Z", 500)))
    await commit(conn, late_balance_and_newer_copy())

    row = await fetch_one(conn, "SELECT gift_balance, last_event_id FROM vouchers")
    assert row == {"gift_balance": 500, "last_event_id": "evcus_ooo_7"}


async def test_a_batch_repeating_a_voucher_sees_a_concurrent_writers_newer_row(
    conn: db.Connection, database_url: str
) -> None:
    """Another writer (a second replica) holds the voucher with its balance of
    2024-01-05 while this batch brings a late balance of 2024-01-03 and a copy of
    2024-01-07 without one. Merged in one statement from what it read at its start, the
    batch took the late balance for the newest and wrote it over the other writer's."""
    await commit(conn, prepared(gift_balance(1, "2024-01-01T10:00:00Z", 100)))
    batch = late_balance_and_newer_copy()
    other = await db.connect(database_url)
    writer = await db.connect(database_url)
    try:
        async with other.transaction():
            await other.execute("""
                UPDATE vouchers SET gift_balance = 500, value = 500,
                       last_event_at = '2024-01-05T10:00:00Z', last_event_id = 'evcus_other'
                WHERE id = 'v_kept'
            """)
            writing = asyncio.create_task(commit(writer, batch))
            await waiting_on_a_lock(conn, writer.get_server_pid())
        await writing
    finally:
        await other.close()
        await writer.close()

    row = await fetch_one(conn, "SELECT gift_balance, last_event_id FROM vouchers")
    assert row == {"gift_balance": 500, "last_event_id": "evcus_ooo_7"}
