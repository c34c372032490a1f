"""The benchmarks' Postgres: DATABASE_URL's server or the embedded one, and throwaway
databases on it, each migrated to head and dropped after its run."""

from __future__ import annotations

import contextlib
import os
import secrets
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
