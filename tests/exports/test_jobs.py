"""The export runner: one worker per job, a lease kept while it runs, slow queries end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest

from service import db
from service.exports import jobs
from service.exports.jobs import CLAIM_NEXT, ExportRunner, LeaseLost
from tests.conftest import with_options
from tests.exports.conftest import seed


async def schedule(conn: db.Connection) -> str:
    row = await jobs.create(conn, "order", {}, channel="API", app_id=None,
                            token_ttl=timedelta(hours=1))  # fmt: skip
    export_id: str = row["id"]
    return export_id


@asynccontextmanager
async def orders_locked(database_url: str) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """A session holding `orders` (every order export's query waits for it) and a pool
    for the runners; yields what releases the lock."""
    blocker = await db.connect(database_url)
    try:
        held = blocker.transaction()
        await held.start()
        await blocker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
        yield held.rollback
    finally:
        await blocker.close()


async def file_of(pool: db.Pool, export_id: str) -> bytes:
    return b"".join([chunk async for chunk in jobs.chunks(pool, export_id)])


async def test_a_job_whose_workers_keep_stopping_fails_after_its_last_attempt(
    conn: db.Connection,
) -> None:
    """A job that stops its worker every time (killed, or Postgres restarted under it)
    was taken up again each time its lease ran out, for ever. After its last allowed
    attempt it fails, saying why; another job is still taken up."""
    await seed(conn)
    stuck = await schedule(conn)
    lease = timedelta(seconds=60)
    for attempt in range(1, jobs.MAX_ATTEMPTS + 1):
        job = await conn.fetchrow(CLAIM_NEXT, lease, f"claim-{attempt}", jobs.MAX_ATTEMPTS)
        assert job is not None
        assert (job["id"], job["attempts"]) == (stuck, attempt)
        await conn.execute("UPDATE exports SET lease_until = now() - interval '1 s'")  # stops
    waiting = await schedule(conn)

    job = await conn.fetchrow(CLAIM_NEXT, lease, "claim-next", jobs.MAX_ATTEMPTS)

    assert job is not None
    assert job["id"] == waiting
    row = await conn.fetchrow("SELECT status, error FROM exports WHERE id = $1", stuck)
    assert row is not None
    assert row["status"] == "ERROR"
    assert row["error"] == (
        f"gave up after {jobs.MAX_ATTEMPTS} attempts, each ended without finishing "
        "(its worker or Postgres stopped)"
    )
    # The last attempt's worker, still at it, can no longer end it (nor mark it DONE).
    last = f"claim-{jobs.MAX_ATTEMPTS}"
    assert await conn.fetchval(jobs.RENEW_LEASE, stuck, last, lease) is None
    assert await conn.fetchval(jobs.FINISH, stuck, last, 0, 0) is None


async def test_a_worker_that_lost_its_job_to_another_writes_nothing_to_it(
    conn: db.Connection, database_url: str
) -> None:
    """A's lease ran out (a stalled process) and B took the job over and finished it:
    A can neither replace B's file nor end the job (it once deleted B's chunks and
    wrote its own, and either could mark the job last)."""
    await seed(conn)
    export_id = await schedule(conn)
    job = await conn.fetchrow(CLAIM_NEXT, timedelta(seconds=60), "claim-a", jobs.MAX_ATTEMPTS)
    assert job is not None
    await conn.execute("UPDATE exports SET lease_until = now() - interval '1 s'")
    pool = await db.create_pool(database_url, max_size=4)
    try:
        assert await ExportRunner(pool).run_once()  # B
        finished = await file_of(pool, export_id)
        stale = ExportRunner(pool)  # A, still at it
        try:
            await stale._produce(job, "claim-a")
        except LeaseLost:
            pass
        else:
            raise AssertionError("a worker without the claim wrote the file")
        # Each of its writes, checked on its own: none lands.
        assert await conn.fetchval(jobs.INSERT_CHUNK, export_id, "claim-a", 99, b"x") is None
        assert await conn.fetchval(jobs.FINISH, export_id, "claim-a", 0, 0) is None
        assert await conn.execute(jobs.FAIL, export_id, "claim-a", "too late") == "UPDATE 0"
        assert await file_of(pool, export_id) == finished
    finally:
        await pool.close()
    row = await conn.fetchrow("SELECT status, error, row_count FROM exports")
    assert row is not None
    assert (row["status"], row["error"], row["row_count"]) == ("DONE", None, 3)


async def test_the_lease_is_kept_while_a_slow_query_runs(
    conn: db.Connection, database_url: str
) -> None:
    """A query that takes longer than the lease before its first row (here it waits for a
    lock on `orders`) does not let a second worker take the job: the lease is renewed on
    a timer, not only as chunks are written."""
    await seed(conn)
    export_id = await schedule(conn)
    pool = await db.create_pool(database_url, max_size=6)
    try:
        async with orders_locked(database_url) as release:
            lease = timedelta(seconds=1.5)  # renewed every 0.5 s: a second of slack
            running = asyncio.create_task(ExportRunner(pool, lease=lease).run_once())
            await asyncio.sleep(5.0)  # over three leases
            try:
                second = ExportRunner(pool, lease=lease).run_once()
                taken_over = await asyncio.wait_for(second, 5)
            except TimeoutError:  # it claimed the job and waits for the same lock
                taken_over = True
            await release()
            assert await asyncio.wait_for(running, 30)
    finally:
        await pool.close()
    assert not taken_over
    row = await conn.fetchrow("SELECT status, row_count FROM exports WHERE id = $1", export_id)
    assert row is not None
    assert (row["status"], row["row_count"]) == ("DONE", 3)


async def test_an_export_query_past_its_limit_fails_the_job(
    conn: db.Connection, database_url: str
) -> None:
    """Past `query_seconds` the job is ERROR, with the reason: not taken for an
    unreachable Postgres (the job stayed IN_PROGRESS and was taken up again and again)."""
    await seed(conn)
    export_id = await schedule(conn)
    pool = await db.create_pool(database_url, max_size=4)
    try:
        async with orders_locked(database_url):
            assert await asyncio.wait_for(ExportRunner(pool, query_seconds=0.5).run_once(), 30)
    finally:
        await pool.close()
    row = await conn.fetchrow("SELECT status, error FROM exports WHERE id = $1", export_id)
    assert row is not None
    assert row["status"] == "ERROR"
    assert "ran over 0.5 s" in row["error"]


# Orders enough for the export's sort to spill to disk with `work_mem` at its minimum.
MANY_ORDERS = """
INSERT INTO orders (id, source_id, created_at, status, amount, is_stub, last_event_at,
                    last_event_id)
