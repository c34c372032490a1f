"""Alembic environment: runs revisions over asyncpg, one migrator at a time.

An advisory lock serialises concurrent `migrate` runs (several replicas starting at once),
and lock/statement timeouts keep a migration from queueing behind live traffic forever.
"""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Any constant shared by every replica; "vouchrfy" in ASCII.
MIGRATION_LOCK_ID = 0x766F7563_68726679


def _run(connection: Connection) -> None:
    connection.execute(text("SET lock_timeout = '10s'"))
    connection.execute(text("SET statement_timeout = '10min'"))
    connection.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})"))
    try:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    except BaseException:
        # A failed revision leaves the transaction aborted: end it, so the unlock (and the
        # original error, not a secondary one) gets through.
        connection.rollback()
        raise
    finally:
        connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"))
        connection.commit()


async def _main() -> None:
    url = context.config.attributes["database_url"]
    # asyncpg reads the URL itself, as the service does: SQLAlchemy would pass libpq's
    # query options (`?sslmode=require`) to asyncpg.connect as arguments it refuses.
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(url)
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
asyncio.run(_main())
