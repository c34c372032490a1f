"""Migrations: an empty database goes up to head, down to nothing, and up again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import asyncpg
import pytest

from service import db, migrate
from service.app import create_app
from service.exports.importer import load
from service.replay import replay
from tests.conftest import deliver_processed, dump, load_fixture, settings, start_app


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


def at_0011(url: str, rows: str) -> str:
    """The database at `url` migrated to 0011, with `rows` inserted (as before kept
    files); returns the url."""
    migrate.upgrade(url, "0011")

    async def insert() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(rows)
        finally:
            await conn.close()

    asyncio.run(insert())
    return url


def test_what_replay_kept_of_files_imported_before_0012_it_keeps_after(
    create_database: Callable[[], str], tmp_path: Path
) -> None:
    """Files loaded before 0012 were not kept: the rows replay kept of them (rows they
    owned, those orders' items) are copied at the upgrade and put back by every replay,
    also next to a kept file of the same name, and under a newer kept file that names
    fewer columns."""
    url = at_0011(
        create_database(),
        """
        INSERT INTO vouchers (id, code, qr_code, last_event_at, last_event_id) VALUES
            ('v_old', 'C1', 'https://qr/1', '2024-01-01', 'import:a.csv:2'),
            ('v_x', 'C2', 'https://qr/2', '2024-01-01', 'import:old.csv:2');
        INSERT INTO orders (id, status, is_stub, last_event_at, last_event_id)
        VALUES ('ord_old', 'PAID', false, '2024-01-01', 'import:o.csv:2');
        INSERT INTO order_items (order_id, position, product_id) VALUES ('ord_old', 0, 'prod_1');
    """,
    )

    async def after() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        conn = await db.connect(url)
        try:
            newer = "ID,Code,Updated At\nv_x,C2b,2024-06-01T00:00:00.000Z\n"
            files = {"a.csv": "ID,Code\nv_new,C9\n", "new.csv": newer}
            for name, text in files.items():
                (tmp_path / name).write_text(text)
                await load(conn, "voucher", tmp_path / name)
            live = await dump(conn)
            await replay(conn)
            return live, await dump(conn)
        finally:
            await conn.close()

    migrate.upgrade(url)
    live, replayed = asyncio.run(after())
    assert replayed == live
    vouchers = sorted(live["vouchers"])
    assert next(v for v in vouchers if '"v_x"' in v).count("https://qr/2") == 1
    assert any('"v_old"' in v for v in vouchers)
    assert any('"v_new"' in v for v in vouchers)
    assert len(live["order_items"]) == 1


@pytest.mark.parametrize("deletion_first", [False, True])
def test_a_redacted_customers_names_leave_what_replay_kept_of_files_before_0012(
    create_database: Callable[[], str], deletion_first: bool
) -> None:
    """REDACT_DELETED_CUSTOMERS: a pre-0012 redemption row naming the redeemer but not
    their id; an event gives it the customer, who is deleted (in either order): the kept
    copy of the row loses the names too, so no replay, redacting or not, brings them back."""
    url = at_0011(
        create_database(),
        """
        INSERT INTO redemptions (id, customer_name, customer_source_id, tracking_id,
                                 last_event_at, last_event_id)
        VALUES ('r_leg', 'Ann Person', 'ann@example.com', 'trk', '2024-06-01', 'import:r.csv:2')
    """,
    )

    async def after() -> tuple[str, str, list[str]]:
        redeemed = load_fixture("customer.redemption.succeeded")
        redeemed.update(id="evcus_link", created_at="2024-01-01T00:00:00Z")
        redeemed["data"]["redemption"].update(id="r_leg", customer_id="cust_gdpr")
        redeemed["data"]["customer"].update(id="cust_gdpr", name=None, source_id=None)
        deleted = load_fixture("customer.deleted") | {"id": "evcus_deleted"}
        deleted["data"]["customer"].update(id="cust_gdpr")
        app = create_app(settings(redact_deleted_customers=True), url)
        async with AsyncExitStack() as stack:
            client = await start_app(stack, app)
            await deliver_processed(client, *([deleted, redeemed] if deletion_first
                                               else [redeemed, deleted]))  # fmt: skip
        conn = await db.connect(url)
        try:
            kept = await conn.fetchval(
                "SELECT string_agg(row::text, ' ') FROM imported_before_0012"
            )
            live = str(await dump(conn))
            replayed = []
            for redact_deleted in (False, True):
                await replay(conn, redact_deleted=redact_deleted)
                replayed.append(str(await dump(conn)))
            return kept, live, replayed
        finally:
            await conn.close()

    migrate.upgrade(url)
    kept, live, replayed = asyncio.run(after())
    assert "trk" in kept
    for text in (kept, live, *replayed):
        assert "Ann Person" not in text
        assert "ann@example.com" not in text
