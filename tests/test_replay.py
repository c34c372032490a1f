"""Order of arrival does not matter, and replay rebuilds exactly what ingestion wrote.

A customer journey through every family (all 74 types, with shared ids so events touch the
same customer, order, voucher and redemption) is delivered in causal order, then shuffled
with retries and both wire shapes; the normalized tables must be identical, and identical
again after `replay`.
"""

from __future__ import annotations

import asyncio
import copy
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from structlog.testing import capture_logs

from service import db
from service import replay as replay_module
from service.exports.importer import load
from service.replay import NORMALIZED_TABLES, replay
from tests.conftest import (
    WEBHOOK,
    compact_json,
    dump,
    envelope,
    fixture_types,
    load_fixture,
    pretty_json,
    reset,
    share_objects,
    signed,
    with_options,
)
from tests.test_main import run_cli
from tests.test_writer import waiting_on_a_lock

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)

# Types in the order a real journey would produce them; deletion last.
FIRST = ["customer.created", "customer.confirmed", "customer.updated"]
LAST = ["customer.deleted"]


def journey() -> list[dict[str, Any]]:
    """One event per type, one second apart, about the same customer and objects."""
    middle = [t for t in fixture_types() if t not in FIRST + LAST]
    events = []
    for n, event_type in enumerate(FIRST + middle + LAST):
        activity = copy.deepcopy(load_fixture(event_type))
        activity["id"] = f"evcus_journey_{n:03d}"
        activity["created_at"] = (START + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")
        events.append(share_objects(activity, n))
    return events


async def deliver(client: httpx.AsyncClient, bodies: list[bytes]) -> list[int]:
    statuses = []
    for body in bodies:
        response = await client.post(WEBHOOK, content=body, headers=signed(body))
        statuses.append(response.status_code)
    return statuses


async def test_the_normalized_tables_are_exactly_the_handlers_tables(
    conn: db.Connection,
) -> None:
    """Replay empties and rebuilds every table derived from `events`, and only those."""
    rows = await conn.fetch(r"""
        SELECT tablename FROM pg_tables WHERE schemaname = current_schema()
        -- The event log itself, the export files loaded, export jobs, and the redaction
        -- audit are not derived rows.
        AND tablename NOT IN ('events', 'event_ids', 'imports', 'import_lines',
                              'imported_before_0012', 'alembic_version', 'exports',
                              'export_chunks', 'customer_redactions')
        AND tablename NOT LIKE 'events\_%'
    """)
    assert {r["tablename"] for r in rows} == set(NORMALIZED_TABLES)


async def test_a_shuffled_journey_with_retries_gives_the_same_tables_as_causal_order(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Late, duplicated and reordered deliveries leave the analyst tables unchanged."""
    events = journey()
    causal = [compact_json(e) for e in events]
    assert set(await deliver(client, causal)) == {202}
    expected = await dump(conn)
    assert all(expected[t] for t in ("customers", "orders", "vouchers", "redemptions"))

    for seed in (1, 2):
        await reset(conn)
        rng = random.Random(seed)
        shuffled = [
            compact_json(envelope(e)) if rng.random() < 0.3 else pretty_json(e) for e in events
        ]
        shuffled += rng.sample(shuffled, len(shuffled) // 3)  # retries
        rng.shuffle(shuffled)
        statuses = await deliver(client, shuffled)
        assert statuses.count(202) == len(events)
        assert await dump(conn) == expected, f"seed {seed}"


async def damage(conn: db.Connection) -> None:
    """What a handler bug leaves, which a full replay exists to repair."""
    await conn.execute(
        "UPDATE customers SET name = 'damaged' WHERE last_event_id NOT LIKE 'import:%'"
    )
    await conn.execute("""
        DELETE FROM order_items i USING orders o
        WHERE o.id = i.order_id AND o.last_event_id NOT LIKE 'import:%'
    """)  # an imported order's items are kept as they are, not rebuilt
    await conn.execute("""
        INSERT INTO orders (id, status, is_stub, last_event_at, last_event_id)
        VALUES ('ord_from_a_bug', 'PAID', false, now(), 'evcus_never_stored')
    """)


@pytest.mark.parametrize("page", [1000, 7])
async def test_replay_rebuilds_exactly_what_live_ingestion_wrote_and_is_idempotent(
    client: httpx.AsyncClient, conn: db.Connection, page: int
) -> None:
    """In one page, and in pages of 7 (written while the next is decoded). The tables are
    damaged first in ways newer-wins alone would keep (a row changed under the id of the
    event that wrote it, a row gone, a row no event made): only a rebuild restores them."""
    await deliver(client, [compact_json(e) for e in journey()])
    live = await dump(conn)
    await damage(conn)
    assert await dump(conn) != live

    with patch.object(replay_module, "PAGE", page):
        first = await replay(conn)
        after_first = await dump(conn)
        second = await replay(conn)

    assert after_first == live
    assert await dump(conn) == live
    assert first.events == second.events == len(journey())
    assert first.quarantined == 0


async def test_a_full_replay_keeps_the_rows_import_loaded(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """Imported history comes from no stored event: a full replay keeps it (it emptied
    its tables), and the events apply over it as they did live, newer wins either way;
    an order an import made newer keeps the items its event gave it."""
    for order_id, at in (("ord_live", "2024-06-01T00:00:00Z"),
                         ("ord_imported_later", "2024-01-01T00:00:00Z")):  # fmt: skip
        paid = load_fixture("customer.order.paid") | {"id": f"evcus_{order_id}", "created_at": at}
        paid["data"]["order"].update(id=order_id, status="PAID")
        await deliver(client, [compact_json(paid)])
    path = tmp_path / "orders.csv"
    path.write_text(
        "ID,Status,Updated At\n"
        "ord_live,CREATED,2024-05-01T00:00:00.000Z\n"
        "ord_imported_later,FULFILLED,2024-09-01T00:00:00.000Z\n"
        "ord_history,FULFILLED,2023-01-01T00:00:00.000Z\n"
    )
    await load(conn, "order", path)
    before = await dump(conn)
    orders = "SELECT id, status, last_event_id FROM orders ORDER BY id"
    assert [tuple(r) for r in await conn.fetch(orders)] == [
        ("ord_history", "FULFILLED", "import:orders.csv:4"),
        ("ord_imported_later", "FULFILLED", "import:orders.csv:3"),
        ("ord_live", "PAID", "evcus_ord_live"),
    ]
    items = "SELECT count(*) FROM order_items WHERE order_id = 'ord_imported_later'"
    assert await conn.fetchval(items) > 0
    await damage(conn)

    await replay(conn)

    assert await dump(conn) == before


async def test_replay_retries_quarantined_events_and_marks_the_recovered_processed(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """An event an older version quarantined normalizes on replay and becomes processed;
    one that still cannot stays quarantined with its error."""
    good = load_fixture("customer.order.paid")
    bad = load_fixture("customer.order.created") | {"id": "evcus_still_bad"}
    del bad["data"]["order"]["id"]
    for body in (compact_json(good), compact_json(bad)):
        await deliver(client, [body])
    # As if an earlier release had failed on the good one.
    await conn.execute(
        "UPDATE events SET status = 'quarantined', error = 'old bug' WHERE id = $1", good["id"]
    )
    await conn.execute("TRUNCATE orders CASCADE")

    with capture_logs() as logs:
        report = await replay(conn, quarantined_only=True)

    assert report.events == 2
    assert report.newly_processed == [good["id"]]
    # The on-call person sees which recovered and which still fail, and why.
    lines = [(line["event"], line["event_id"], line["log_level"]) for line in logs]
    assert sorted(lines) == [("quarantined", "evcus_still_bad", "warning"),
                             ("recovered from quarantine", good["id"], "info")]  # fmt: skip
    [still] = [line for line in logs if line["event"] == "quarantined"]
    assert "data.order.id is missing" in still["error"]
    statuses = {r["id"]: r["status"] for r in await conn.fetch("SELECT id, status FROM events")}
    assert statuses == {good["id"]: "processed", "evcus_still_bad": "quarantined"}
    error = await conn.fetchval("SELECT error FROM events WHERE id = 'evcus_still_bad'")
    assert "data.order.id is missing" in error
    assert await conn.fetchval("SELECT id FROM orders") == good["data"]["order"]["id"]


async def test_a_replay_undone_by_a_deadlock_is_done_again(
    client: httpx.AsyncClient,
    conn: db.Connection,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A `--quarantined` replay runs beside live batches, which can close a lock cycle
    with it (here an outside session holding the second event's row, then asking for the
    order the replay holds): when Postgres undoes the replay, it is done again from the
    start, and ends as if nothing had happened; its progress is wound back."""
    first = load_fixture("customer.order.paid")
    second = copy.deepcopy(first) | {"id": "evcus_second"}
    second["data"]["order"]["id"] = "ord_second"
    await deliver(client, [compact_json(first), compact_json(second)])
    await conn.execute("UPDATE events SET status = 'quarantined', error = 'old bug'")
    monkeypatch.setattr(replay_module, "PAGE", 1)  # the first is counted before the wait
    other = await db.connect(database_url, server_settings={"deadlock_timeout": "60s"})
    # The replay's session looks for a deadlock 3 s after it starts to wait: after the
    # cycle closes (the other session's second lock), so it is the one undone.
    session = await db.connect(database_url, server_settings={"deadlock_timeout": "3s"})
    counted: list[int] = []
    try:
        other_tx = other.transaction()
        await other_tx.start()
        await other.execute("SELECT FROM events WHERE id = 'evcus_second' FOR UPDATE")
        replaying = asyncio.create_task(
            replay(session, quarantined_only=True, progress=counted.append)
        )
        # It holds the second order (its upsert locks the row), and waits to mark the event.
        await waiting_on_a_lock(other, session.get_server_pid())
        async with asyncio.timeout(30):
            # Granted only once the replay is undone: the deadlock happened.
            await other.execute("SELECT FROM orders WHERE id = 'ord_second' FOR UPDATE")
        assert not replaying.done()  # replaying again, waiting for this session's locks
        await other_tx.rollback()
        async with asyncio.timeout(30):
            report = await replaying
    finally:
        await other.close()
        await session.close()
    assert (report.events, report.processed) == (2, 2)
    assert sorted(report.newly_processed) == sorted([first["id"], "evcus_second"])
    assert counted == [1, -1, 1, 1]
    statuses = {r["status"] for r in await conn.fetch("SELECT status FROM events")}
    assert statuses == {"processed"}


async def test_the_cli_reports_a_replay_the_database_refused_and_changes_nothing(
    client: httpx.AsyncClient, conn: db.Connection, database_url: str
) -> None:
    """A database error (here a row lock held past the DSN's lock_timeout) is one line,
    exit code 1, and the replay's one transaction undone; not a traceback."""
    good = load_fixture("customer.order.paid")
    await deliver(client, [compact_json(good)])
    await conn.execute(
        "UPDATE events SET status = 'quarantined', error = 'old bug' WHERE id = $1", good["id"]
    )
    holder = await db.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT FROM events WHERE id = $1 FOR UPDATE", good["id"])
            url = with_options(database_url, "lock_timeout=200ms")
            env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
            result = await asyncio.to_thread(run_cli, "replay", "--quarantined", env=env)
    finally:
        await holder.close()
    assert result.returncode == 1
    assert "error: replay undone, nothing changed: LockNotAvailableError" in result.stderr
    assert "Traceback" not in result.stderr
    row = await conn.fetchrow("SELECT status, error FROM events WHERE id = $1", good["id"])
    assert row is not None
    assert (row["status"], row["error"]) == ("quarantined", "old bug")


async def test_a_full_replay_refuses_when_retention_dropped_events(
    client: httpx.AsyncClient, conn: db.Connection, database_url: str
) -> None:
    """Months `retention` dropped keep their ids (retries stay duplicates) but not their
    rows: a full replay would empty the tables and lose every row only they had made
    (a customer whose events are all in a dropped month). It refuses, changing nothing;
    retrying the quarantine still works."""
    old, kept = load_fixture("customer.created"), load_fixture("customer.order.paid")
    old["data"]["customer"]["id"] = "cust_only_in_a_dropped_month"
    await deliver(client, [compact_json(old), compact_json(kept)])
    await conn.execute("DELETE FROM events WHERE id = $1", old["id"])  # as retention does
    before = await dump(conn)

    with pytest.raises(replay_module.EventsDropped) as refused:
        await replay(conn)
    cli = await asyncio.to_thread(run_cli, "replay", env={"DATABASE_URL": database_url,
                                                          "PATH": "/usr/bin:/bin"})  # fmt: skip
    quarantined = await replay(conn, quarantined_only=True)

    assert refused.value.dropped == 1
    assert cli.returncode == 1
    assert "error: nothing changed: 1 stored events are gone" in cli.stderr
    assert "Traceback" not in cli.stderr
    assert await dump(conn) == before
    assert "cust_only_in_a_dropped_month" in str(before["customers"])
    assert quarantined.events == 0


async def test_replay_reroutes_unknown_types_a_newer_release_understands(
    conn: db.Connection,
) -> None:
    """An event stored as family 'unknown' is routed by its type on replay."""
    activity = load_fixture("customer.created")
    await conn.execute(
        "INSERT INTO events (id, type, family, status, payload) VALUES ($1, $2, 'unknown', "
        "'processed', $3)",
        activity["id"],
        activity["type"],
        activity,
    )
    report = await replay(conn, quarantined_only=True)
    assert (report.processed, report.unknown) == (1, 0)
    assert await conn.fetchval("SELECT family FROM events") == "customer"
    assert await conn.fetchval("SELECT id FROM customers") == activity["data"]["customer"]["id"]


async def test_replay_counts_types_it_does_not_know_apart(conn: db.Connection) -> None:
    """An unknown type is re-checked on every replay and stays raw: counted apart, not
    passed off as an event that was normalized."""
    await conn.execute(
        "INSERT INTO events (id, type, family, status, payload) VALUES ('evcus_new_kind', "
        "'customer.something.new', 'unknown', 'processed', '{}')"
    )
    report = await replay(conn, quarantined_only=True)
    assert (report.events, report.processed, report.unknown) == (1, 1, 1)
    assert await conn.fetchval("SELECT family FROM events") == "unknown"


@pytest.mark.parametrize("quarantined_only", [False, True])
async def test_replay_of_an_empty_log_does_nothing(
    conn: db.Connection, quarantined_only: bool
) -> None:
    report = await replay(conn, quarantined_only=quarantined_only)
    assert report.events == 0


async def test_a_page_postgres_rejects_is_written_event_by_event_on_replay(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """A page whose rows Postgres refuses (an amount beyond bigint) is undone and written
    again event by event: only the bad event is quarantined, the rest are rebuilt."""
    bodies = []
    for n in range(6):
        activity = load_fixture("customer.order.paid") | {"id": f"evcus_page_{n}"}
        activity["data"]["order"].update(id=f"ord_page_{n}", amount=2**70 if n == 3 else 100)
        bodies.append(compact_json(activity))
    await deliver(client, bodies)

    with capture_logs() as logs:
        report = await replay(conn)

    assert (report.events, report.processed, report.quarantined) == (6, 5, 1)
    fallback = [line for line in logs if line["event"].startswith("page failed")]
    assert len(fallback) == 1
    assert "out of range" in fallback[0]["error"]
    orders = await conn.fetch("SELECT id FROM orders ORDER BY id")
    assert [r["id"] for r in orders] == [f"ord_page_{n}" for n in (0, 1, 2, 4, 5)]
    row = await conn.fetchrow("SELECT status, error FROM events WHERE id = 'evcus_page_3'")
    assert row is not None
    assert row["status"] == "quarantined"
    assert "order handler" in row["error"]
    assert "out of range" in row["error"]
