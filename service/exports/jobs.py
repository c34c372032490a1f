"""Export jobs: schedule, produce the CSV from a server-side cursor, store it, serve it.

The CSV is written row by row from a cursor inside one REPEATABLE READ snapshot, flushed
into `export_chunks` a megabyte at a time, so memory stays flat whatever the row count and
the file is one consistent picture of the tables. `stream_csv` is the one CSV writer: the
HTTP jobs and `python -m service export` both use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import structlog

from service.db import UNAVAILABLE, Connection, Pool
from service.exports.query import Export, select, validate

log = structlog.get_logger("service.exports")

CHUNK_BYTES = 1 << 20
CURSOR_PREFETCH = 2000

INSERT_EXPORT = """
INSERT INTO exports (id, exported_object, parameters, channel, app_id, token, token_expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval)
RETURNING *
"""
SELECT_EXPORT = "SELECT * FROM exports WHERE id = $1"
LIST_EXPORTS = """
SELECT *, count(*) OVER () AS total FROM exports
ORDER BY {order}, id
LIMIT $1 OFFSET $2
"""
LIST_ORDERS = {
    "created_at": "created_at ASC",
    "-created_at": "created_at DESC",
    "status": "status ASC",
    "-status": "status DESC",
}
DELETE_EXPORT = "DELETE FROM exports WHERE id = $1 RETURNING id"

# Take the oldest scheduled job, or one whose worker stopped renewing its lease. `claim`
# ($2) names this attempt: the statements below act only while it is the one stored, so
# a worker that lost the job to another (its lease ran out) can no longer write to it.
# A job whose lease ran out on its last allowed attempt ($3) fails instead: whatever
# stops its workers (a query whose backend gets killed) would stop the next one too.
CLAIM_NEXT = """
WITH given_up AS (
    UPDATE exports SET status = 'ERROR', finished_at = now(), lease_until = NULL,
                       claim = NULL,  -- a worker still at it can no longer end it
                       error = 'gave up after ' || attempts || ' attempts, each ended '
                               'without finishing (its worker or Postgres stopped)'
    WHERE status = 'IN_PROGRESS' AND lease_until < now() AND attempts >= $3
)
UPDATE exports SET status = 'IN_PROGRESS', started_at = now(),
                   lease_until = now() + $1::interval, error = NULL, claim = $2,
                   attempts = attempts + 1
