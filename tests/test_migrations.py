"""Migrations: an empty database goes up to head, down to nothing, and up again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from service import db, migrate
from service.replay import replay


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


def test_rows_imported_before_0012_are_recorded_and_kept_by_a_replay(
    create_database: Callable[[], str],
) -> None:
    """0012 records what replay kept until then (voucher and redemption rows an import
    still owns), so a full replay after the upgrade keeps them; webhook rows are not
    recorded (their events give them back)."""
    url = create_database()
    migrate.upgrade(url, "0011")

    async def before() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("""
                INSERT INTO vouchers (id, code, qr_code, last_event_at, last_event_id) VALUES
                    ('v_file', 'CODE-1', 'https://qr/1', '2024-01-01', 'import:v.csv:2'),
                    ('v_hook', 'CODE-2', 'https://qr/2', '2024-01-01', 'evcus_gone');
                INSERT INTO redemptions (id, tracking_id, last_event_at, last_event_id)
                VALUES ('r_file', 'trk', '2024-01-01', 'import:r.csv:2');
            """)
        finally:
            await conn.close()

    async def after() -> tuple[list[tuple[str, str]], list[tuple[str, str | None]], str]:
        conn = await db.connect(url)
        try:
            recorded = await conn.fetch("SELECT table_name, id FROM imported_rows ORDER BY 2")
            await replay(conn)
            vouchers = await conn.fetch("SELECT id, qr_code FROM vouchers ORDER BY id")
            tracking = await conn.fetchval("SELECT tracking_id FROM redemptions")
            return [tuple(r) for r in recorded], [tuple(r) for r in vouchers], tracking
        finally:
            await conn.close()

    asyncio.run(before())
    migrate.upgrade(url)
    recorded, vouchers, tracking = asyncio.run(after())
    assert recorded == [("redemptions", "r_file"), ("vouchers", "v_file")]
    assert vouchers == [("v_file", "https://qr/1")]
    assert tracking == "trk"
