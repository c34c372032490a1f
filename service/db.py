"""Postgres access: the pool, its jsonb codec, and the readiness question."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import msgspec
import structlog

# asyncpg-stubs makes Connection and Pool generic over the record class; asyncpg does not.
# A handler takes either a plain connection (CLI, replay) or one borrowed from the pool.
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
else:
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool

log = structlog.get_logger("service.db")
T = TypeVar("T")

# Errors that mean "Postgres is not answering right now": the caller answers 503 and
# Voucherify retries, rather than treating them as a bad event.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)

# Errors that undo a transaction for what ran beside it, not for what it holds: two
# sessions waited on each other's row locks (a deadlock) or a serializable read conflicted.
# Done again, the same work goes through (`again_if_undone`).
TRANSIENT: tuple[type[Exception], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)
TRANSIENT_ATTEMPTS = 3
TRANSIENT_PAUSE_SECONDS = 0.05  # before attempt n+1: 0.5-1 times this, times n

# Not the event's fault, so never a reason to quarantine it: Postgres is down, or undid
# the work attempt after attempt. Live deliveries get 503 (Voucherify retries); a replay
# stops and is done again.
NOT_THE_EVENTS_FAULT: tuple[type[BaseException], ...] = (*UNAVAILABLE, *TRANSIENT)


async def again_if_undone(
    conn: Connection,
    work: Callable[[Callable[[int], None]], Awaitable[T]],
    *,
    progress: Callable[[int], None] | None = None,
    warning: str,
    **context: Any,
) -> T:
    """`work(progress)`: one transaction on `conn` (a live batch, a CSV import, a replay).
    When Postgres undoes it for a concurrent transaction (TRANSIENT), log `warning` and do
    it again from the start, with what the undone attempt counted through `progress`
    wound back; up to TRANSIENT_ATTEMPTS in all. Inside a caller's transaction the whole
    of it is undone: the error is theirs to handle."""
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        counted = 0

        def counting(n: int) -> None:
            nonlocal counted
            counted += n
            if progress is not None:
                progress(n)

        try:
            return await work(counting)
        except TRANSIENT as exc:
            if attempt == TRANSIENT_ATTEMPTS or conn.is_in_transaction():
                raise
            log.warning(warning, **context, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
            if progress is not None and counted:
                progress(-counted)
            # Let the transaction that survived take the locks it was waiting for. Done
            # again at once, this one could take them first and close the same cycle
            # again (seen in a test: the import undone twice, once 1 run in ~12).
            await asyncio.sleep(random.uniform(0.5, 1.0) * TRANSIENT_PAUSE_SECONDS * attempt)  # noqa: S311 - jitter, not a secret
    raise AssertionError("unreachable: the last attempt returns or raises")


# What ends a CLI command's transaction without a result: Postgres refused it (a lock
# timeout, deadlocks attempt after attempt, a constraint) or could not be reached.
REFUSED_OR_UNAVAILABLE: tuple[type[BaseException], ...] = (asyncpg.PostgresError, *UNAVAILABLE)

_JSONB_VERSION = b"\x01"


def _encode_jsonb(value: Any) -> bytes:
    # msgspec.Raw passes already-encoded JSON (the request body) through untouched, also
    # inside a whole batch of rows sent as one jsonb argument.
    return _JSONB_VERSION + msgspec.json.encode(value)


def _decode_jsonb(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


# Values past Postgres' ~2 KB threshold (half the bench's bodies in `events.payload`,
# large customer metadata) are compressed as they are written: with lz4 where the server
# was built with it, not the default pglz, which was 7-9% of the writer's Postgres time
# (docs/performance.md). A session setting, not a column's: no table lock to take, and a
# database moved to a server with lz4 uses it from its next connection. Without lz4 (the
# embedded Postgres) the session keeps pglz.
PREFER_LZ4 = """
DO $lz4$ BEGIN
    SET default_toast_compression = lz4;
EXCEPTION WHEN invalid_parameter_value OR undefined_object THEN
    NULL;  -- no lz4 in this build, or no such setting (before Postgres 14)
END $lz4$;
"""


async def _init_connection(conn: Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )
    # Both import this module.
    from service.handlers import install  # noqa: PLC0415
    from service.writer import INGEST_FUNCTION  # noqa: PLC0415

    # A session that cannot write (read-only, no TEMP privilege) needs no write function.
    with contextlib.suppress(
        asyncpg.ReadOnlySQLTransactionError, asyncpg.InsufficientPrivilegeError
    ):
        await install(conn, INGEST_FUNCTION, PREFER_LZ4)


async def _reset_connection(conn: Connection) -> None:
    """What the pool runs on a connection given back: asyncpg's reset (its `RESET ALL`
    would drop `PREFER_LZ4`), then the setting again, in one round trip."""
    await conn.execute(conn.get_reset_query() + PREFER_LZ4)


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection[asyncpg.Record]:
    """One connection with the service's codecs (CLI commands and tests)."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(dsn, **kwargs)
    await _init_connection(conn)
    return conn


async def create_pool(dsn: str, *, max_size: int) -> Pool:
    """A pool that starts empty, so the service starts (and reports not ready) while
    Postgres is down, and connects as soon as it answers."""
    pool = asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        init=_init_connection,
        reset=_reset_connection,
        command_timeout=30,
        # Connection attempts fail fast; the writer's own deadline bounds the request.
        timeout=5,
    )
    return await pool


async def schema_revision(conn: Connection) -> str | None:
    """The alembic revision the database is at, or None before the first migration."""
    exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    if not exists:
        return None
    revision: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
    return revision


# Whether this session could store an event: not a standby, not read-only by default
# (`default_transaction_read_only`), and allowed to insert into `events`.
CAN_WRITE = """
SELECT NOT pg_is_in_recovery()
   AND current_setting('transaction_read_only') = 'off'
   AND coalesce(has_table_privilege(to_regclass('events'), 'INSERT'), false)
"""


async def can_write(conn: Connection) -> bool:
    writable: bool = await conn.fetchval(CAN_WRITE)
    return writable


# Errors that mean "this value cannot be stored", not "Postgres is down".
REJECTED_VALUES: tuple[type[BaseException], ...] = (asyncpg.DataError,)


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` (keeps host, port, user and query options)."""
    base, _, query = url.partition("?")
    root = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{root}/{name}" + (f"?{query}" if query else "")