WHERE id = (
    SELECT id FROM exports
    WHERE status = 'SCHEDULED'
       OR (status = 'IN_PROGRESS' AND lease_until < now() AND attempts < $3)
    ORDER BY created_at
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING *
"""
MAX_ATTEMPTS = 3
RENEW_LEASE = """
UPDATE exports SET lease_until = now() + $3::interval WHERE id = $1 AND claim = $2
RETURNING id
"""
FINISH = """
UPDATE exports SET status = 'DONE', finished_at = now(), lease_until = NULL,
                   row_count = $3, byte_count = $4, error = NULL
WHERE id = $1 AND claim = $2
RETURNING id
"""
FAIL = """
UPDATE exports SET status = 'ERROR', finished_at = now(), lease_until = NULL, error = $3
WHERE id = $1 AND claim = $2
"""
# A new attempt starts from no chunks; 0 when the claim is not ours (nothing deleted).
DELETE_CHUNKS = """
WITH ours AS (SELECT id FROM exports WHERE id = $1 AND claim = $2 FOR SHARE),
     gone AS (DELETE FROM export_chunks WHERE export_id IN (SELECT id FROM ours))
SELECT count(*) FROM ours
"""
# The claim is checked under a lock on the job's row, which a new claim must wait for: a
# chunk is written before a takeover (and the new worker deletes it) or not at all.
INSERT_CHUNK = """
INSERT INTO export_chunks (export_id, seq, data)
SELECT id, $3, $4 FROM exports WHERE id = $1 AND claim = $2 FOR SHARE
RETURNING seq
"""
SELECT_CHUNK = "SELECT data FROM export_chunks WHERE export_id = $1 AND seq = $2"
# A token with less than half its TTL ($3) left lasts a full TTL again. It stays the same
# (the links handed out keep working) until it has expired: then a new one ($2).
RENEW_TOKEN = """
UPDATE exports SET token = CASE WHEN token_expires_at <= now() THEN $2 ELSE token END,
                   token_expires_at = now() + $3::interval
WHERE id = $1 AND token_expires_at < now() + $3::interval / 2
RETURNING *
"""  # noqa: S105 - SQL, not a password


def new_export_id() -> str:
    return "exp_" + secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def create(
    conn: Connection,
    exported_object: Any,
    parameters: dict[str, Any],
    *,
    channel: str,
    app_id: str | None,
    token_ttl: timedelta,
) -> asyncpg.Record:
    """Validate and schedule an export; raises `InvalidExport` for bad parameters."""
    export = validate(exported_object, parameters)
    stored = {
        "order": export.order,
        "fields": list(export.fields),
        "filters": export.filters or {"junction": "and"},
        **({"campaign_id": export.campaign_id} if export.campaign_id else {}),
    }
    row = await conn.fetchrow(
        INSERT_EXPORT, new_export_id(), exported_object, stored, channel, app_id, new_token(),
        token_ttl,
    )  # fmt: skip
    assert row is not None  # INSERT ... RETURNING always returns the row
    return row


def export_of(row: asyncpg.Record) -> Export:
    """The validated export a stored job describes."""
    return validate(row["exported_object"], row["parameters"])


class CsvLines:
    r"""Writes CSV records into `buffer`, each ending in "\n", with every value that holds
    "\r" or "\n" quoted.

    csv.writer quotes a value for the characters of its line terminator only: with "\n",
    a bare "a\rb" went out unquoted and split the record for every reader, our import
    too. `writerow` is csv.writer's own (with "\n"), but it refuses a line holding "\r":
    it writes nothing and returns False, and that rare row goes to `quoted`. The others
    cost one search of their line.
    """

    def __init__(self, buffer: io.StringIO) -> None:
        self._put = buffer.write
        self.writerow = csv.writer(self, lineterminator="\n").writerow
        self._spare = io.StringIO()
        self._quoting = csv.writer(self._spare, lineterminator="\r\n")

    def write(self, line: str) -> int | bool:
        r"""`writerow`'s file: False, and nothing written, for a line holding "\r"."""
        return "\r" not in line and self._put(line)

    def quoted(self, row: Iterable[Any]) -> None:
        r"""Write `row` with a writer ending lines in "\r\n" (so quoting "\r" too), its
        ending made "\n"."""
        self._quoting.writerow(row)
        line = self._spare.getvalue()
        self._spare.seek(0)
        self._spare.truncate()
        self._put(line.removesuffix("\r\n") + "\n")


async def stream_csv(
    conn: Connection,
    export: Export,
    sink: Callable[[bytes], Awaitable[None]],
    *,
    query_seconds: float | None = None,
) -> int:
    """Write the export as CSV to `sink`, about a megabyte per call; returns the row count.
    `query_seconds`: the limit for each of the export's queries (None: the
    connection's)."""
    buffer = io.StringIO()
    writer = CsvLines(buffer)
    rows = 0

    async def flush() -> None:
        data = buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if data:
            await sink(data)

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        try:
            query, args, headers = await select(conn, export, query_seconds=query_seconds)
        except TimeoutError as exc:
            raise QueryTooSlow(query_seconds) from exc
        writer.quoted(headers)  # metadata keys are the customers' own text
        cursor = conn.cursor(query, *args, prefetch=CURSOR_PREFETCH, timeout=query_seconds)
        records = aiter(cursor)
        while True:
            try:
                record = await anext(records)
            except StopAsyncIteration:
                break
            except TimeoutError as exc:  # the sink's own time-outs pass as they are
                raise QueryTooSlow(query_seconds) from exc
            if not writer.writerow(record):  # it holds "\r"
                writer.quoted(record)
            rows += 1
            if buffer.tell() >= CHUNK_BYTES:
                await flush()
    await flush()
    return rows


class QueryTooSlow(Exception):  # noqa: N818 - reads as "raise QueryTooSlow"
    """An export's query ran past its limit: the export fails (ERROR), rather than being
    taken for an unreachable Postgres and taken up again and again."""

    def __init__(self, seconds: float | None) -> None:
        limit = "its time limit" if seconds is None else f"{seconds:g} s"
        super().__init__(f"a query of the export ran over {limit}; narrow its filters")


# An export's query may sort or scan a large table before its first row: the pool's 30 s
# per query ended it as if Postgres were down, and the job was taken up again and again.
# A round trip of the export's queries (its plan, the metadata keys, the first rows or
# any later fetch) still waiting after this fails the job (QueryTooSlow).
EXPORT_QUERY_SECONDS = 3600.0


# What db.UNAVAILABLE counts as "Postgres is not answering" but is the export's own doing:
# Postgres cancelled its query (statement_timeout, pg_cancel_backend) or stopped it at a
# resource limit (temp_file_limit, a full disk, out of memory). Taken up again, the job
# would run its heavy query again each time its lease ran out, to the same end: it fails.
ITS_OWN_FAILURE: tuple[type[Exception], ...] = (
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.ConfigurationLimitExceededError,
    asyncpg.exceptions.DiskFullError,
    asyncpg.exceptions.OutOfMemoryError,
)


class LeaseLost(Exception):  # noqa: N818 - reads as "raise LeaseLost"
    """Another worker claimed the job: this one stops without touching it."""


@dataclass
class ExportRunner:
    """Produces scheduled exports in the background, one at a time per process.

    Any replica may take any job: claiming uses SKIP LOCKED, and a lease renewed every
    third of its length while the job runs lets another worker take over a job whose
    process died. Each claim is named (`claim`), and a worker writes to its job only
    while its claim holds (see CLAIM_NEXT).
    """

    pool: Pool
    lease: timedelta = timedelta(seconds=60)
    poll_seconds: float = 2.0
    query_seconds: float = EXPORT_QUERY_SECONDS
    # A pool too small for the writers and a job (config.py checks DB_POOL_SIZE) hung the
    # worker for good: waiting longer for a connection fails the attempt, in the log.
    acquire_seconds: float = 10.0

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            try:
                while await self.run_once():
                    pass
            except Exception as exc:  # noqa: BLE001 - the runner outlives outages and old schemas
                log.warning("export runner waiting", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A connection of the pool; TimeoutError naming the pool after `acquire_seconds`."""
        try:
            conn = await self.pool.acquire(timeout=self.acquire_seconds)
        except TimeoutError:
            seconds = self.acquire_seconds
            raise TimeoutError(f"no connection of the pool free within {seconds:g} s") from None
        try:
            yield conn
        finally:
            await self.pool.release(conn)

    async def run_once(self) -> bool:
        """Claim and produce one job; False when there was none."""
        claim = secrets.token_hex(8)
        async with self._connection() as conn:
            job = await conn.fetchrow(CLAIM_NEXT, self.lease, claim, MAX_ATTEMPTS)
        if job is None:
            return False
        export_id = job["id"]
        try:
            rows, size = await self._produce_leased(job, claim)
            async with self._connection() as conn:
                if await conn.fetchval(FINISH, export_id, claim, rows, size) is None:
                    raise LeaseLost
        except LeaseLost:
            log.warning("export taken over by another worker", export_id=export_id)
            return True
        except Exception as exc:  # a failed export reports ERROR, the runner goes on
            if isinstance(exc, UNAVAILABLE) and not isinstance(exc, ITS_OWN_FAILURE):
                raise  # Postgres unreachable: the lease runs out and the job is taken up again
            log.warning("export failed", export_id=export_id, error=str(exc))
            async with self._connection() as conn:
                await conn.execute(FAIL, export_id, claim, f"{type(exc).__name__}: {exc}")
            return True
        log.info("export done", export_id=export_id, rows=rows, bytes=size)
        return True

    async def _produce_leased(self, job: asyncpg.Record, claim: str) -> tuple[int, int]:
        """`_produce`, with the lease renewed meanwhile; LeaseLost when another worker
        took the job over (the production is then cancelled)."""
        producing = asyncio.ensure_future(self._produce(job, claim))
        renewing = asyncio.ensure_future(self._renew(job["id"], claim))
        try:
            await asyncio.wait({producing, renewing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # `asyncio.wait` raises none of their errors, and lets this task's own
            # cancellation (shutdown) through.
            pending = {task for task in (producing, renewing) if not task.done()}
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        renewed = None if not renewing.done() or renewing.cancelled() else renewing.exception()
        if producing.cancelled() or isinstance(renewed, LeaseLost):
            # Stopped by the renewal (or both ended in one turn and the job is not ours):
            # LeaseLost, or what made the renewal fail (Postgres down).
            if not producing.cancelled():
                producing.exception()  # retrieved: its outcome no longer counts
            raise renewed or LeaseLost
        return producing.result()  # a renewal failing as the file completed: the file stands

    async def _renew(self, export_id: str, claim: str) -> None:
        """Renew the lease every third of its length until cancelled; raises LeaseLost
        when the job's claim is no longer ours."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            async with self._connection() as conn:
                if await conn.fetchval(RENEW_LEASE, export_id, claim, self.lease) is None:
                    raise LeaseLost

    async def _produce(self, job: asyncpg.Record, claim: str) -> tuple[int, int]:
        export_id = job["id"]
        export = export_of(job)
        async with self._connection() as reader, self._connection() as writer:
            if not await writer.fetchval(DELETE_CHUNKS, export_id, claim):
                raise LeaseLost
            seq = 0
            size = 0

            async def store(data: bytes) -> None:
                nonlocal seq, size
                if await writer.fetchval(INSERT_CHUNK, export_id, claim, seq, data) is None:
                    raise LeaseLost
                seq += 1
                size += len(data)

            rows = await stream_csv(reader, export, store, query_seconds=self.query_seconds)
        return rows, size


async def chunks(pool: Pool, export_id: str) -> Any:
    """The stored CSV of an export, chunk by chunk (an async iterator of bytes)."""
    seq = 0
    while True:
        async with pool.acquire() as conn:
            data = await conn.fetchval(SELECT_CHUNK, export_id, seq)
        if data is None:
            return
        yield data
        seq += 1
