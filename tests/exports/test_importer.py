"""Import of Voucherify export files, the CLI both ways, and the export/import round trip."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from service import db, migrate
from service.exports import importer
from service.exports.catalog import OBJECTS
from service.exports.importer import ImportError_, load
from service.exports.jobs import stream_csv
from service.exports.query import validate
from service.replay import replay
from tests.conftest import compact_json, dump, load_fixture, with_options
from tests.exports.conftest import seed
from tests.test_main import run_cli
from tests.test_replay import deliver, journey
from tests.test_writer import waiting_on_a_lock

# Customers first: other exports join them (voucher customer_source_id).
ROUND_TRIP_ORDER = ["customer", "order", "voucher", "publication", "redemption",
                    "points_expiration", "voucher_transactions"]  # fmt: skip


async def export_all_fields(conn: db.Connection, obj: str) -> bytes:
    chunks: list[bytes] = []

    async def sink(data: bytes) -> None:
        chunks.append(data)

    await stream_csv(conn, validate(obj, {"fields": list(OBJECTS[obj].fields)}), sink)
    return b"".join(chunks)


async def test_export_import_into_an_empty_database_and_export_again_gives_the_same_csv(
    client: httpx.AsyncClient,
    conn: db.Connection,
    create_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    """Every object, every field: the files a team exports load back to the same files."""
    await deliver(client, [compact_json(e) for e in journey()])
    await seed(conn)
    first = {obj: await export_all_fields(conn, obj) for obj in ROUND_TRIP_ORDER}
    assert all(len(data.splitlines()) > 1 for data in first.values()), "every export has rows"

    empty = create_database()
    await asyncio.to_thread(migrate.upgrade, empty)
    target = await db.connect(empty)
    try:
        for obj in ROUND_TRIP_ORDER:
            path = tmp_path / f"{obj}.csv"
            path.write_bytes(first[obj])
            await load(target, obj, path)
        again = {obj: await export_all_fields(target, obj) for obj in ROUND_TRIP_ORDER}
    finally:
        await target.close()
    for obj in ROUND_TRIP_ORDER:
        assert again[obj] == first[obj], obj


async def test_a_value_holding_a_carriage_return_is_quoted_and_reads_back_whole(
    conn: db.Connection, tmp_path: Path
) -> None:
    """A bare "\\r" inside a value went out unquoted: every CSV reader (and the import)
    took it for the end of the record."""
    await seed(conn)
    await conn.execute("UPDATE customers SET name = $1 WHERE id = 'cust_a'", "a\rb")
    exported = await export_all_fields(conn, "customer")
    assert b'"a\rb"' in exported
    records = list(csv.reader(io.StringIO(exported.decode(), newline="")))
    assert len(records) == 4  # the headers and three customers
    id_at, name_at = records[0].index("ID"), records[0].index("Name")
    names = {r[id_at]: r[name_at] for r in records[1:]}
    assert names["cust_a"] == "a\rb"

    await conn.execute("TRUNCATE customers CASCADE")
    path = tmp_path / "customers.csv"
    path.write_bytes(exported)
    assert await load(conn, "customer", path) == (3, [])
    assert await conn.fetchval("SELECT name FROM customers WHERE id = 'cust_a'") == "a\rb"
    assert await export_all_fields(conn, "customer") == exported


async def test_an_import_never_overwrites_newer_webhook_data(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    paid = load_fixture("customer.order.paid")
    paid["created_at"] = "2024-06-01T00:00:00Z"
    paid["data"]["order"].update(id="ord_live", status="PAID")
    await deliver(client, [compact_json(paid)])
    path = tmp_path / "orders.csv"
    path.write_text(
        "ID,Status,Updated At\n"
        "ord_live,CREATED,2024-05-01T00:00:00.000Z\n"
        "ord_history,FULFILLED,2023-01-01T00:00:00.000Z\n"
    )

    rows, _ = await load(conn, "order", path)

    assert rows == 2
    statuses = {r["id"]: (r["status"], r["last_event_id"]) for r in
                await conn.fetch("SELECT id, status, last_event_id FROM orders")}  # fmt: skip
    assert statuses["ord_live"] == ("PAID", paid["id"])
    assert statuses["ord_history"] == ("FULFILLED", "import:orders.csv:3")


async def test_an_older_import_leaves_a_newer_copy_to_later_copies(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """An order known only from the copy a redemption carries stays that copy (a stub)
    when an older export file is loaded: the import once replaced it, marked it full,
    and later copies could no longer update it."""

    def redemption(event_id: str, at: str, status: str) -> bytes:
        event = load_fixture("customer.redemption.succeeded")
        event.update(id=event_id, created_at=at)
        event["data"]["order"].update(id="ord_copied", status=status)
        return compact_json(event)

    await deliver(client, [redemption("evcus_copy_1", "2024-06-01T00:00:00Z", "CREATED")])
    path = tmp_path / "orders.csv"
    path.write_text("ID,Status,Updated At\nord_copied,CANCELED,2024-05-01T00:00:00.000Z\n")
    assert await load(conn, "order", path) == (1, [])
    query = "SELECT status, is_stub, last_event_id FROM orders WHERE id = 'ord_copied'"
    assert tuple(await conn.fetchrow(query) or ()) == ("CREATED", True, "evcus_copy_1")

    await deliver(client, [redemption("evcus_copy_2", "2024-07-01T00:00:00Z", "PAID")])
    assert tuple(await conn.fetchrow(query) or ()) == ("PAID", True, "evcus_copy_2")
    # A newer file wins, and its row is a full order.
    path.write_text("ID,Status,Updated At\nord_copied,FULFILLED,2024-08-01T00:00:00.000Z\n")
    await load(conn, "order", path)
    row = ("FULFILLED", False, "import:orders.csv:2")
    assert tuple(await conn.fetchrow(query) or ()) == row


async def test_an_older_import_fills_what_a_newer_copy_left_empty(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """A customer known only from the copy a redemption carries gets the address and
    phone an older export file has; the copy's own values, its time and its being a
    copy stay, so a later copy still updates it."""

    def redemption(event_id: str, at: str) -> bytes:
        event = load_fixture("customer.redemption.succeeded")
        event.update(id=event_id, created_at=at)
        event["data"]["customer"]["id"] = "cust_copied"
        return compact_json(event)

    query = "SELECT name, phone, address_city, is_stub, last_event_id FROM customers "
    query += "WHERE id = 'cust_copied'"
    await deliver(client, [redemption("evcus_cc_1", "2024-06-01T00:00:00Z")])
    copy = await conn.fetchrow(query)
    assert copy is not None
    assert (copy["phone"], copy["address_city"], copy["is_stub"]) == (None, None, True)
    path = tmp_path / "customers.csv"
    path.write_text(
        "ID,Name,Phone,Address City,Updated At\n"
        "cust_copied,Old Name,+48 600 000 000,Warsaw,2024-05-01T00:00:00.000Z\n"
    )
    await load(conn, "customer", path)
    filled = (copy["name"], "+48 600 000 000", "Warsaw", True, "evcus_cc_1")
    assert tuple(await conn.fetchrow(query) or ()) == filled
    # Its event alone would not give the filled row back: a full replay keeps it, and
    # still re-derives what the copy carries (here damaged, as a mapping bug would).
    before = await dump(conn)
    await conn.execute("UPDATE customers SET name = 'damaged' WHERE id = 'cust_copied'")
    await replay(conn)
    assert await dump(conn) == before

    await deliver(client, [redemption("evcus_cc_2", "2024-07-01T00:00:00Z")])
    row = await conn.fetchrow(query)
    assert row is not None
    assert (row["phone"], row["address_city"], row["is_stub"]) == (
        "+48 600 000 000",
        "Warsaw",
        True,
    )
    assert row["last_event_id"] == "evcus_cc_2"


async def test_a_publication_a_webhook_stored_is_not_imported_twice(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """Publication files carry no id: the import makes one. A backfill covering months a
    webhook already stored (under its real pub_ id) doubled every such publication, and
    a replay kept both. The webhook's row is left as it is; the others load."""
    published = load_fixture("customer.publication.succeeded")
    publication = published["data"]["publication"]
    publication.update(id="pub_real", customer_id="cust_pub", created_at="2024-01-05T10:00:00.000Z")
    publication["voucher"]["code"] = "CODE-1"
    await deliver(client, [compact_json(published)])
    path = tmp_path / "publications.csv"
    path.write_text(
        "Voucher Code,Customer ID,Date,Channel\n"
        "CODE-1,cust_pub,2024-01-05T10:00:00.000Z,API\n"
        "CODE-2,cust_pub,2024-01-06T10:00:00.000Z,API\n"
    )

    for _ in range(2):  # the same file twice: still one row each
        await load(conn, "publication", path)
    await replay(conn)

    rows = await conn.fetch("SELECT id, voucher_code FROM publications ORDER BY voucher_code")
    assert [r["voucher_code"] for r in rows] == ["CODE-1", "CODE-2"]
    assert rows[0]["id"] == "pub_real"
    assert rows[1]["id"].startswith("pub_import_")


