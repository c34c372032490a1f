"""Migrations: an empty database goes up to head, down to nothing, and up again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from service import migrate


async def tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


def test_upgrade_downgrade_and_upgrade_again(create_database: Callable[[], str]) -> None:
    url = create_database()
    migrate.upgrade(url)
    assert {"events", "alembic_version"} <= asyncio.run(tables(url))
    migrate.downgrade(url, "base")
    assert asyncio.run(tables(url)) <= {"alembic_version"}
    migrate.upgrade(url)
    assert "events" in asyncio.run(tables(url))


def test_every_table_and_view_an_analyst_sees_is_commented(database_url: str) -> None:
    async def uncommented() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch("""
                SELECT c.relname FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v')
                  AND NOT c.relispartition
                  AND c.relname <> 'alembic_version' AND obj_description(c.oid) IS NULL
            """)
            return [row["relname"] for row in rows]
        finally:
            await conn.close()

    assert asyncio.run(uncommented()) == []


def test_every_column_an_analyst_sees_is_commented(database_url: str) -> None:
    async def uncommented() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch("""
                SELECT c.relname || '.' || a.attname AS name
                FROM pg_attribute a
                JOIN pg_class c ON c.oid = a.attrelid
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v')
                  AND NOT c.relispartition
                  AND c.relname <> 'alembic_version'
                  AND a.attnum > 0 AND NOT a.attisdropped
                  AND col_description(c.oid, a.attnum) IS NULL
            """)
            return [row["name"] for row in rows]
        finally:
            await conn.close()

    assert asyncio.run(uncommented()) == []


LZ4_AVAILABLE = """
SELECT EXISTS (SELECT FROM pg_settings WHERE name = 'default_toast_compression'
               AND 'lz4' = ANY (enumvals))
"""
JSONB_COMPRESSION = """
SELECT a.attrelid::regclass::text AS col, a.attcompression::text AS method
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND a.atttypid = 'jsonb'::regtype AND a.attnum > 0 AND NOT a.attisdropped
"""


def test_jsonb_columns_use_lz4_where_the_server_has_it(create_database: Callable[[], str]) -> None:
    """Every jsonb column, each partition of `events` and one made later included, is set
    to lz4 when the server was built with it (pglz cost Postgres 7-15% more per event);
    without it the migration leaves pglz. Down to 0006 leaves the default again."""
    url = create_database()
    migrate.upgrade(url)

    async def methods() -> tuple[bool, dict[str, set[str]]]:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SELECT maintain_event_partitions(6)")  # three more months
            rows = await conn.fetch(JSONB_COMPRESSION)
            return await conn.fetchval(LZ4_AVAILABLE), {
                method: {r["col"] for r in rows if r["method"] == method}
                for method in {r["method"] for r in rows}
            }
        finally:
            await conn.close()

    lz4, by_method = asyncio.run(methods())
    assert len(by_method.get("l" if lz4 else "", set())) >= 15  # ten tables, 5+ partitions
    assert set(by_method) == ({"l"} if lz4 else {""})
    migrate.downgrade(url, "0006")
    assert set(asyncio.run(methods())[1]) == {""}
