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
from collections.abc import Awaitable, Callable
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

# Take the oldest scheduled job, or one whose worker stopped renewing its lease.
CLAIM_NEXT = """
UPDATE exports SET status = 'IN_PROGRESS', started_at = now(),
                   lease_until = now() + $1::interval, error = NULL
WHERE id = (
    SELECT id FROM exports
    WHERE status = 'SCHEDULED' OR (status = 'IN_PROGRESS' AND lease_until < now())
    ORDER BY created_at
    FOR UPDATE SKIP LOCKED
    LIMIT 1
)
RETURNING *
"""
RENEW_LEASE = "UPDATE exports SET lease_until = now() + $2::interval WHERE id = $1"
FINISH = """
UPDATE exports SET status = 'DONE', finished_at = now(), lease_until = NULL,
                   row_count = $2, byte_count = $3
WHERE id = $1
"""
FAIL = """
UPDATE exports SET status = 'ERROR', finished_at = now(), lease_until = NULL, error = $2
WHERE id = $1
"""
DELETE_CHUNKS = "DELETE FROM export_chunks WHERE export_id = $1"
INSERT_CHUNK = "INSERT INTO export_chunks (export_id, seq, data) VALUES ($1, $2, $3)"
SELECT_CHUNK = "SELECT data FROM export_chunks WHERE export_id = $1 AND seq = $2"
RENEW_TOKEN = """
UPDATE exports SET token = $2, token_expires_at = now() + $3::interval
WHERE id = $1 AND token_expires_at <= now()
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


async def stream_csv(
    conn: Connection, export: Export, sink: Callable[[bytes], Awaitable[None]]
) -> int:
    """Write the export as CSV to `sink`, about a megabyte per call; returns the row count."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows = 0

    async def flush() -> None:
        data = buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        if data:
            await sink(data)

    async with conn.transaction(isolation="repeatable_read", readonly=True):
        query, args, headers = await select(conn, export)
        writer.writerow(headers)
        async for record in conn.cursor(query, *args, prefetch=CURSOR_PREFETCH):
            writer.writerow(record)
            rows += 1
            if buffer.tell() >= CHUNK_BYTES:
                await flush()
    await flush()
    return rows


@dataclass
class ExportRunner:
    """Produces scheduled exports in the background, one at a time per process.

    Any replica may take any job: claiming uses SKIP LOCKED, and a lease that is renewed
    while the job runs lets another worker take over a job whose process died.
    """

    pool: Pool
    lease: timedelta = timedelta(seconds=60)
    poll_seconds: float = 2.0

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

    async def run_once(self) -> bool:
        """Claim and produce one job; False when there was none."""
        async with self.pool.acquire() as conn:
            job = await conn.fetchrow(CLAIM_NEXT, self.lease)
        if job is None:
            return False
        export_id = job["id"]
        try:
            rows, size = await self._produce(job)
        except UNAVAILABLE:
            raise  # the lease runs out and the job is taken up again
        except Exception as exc:  # noqa: BLE001 - a failed export reports ERROR, the runner goes on
            log.warning("export failed", export_id=export_id, error=str(exc))
            async with self.pool.acquire() as conn:
                await conn.execute(FAIL, export_id, f"{type(exc).__name__}: {exc}")
            return True
        async with self.pool.acquire() as conn:
            await conn.execute(FINISH, export_id, rows, size)
        log.info("export done", export_id=export_id, rows=rows, bytes=size)
        return True

    async def _produce(self, job: asyncpg.Record) -> tuple[int, int]:
        export_id = job["id"]
        export = export_of(job)
        async with self.pool.acquire() as reader, self.pool.acquire() as writer:
            await writer.execute(DELETE_CHUNKS, export_id)
            seq = 0
            size = 0

            async def store(data: bytes) -> None:
                nonlocal seq, size
                await writer.execute(INSERT_CHUNK, export_id, seq, data)
                await writer.execute(RENEW_LEASE, export_id, self.lease)
                seq += 1
                size += len(data)

            rows = await stream_csv(reader, export, store)
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