async def test_an_import_undone_by_a_deadlock_is_loaded_again(
    database_url: str, conn: db.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another transaction (a webhook batch, an operator's) can wait on the import in a
    cycle: when Postgres undoes the import, it loads again from the start and ends as if
    nothing had happened; its progress is wound back, not counted twice."""
    older = tmp_path / "older.csv"
    older.write_text("ID,Status,Updated At\n"
                     "ord_a,CREATED,2023-01-01T00:00:00.000Z\n"
                     "ord_b,CREATED,2023-01-01T00:00:00.000Z\n")  # fmt: skip
    await load(conn, "order", older)
    newer = tmp_path / "newer.csv"
    newer.write_text("ID,Status,Updated At\n"
                     "ord_a,PAID,2024-01-01T00:00:00.000Z\n"
                     "ord_b,PAID,2024-01-01T00:00:00.000Z\n")  # fmt: skip
    other = await db.connect(database_url, server_settings={"deadlock_timeout": "60s"})
    # The import's session looks for a deadlock 3 s after it starts to wait: after the
    # cycle closes (the other session's second lock), so it is the one undone.
    session = await db.connect(database_url, server_settings={"deadlock_timeout": "3s"})
    counted: list[int] = []
    monkeypatch.setattr(importer, "BATCH", 1)  # ord_a is counted before the import waits
    try:
        other_tx = other.transaction()
        await other_tx.start()
        await other.execute("SELECT FROM orders WHERE id = 'ord_b' FOR UPDATE")
        loading = asyncio.create_task(load(session, "order", newer, progress=counted.append))
        await waiting_on_a_lock(other, session.get_server_pid())  # holds ord_a, waits
        async with asyncio.timeout(30):
            # Granted only once the import is undone: the deadlock happened.
            await other.execute("SELECT FROM orders WHERE id = 'ord_a' FOR UPDATE")
        assert not loading.done()  # loading again, waiting for this session's locks
        await other_tx.rollback()
        async with asyncio.timeout(30):
            assert await loading == (2, [])
    finally:
        await other.close()
        await session.close()
    assert counted == [1, -1, 1, 1]
    rows = await conn.fetch("SELECT id, status, last_event_id FROM orders ORDER BY id")
    assert [tuple(r) for r in rows] == [("ord_a", "PAID", "import:newer.csv:2"),
                                        ("ord_b", "PAID", "import:newer.csv:3")]  # fmt: skip


async def test_the_cli_reports_an_import_the_database_refused_and_loads_nothing(
    database_url: str, conn: db.Connection, tmp_path: Path
) -> None:
    """A database error (here a row lock held past the DSN's lock_timeout) is one line
    naming the file, exit code 1, and nothing loaded; not a traceback."""
    older = tmp_path / "older.csv"
    older.write_text("ID,Status,Updated At\nord_a,CREATED,2023-01-01T00:00:00.000Z\n")
    await load(conn, "order", older)
    path = tmp_path / "orders.csv"
    path.write_text("ID,Status,Updated At\n"
                    "ord_new,PAID,2024-01-01T00:00:00.000Z\n"
                    "ord_a,PAID,2024-01-01T00:00:00.000Z\n")  # fmt: skip
    holder = await db.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("SELECT FROM orders WHERE id = 'ord_a' FOR UPDATE")
            url = with_options(database_url, "lock_timeout=200ms")
            env = {"DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
            imported = await asyncio.to_thread(run_cli, "import", "order", str(path), env=env)
    finally:
        await holder.close()
    assert imported.returncode == 1
    assert "error: orders.csv: nothing loaded: LockNotAvailableError" in imported.stderr
    assert "Traceback" not in imported.stderr
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE id = 'ord_new'") == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("ID,Amount\nord_1,100\nord_2,lots\n", "line 3: amount"),
        ("ID,Created At\nord_1,yesterday\n", "line 2: created_at"),
        ("ID,Colour\nord_1,red\n", "line 1: unknown column 'Colour'"),
        ("Status\nPAID\n", "needs the ID column"),
        ("", "line 1: the file is empty"),
    ],
)
async def test_a_malformed_file_stops_with_its_line_and_loads_nothing(
    conn: db.Connection, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ImportError_) as raised:
        await load(conn, "order", path)
    assert message in str(raised.value)
    assert await conn.fetchval("SELECT count(*) FROM orders") == 0


async def test_a_file_saved_with_a_byte_order_mark_loads(
    conn: db.Connection, tmp_path: Path
) -> None:
    """Excel saves "CSV UTF-8" with a BOM: it was read into the first header, which then
    named no column."""
    path = tmp_path / "orders.csv"
    path.write_bytes(b"\xef\xbb\xbfID,Status\nord_1,PAID\n")
    assert await load(conn, "order", path) == (1, [])
    assert await conn.fetchval("SELECT status FROM orders WHERE id = 'ord_1'") == "PAID"


async def test_a_cell_over_128_kib_loads_and_one_over_the_limit_stops_with_its_line(
    conn: db.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """csv's default limit (128 KiB) refused cells our own exports write, and its error
    came out as a traceback rather than as the import's error with the line."""
    path = tmp_path / "orders.csv"
    status = "x" * (200 << 10)
    path.write_text(f"ID,Status\nord_1,PAID\nord_2,{status}\n")
    assert await load(conn, "order", path) == (2, [])
    assert await conn.fetchval("SELECT status FROM orders WHERE id = 'ord_2'") == status

    limit = csv.field_size_limit()  # the process's: given back
    monkeypatch.setattr(importer, "FIELD_LIMIT", 1000)
    try:
        with pytest.raises(ImportError_) as raised:
            await load(conn, "order", path)
    finally:
        csv.field_size_limit(limit)
    assert str(raised.value) == "line 3: field larger than field limit (1000)"


async def test_the_cli_exports_and_imports_the_same_csv_as_the_api(
    conn: db.Connection, database_url: str, tmp_path: Path
) -> None:
    await seed(conn)
    out = tmp_path / "paid.csv"
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}

    exported = run_cli("export", "order", "--fields", "id,status,amount",
                       "--filter", "status:in:PAID,CREATED", "--order", "created_at",
                       "-o", str(out), env=env)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert out.read_text() == "ID,Status,Amount\nord_1,PAID,1000\nord_2,CREATED,2500\n"
    assert "exported 2 order rows" in exported.stderr

    stdout = run_cli("export", "order", "--filter",
                     '{"status": {"conditions": {"$is": ["PAID"]}}}', env=env)  # fmt: skip
    assert stdout.stdout == "ID,Source ID,Status\nord_1,S-1,PAID\n"

    await conn.execute("TRUNCATE orders CASCADE")
    imported = run_cli("import", "order", str(out), env=env)
    assert imported.returncode == 0, imported.stderr
    assert "imported 2 order rows" in imported.stderr
    assert await conn.fetchval("SELECT amount FROM orders WHERE id = 'ord_2'") == 2500

    bad = run_cli("export", "order", "--fields", "id,colour", env=env)
    assert bad.returncode == 2
    assert "colour" in bad.stderr
