"""The embedded Postgres `make run` uses on a machine without one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from service import embedded, migrate


def test_embedded_postgres_starts_migrates_and_keeps_its_data_under_the_data_dir(
    tmp_path: Path,
) -> None:
    url = embedded.start(tmp_path)
    assert (tmp_path / "pg" / "PG_VERSION").exists()
    migrate.upgrade(url)

    async def check() -> str | None:
        conn = await asyncpg.connect(url)
        try:
            value: str | None = await conn.fetchval("SELECT version_num FROM alembic_version")
            return value
        finally:
            await conn.close()

    assert asyncio.run(check()) == migrate.head_revision()
    # Asking again attaches to the running cluster instead of starting a second one.
    assert embedded.start(tmp_path) == url
