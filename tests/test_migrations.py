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
