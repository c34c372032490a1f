"""The benchmarks' Postgres: DATABASE_URL's server or the embedded one, and throwaway
databases on it, each migrated to head and dropped after its run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psutil

from service import db, migrate
from tests.conftest import admin_sql

ROOT = Path(__file__).resolve().parents[1]


def server_url() -> str:
    if url := os.environ.get("DATABASE_URL"):
        return url
    from service import embedded  # noqa: PLC0415 - only without DATABASE_URL

    return embedded.start(ROOT / ".data")


def fresh_database(server: str) -> str:
    name = f"vh_bench_{secrets.token_hex(4)}"
    admin_sql(server, f'CREATE DATABASE "{name}"')
    url = db.with_database(server, name)
    migrate.upgrade(url)
    return url


def drop_database(server: str, url: str) -> None:
    name = url.partition("?")[0].rsplit("/", 1)[1]
    admin_sql(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def postgres_cpu_seconds() -> float:
    """CPU time used so far by this machine's Postgres processes (0 when it runs elsewhere):
    sampled around a run, it says how much of the run was Postgres' work."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if (process.info["name"] or "").startswith("postgres"):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


@dataclass(frozen=True)
class WalSample:
    """Where the server's WAL stood, and how many checkpoints it had begun."""

    wal_bytes: int
    checkpoints: int
    requested: int  # begun because max_wal_size filled up, not by checkpoint_timeout


# PostgreSQL 17 moved the checkpoint counters from pg_stat_bgwriter to pg_stat_checkpointer.
_CHECKPOINTS = {
    True: "SELECT num_timed + num_requested, num_requested FROM pg_stat_checkpointer",
    False: "SELECT checkpoints_timed + checkpoints_req, checkpoints_req FROM pg_stat_bgwriter",
}


def wal_sample(server: str) -> WalSample:
    """Sampled around a run: the WAL it wrote (bytes per event say how much of the disk's
    write rate an event costs) and the checkpoints it set off, whose full-page writes
    and fsyncs compete with the commits."""

    async def read() -> WalSample:
        conn = await db.connect(db.with_database(server, "postgres"))
        try:
            wal = await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
            newer = await conn.fetchval("SELECT current_setting('server_version_num')::int")
            row = await conn.fetchrow(_CHECKPOINTS[newer >= 170000])
            assert row is not None  # a statistics view always has its one row
            return WalSample(int(wal), int(row[0]), int(row[1]))
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()
