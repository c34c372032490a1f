"""Group commit under concurrency, failure isolation inside a batch, and backpressure."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from service import db
from service.app import create_app
from tests.conftest import WEBHOOK, compact_json, load_fixture, settings, signed, start_app


def order_event(n: int, **order: Any) -> bytes:
    activity = load_fixture("customer.order.paid") | {"id": f"evcus_batch_{n}"}
    activity["data"]["order"].update(id=f"ord_batch_{n}", **order)
    return compact_json(activity)


async def test_concurrent_deliveries_commit_together_and_all_land(
    database_url: str, conn: db.Connection
) -> None:
    """200 concurrent deliveries: fewer transactions than events, every event stored."""
    app = create_app(settings(), database_url)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        bodies = [order_event(n) for n in range(200)]
        answers = await asyncio.gather(
            *(client.post(WEBHOOK, content=b, headers=signed(b)) for b in bodies)
        )
        batches = app.state.service.writer.batches
    assert {a.status_code for a in answers} == {202}
    assert await conn.fetchval("SELECT count(*) FROM events") == 200
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE id LIKE 'ord_batch_%'") == 200
    assert batches < 200


async def test_an_event_postgres_rejects_is_quarantined_and_its_batch_commits(
    database_url: str, conn: db.Connection
) -> None:
    """A value out of bigint range fails the batch in Postgres; the writer retries event by
    event: the bad one is stored quarantined with the error, the others are processed."""
    app = create_app(settings(), database_url)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        bodies = [order_event(n) for n in range(20)] + [order_event(99, amount=2**70)]
        answers = await asyncio.gather(
            *(client.post(WEBHOOK, content=b, headers=signed(b)) for b in bodies)
        )
    outcomes = [a.json()["outcome"] for a in answers]
    assert outcomes == ["processed"] * 20 + ["quarantined"]
    row = await conn.fetchrow("SELECT status, error FROM events WHERE id = 'evcus_batch_99'")
    assert row is not None
    assert row["status"] == "quarantined"
    assert "order handler" in row["error"]
    assert await conn.fetchval("SELECT count(*) FROM orders") == 20


async def test_a_stalled_database_gets_503_with_retry_after_within_the_deadline(
    database_url: str, conn: db.Connection
) -> None:
    """With Postgres blocked, queued deliveries get 503 at the deadline and those beyond
    the queue limit at once; nothing waits past the configured deadline."""
    app = create_app(
        settings(write_timeout_seconds=1.0, writer_queue_limit=5, writer_concurrency=1),
        database_url,
    )
    blocker = await db.connect(database_url)
    try:
        async with AsyncExitStack() as stack:
            client = await start_app(stack, app)
            tx = blocker.transaction()
            await tx.start()
            await blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
            bodies = [order_event(n) for n in range(30)]
            # The lock is held until every answer is in: they can only come from the
            # deadline and the queue limit.
            answers = await asyncio.gather(
                *(client.post(WEBHOOK, content=b, headers=signed(b)) for b in bodies)
            )
            await tx.rollback()
    finally:
        await blocker.close()
    assert {a.status_code for a in answers} == {503}
    assert all(a.headers["retry-after"] == "5" for a in answers)


async def test_a_read_only_session_still_connects(database_url: str) -> None:
    """Connections install the batch-write function; one that cannot write (an analyst's
    read-only session) connects all the same, without it."""
    conn = await db.connect(database_url, server_settings={"default_transaction_read_only": "on"})
    try:
        assert await conn.fetchval("SELECT to_regprocedure('pg_temp.apply_writes(jsonb)')") is None
        # The rest of the set-up ran: the jsonb codec decodes into Python objects.
        assert await conn.fetchval("""SELECT '{"a": [1]}'::jsonb""") == {"a": [1]}
    finally:
        await conn.close()
    conn = await db.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regprocedure('pg_temp.apply_writes(jsonb)')")
    finally:
        await conn.close()
