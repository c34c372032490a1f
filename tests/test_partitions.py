"""The event log by month: partitions kept ready, strays moved, old months dropped."""

from __future__ import annotations

import asyncio
from datetime import date

import asyncpg
import httpx
import pytest

from service import db, partitions
from tests.conftest import WEBHOOK, compact_json, load_fixture, signed


async def partition_of(conn: db.Connection, event_id: str) -> str:
    name: str = await conn.fetchval(
        "SELECT tableoid::regclass::text FROM events WHERE id = $1", event_id
    )
    return name


async def test_events_land_in_their_months_partition(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    body = compact_json(load_fixture("customer.created"))
    await client.post(WEBHOOK, content=body, headers=signed(body))
    month = await conn.fetchval("SELECT to_char(now(), 'YYYY_MM')")
    assert await partition_of(conn, load_fixture("customer.created")["id"]) == f"events_{month}"
    assert await conn.fetchval("SELECT count(*) FROM event_ids") == 1


async def test_maintenance_moves_strays_out_of_the_default_partition(conn: db.Connection) -> None:
    """A row for a month nobody created yet waits in the default partition; maintenance
    creates its month and moves it there."""
    await conn.execute("""
        INSERT INTO events (id, type, family, status, payload, received_at)
        VALUES ('evcus_future', 'customer.created', 'customer', 'processed', '{}',
                '2031-05-17T00:00:00Z')
    """)
    assert await partition_of(conn, "evcus_future") == "events_default"
    await partitions.maintain(conn)
    assert await partition_of(conn, "evcus_future") == "events_2031_05"
    assert await conn.fetchval("SELECT count(*) FROM events_default") == 0


async def test_an_event_committed_into_the_default_partition_during_maintenance_is_kept(
    conn: db.Connection, database_url: str
) -> None:
    """A live batch commits a stray while maintenance moves the strays: it is moved with
    them, not deleted uncopied. The batch here also holds a SHARE lock on the default
    partition until it commits, so the old function's DELETE waited for it and then saw
    its row, which its copy, made a statement earlier, had not."""
    stray = """
        INSERT INTO events (id, type, family, status, payload, received_at)
        VALUES ($1, 'customer.created', 'customer', 'processed', '{}', $2::text::timestamptz)
    """
    await conn.execute(stray, "evcus_stray_before", "2032-03-10T00:00:00Z")
    batch, maintainer = await db.connect(database_url), await db.connect(database_url)
    try:
        live = batch.transaction()
        await live.start()
        await batch.execute(stray, "evcus_stray_during", "2032-04-10T00:00:00Z")
        await batch.execute("LOCK TABLE events_default IN SHARE MODE")
        maintaining = asyncio.create_task(partitions.maintain(maintainer))
        pid = maintainer.get_server_pid()
        waits = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1"
        for _ in range(500):  # until maintenance waits for the batch's lock
            if await conn.fetchval(waits, pid) == "Lock":
                break
            await asyncio.sleep(0.01)
        await live.commit()
        await asyncio.wait_for(maintaining, 10)
    finally:
        await batch.close()
        await maintainer.close()
    assert await partition_of(conn, "evcus_stray_before") == "events_2032_03"
    assert await partition_of(conn, "evcus_stray_during") == "events_2032_04"
    assert await conn.fetchval("SELECT count(*) FROM events_default") == 0


async def test_maintenance_gives_up_rather_than_queue_live_inserts_behind_a_long_reader(
    conn: db.Connection, database_url: str
) -> None:
    """Its lock request, waiting for a long query on `events` to end, would hold up every
    insert queued behind it: after `lock_timeout` (2 s) it fails instead, and a later run
    moves the strays."""
    await conn.execute("""
        INSERT INTO events (id, type, family, status, payload, received_at)
        VALUES ('evcus_stray_reader', 'customer.created', 'customer', 'processed', '{}',
                '2032-07-10T00:00:00Z')
    """)
    reader, maintainer = await db.connect(database_url), await db.connect(database_url)
    try:
        query = reader.transaction()
        await query.start()
        await reader.fetchval("SELECT count(*) FROM events")  # holds its lock till the end
        with pytest.raises(asyncpg.LockNotAvailableError):
            async with asyncio.timeout(20):
                await partitions.maintain(maintainer)
        await query.commit()
        await partitions.maintain(maintainer)
    finally:
        await reader.close()
        await maintainer.close()
    assert await partition_of(conn, "evcus_stray_reader") == "events_2032_07"


async def test_retention_drops_old_months_and_their_retries_stay_duplicates(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Dropping a month of raw events keeps its ids: a late retry is still a duplicate."""
    activity = load_fixture("customer.updated") | {"id": "evcus_archived"}
    body = compact_json(activity)
    await client.post(WEBHOOK, content=body, headers=signed(body))
    # Pretend it arrived in January 2020.
    await conn.execute("DELETE FROM events WHERE id = 'evcus_archived'")
    await conn.execute(
        "UPDATE event_ids SET received_at = '2020-01-10' WHERE id = 'evcus_archived'"
    )
    await conn.execute("""
        INSERT INTO events (id, type, family, status, payload, received_at)
        VALUES ('evcus_archived', 'customer.updated', 'customer', 'processed', '{}',
                '2020-01-10T00:00:00Z')
    """)
    await partitions.maintain(conn)
    assert await partition_of(conn, "evcus_archived") == "events_2020_01"

    would = await partitions.drop_old(conn, keep_months=12, dry_run=True)
    assert "events_2020_01" in would
    assert await partition_of(conn, "evcus_archived") == "events_2020_01"
    dropped = await partitions.drop_old(conn, keep_months=12, dry_run=False)

    assert dropped == would
    assert await conn.fetchval("SELECT count(*) FROM events WHERE id = 'evcus_archived'") == 0
    retry = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert retry.status_code == 200
    assert retry.json()["outcome"] == "duplicate"


@pytest.mark.parametrize("keep_months", [0, -2])
def test_retention_never_drops_this_month_or_months_to_come(keep_months: int) -> None:
    names = ["events_2026_11", "events_2026_12", "events_2027_01"]
    with pytest.raises(ValueError, match="at least 1"):
        partitions.months_to_drop(names, date(2026, 12, 15), keep_months)


def test_months_to_drop_keeps_the_current_month_and_the_ones_before_it() -> None:
    names = ["events_2026_09", "events_2026_10", "events_2026_11", "events_2026_12",
             "events_default"]  # fmt: skip
    assert partitions.months_to_drop(names, date(2026, 11, 22), keep_months=2) == ["events_2026_09"]
    assert partitions.months_to_drop(names, date(2026, 11, 22), keep_months=1) == [
        "events_2026_09", "events_2026_10"
    ]  # fmt: skip