SELECT 'ord_' || n, 'S-' || n, now() - n * interval '1 second', 'PAID', n, false, now(), 'e'
FROM generate_series(1, 20000) AS n
"""


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        # The query waits for a lock past the session's statement_timeout.
        ("statement_timeout=300ms", "QueryCanceledError: canceling statement due to statement"),
        # Its sort needs a temporary file larger than temp_file_limit allows.
        ("work_mem=64kB&temp_file_limit=0", "ConfigurationLimitExceededError: temporary file"),
    ],
)
async def test_an_export_query_postgres_ends_fails_the_job_and_is_not_taken_up_again(
    conn: db.Connection, database_url: str, setting: str, reason: str
) -> None:
    """A query Postgres cancels (statement_timeout, pg_cancel_backend) or stops at a
    resource limit fails the job, with the reason: it is the export's doing, not an
    unreachable Postgres (the job stayed IN_PROGRESS, and its heavy query ran again each
    time the lease ran out)."""
    await conn.execute(MANY_ORDERS)
    export_id = await schedule(conn)
    lease = timedelta(seconds=1)
    pool = await db.create_pool(with_options(database_url, setting), max_size=4)
    try:
        async with orders_locked(database_url) as release:
            if "statement_timeout" not in setting:
                await release()
            assert await asyncio.wait_for(ExportRunner(pool, lease=lease).run_once(), 30)
        await asyncio.sleep(lease.total_seconds() * 1.5)
        assert not await ExportRunner(pool, lease=lease).run_once()
    finally:
        await pool.close()
    row = await conn.fetchrow("SELECT status, error FROM exports WHERE id = $1", export_id)
    assert row is not None
    assert row["status"] == "ERROR"
    assert row["error"].startswith(reason)


async def test_a_pool_too_small_for_an_export_ends_the_attempt_instead_of_hanging(
    conn: db.Connection, database_url: str
) -> None:
    """No connection free for the job's second one (a DB_POOL_SIZE the writers use up):
    the attempt ends with an error naming the pool, which the runner logs before it waits,
    and the job is left for its lease to run out. The worker once waited for good."""
    await seed(conn)
    export_id = await schedule(conn)
    pool = await db.create_pool(database_url, max_size=1)
    attempt = asyncio.create_task(ExportRunner(pool, acquire_seconds=0.5).run_once())
    try:
        await asyncio.wait({attempt}, timeout=10)
    finally:
        attempt.cancel()
        await asyncio.wait({attempt})
        await pool.close()
    with pytest.raises(TimeoutError, match=r"^no connection of the pool free within 0\.5 s$"):
        attempt.result()
    status = await conn.fetchval("SELECT status FROM exports WHERE id = $1", export_id)
    assert status == "IN_PROGRESS"
