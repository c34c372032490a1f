"""A full replay gives the tables that webhooks and export files gave live, whatever
order they came in: each file is kept and applied again where it came among the events.

Each case delivers events and loads files in every order, dumps every normalized table,
replays, and must dump the same: values only a file had (a voucher's QR code, a
redemption's tracking id, a customer's address filled into a copy) included, also once a
newer webhook owns the row.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from service import db
from service.app import create_app
from service.exports.importer import load
from service.replay import replay
from tests.conftest import (
    deliver_processed,
    dump,
    fetch_one,
    load_fixture,
    reset,
    settings,
    start_app,
)
from tests.test_main import run_cli

# A step: an event to deliver, or (object, file name, CSV text) to load.
File = tuple[str, str, str]
Step = dict[str, Any] | File


async def run(client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path,
              steps: list[Step]) -> None:  # fmt: skip
    for step in steps:
        if isinstance(step, tuple):
            exported_object, name, text = step
            path = tmp_path / name
            path.write_text(text)
            await load(conn, exported_object, path)
        else:
            await deliver_processed(client, step)


async def replays_as_live(client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path,
                          steps: list[Step]) -> dict[str, list[str]]:  # fmt: skip
    """Every order of `steps`: the tables after a full replay are the live ones. Returns
    the live tables of the order given."""
    first: dict[str, list[str]] = {}
    for order in itertools.permutations(steps):
        await reset(conn)
        await run(client, conn, tmp_path, list(order))
        live = await dump(conn)
        first = first or live
        await replay(conn)
        assert await dump(conn) == live, [s if isinstance(s, tuple) else s["id"] for s in order]
    return first


def voucher_event(n: int, when: str, **voucher: Any) -> dict[str, Any]:
    """A points_added event whose Simple Voucher is v_x (no assets, validity or counts)."""
    activity = load_fixture("customer.voucher.loyalty_card.points_added")
    activity.update(id=f"evcus_v_{n}", created_at=when)
    activity["data"]["voucher"].update(id="v_x", type="LOYALTY_CARD", **voucher)
    del activity["data"]["voucher"]["redemption"]
    return activity


VOUCHER = "SELECT * FROM vouchers WHERE id = 'v_x'"


async def test_two_files_and_an_event_between_them(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """Older file without an expiration date, a newer event with one, a newest file with
    a QR code only: in every order."""
    older = (
        "voucher",
        "a.csv",
        "ID,Code,Expiration Date,Updated At\nv_x,C,,2024-01-01T00:00:00.000Z\n",
    )
    newest = ("voucher", "b.csv", "ID,Code,QR Code,Updated At\n"
              "v_x,C,https://qr,2024-06-01T00:00:00.000Z\n")  # fmt: skip
    await replays_as_live(client, conn, tmp_path,
                          [older, voucher_event(1, "2024-03-01T00:00:00Z"), newest])  # fmt: skip


async def test_what_only_a_file_gave_a_voucher_survives_a_newer_copy_and_a_replay(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """The file's QR code, validity and counts come from no event: a newer copy owning
    the row keeps them, and so does the replay (it used to lose them)."""
    file = ("voucher", "v.csv",
            "ID,Code,QR Code,Validity Day Of Week,Redemption Count,Updated At\n"
            'v_x,C,https://qr,"1,2",3,2024-01-01T00:00:00.000Z\n')  # fmt: skip
    await run(client, conn, tmp_path, [file, voucher_event(1, "2024-06-01T00:00:00Z")])
    live = await fetch_one(conn, VOUCHER)
    assert (live["last_event_id"], live["qr_code"], live["validity_day_of_week"],
            live["redemption_count"]) == ("evcus_v_1", "https://qr", [1, 2], 3)  # fmt: skip

    await replay(conn)

    assert await fetch_one(conn, VOUCHER) == live


async def test_a_newer_file_with_empty_cells_and_an_older_event(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """An empty cell of a newer file clears what an older event gave, or not, depending
    on which came first live: the replay keeps whichever it was."""
    file = ("voucher", "v.csv", "ID,Code,Expiration Date,Campaign,Updated At\n"
            "v_x,C,,,2024-06-01T00:00:00.000Z\n")  # fmt: skip
    await replays_as_live(client, conn, tmp_path, [file, voucher_event(1, "2024-01-01T00:00:00Z")])


def holder(event_type: str, n: int, when: str) -> dict[str, Any]:
    activity = load_fixture(event_type)
    activity.update(id=f"evcus_h_{n}", created_at=when)
    activity["data"]["holder"].update(id="rh_1", customer_id="cust_owner", holder_role="OWNER",
                                      redeemable_id="v_x")  # fmt: skip
    activity["data"]["voucher"].update(id="v_x", holder_id=None)
    return activity


async def test_an_owner_a_file_names_and_its_assignment_deleted(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    file = ("voucher", "o.csv", "ID,Code,Customer ID,Updated At\n"
            "v_x,C,cust_owner,2024-01-01T00:00:00.000Z\n")  # fmt: skip
    await replays_as_live(client, conn, tmp_path, [
        holder("customer.holder.assignment.created", 1, "2024-02-01T00:00:00Z"),
        file,
        holder("customer.holder.assignment.deleted", 2, "2024-03-01T00:00:00Z"),
    ])  # fmt: skip


def rolled_back() -> dict[str, Any]:
    """r_1 rolled back; the event's copy of r_1 holds little more than its id and status."""
    activity = load_fixture("customer.redemption.rollback.succeeded")
    activity.update(id="evcus_rolled_back", created_at="2024-02-02T10:00:00Z")
    data = activity["data"]
    data["redemption"] = {"id": "r_1", "object": "redemption", "date": "2024-02-01T10:00:00Z",
                          "metadata": {}, "status": "ROLLED BACK"}  # fmt: skip
    data["redemption_rollback"].update(id="rr_1", redemption="r_1", amount=-2000)
    return activity


REDEMPTIONS = (
    "ID,Object,Date,Voucher Code,Customer ID,Customer Name,Customer Source ID,Tracking ID,"
    "Result,Gift Amount\n"
    "r_1,redemption,2024-02-01T10:00:00.000Z,CODE-1,cust_gdpr,Ann Person,ann@example.com,"
    "trk,SUCCESS,2000\n"
)


async def test_a_redemption_only_a_file_had_and_its_rollback(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    live = await replays_as_live(
        client, conn, tmp_path, [("redemption", "r.csv", REDEMPTIONS), rolled_back()]
    )
    assert any('"tracking_id": "trk"' in row for row in live["redemptions"])


async def test_a_customer_copy_and_the_older_file_that_fills_it(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """An order event's copy of the customer, and a customers file older than it with the
    address the copy lacks; also the same file loaded twice."""
    paid = load_fixture("customer.order.paid") | {"created_at": "2024-06-01T00:00:00Z"}
    paid["data"]["customer"].update(id="cust_copy")
    file = ("customer", "c.csv", "ID,Name,Address City,Updated At\n"
            "cust_copy,Old Name,Gdansk,2024-01-01T00:00:00.000Z\n")  # fmt: skip
    live = await replays_as_live(client, conn, tmp_path, [paid, file, file])
    assert any('"address_city": "Gdansk"' in row for row in live["customers"])


@pytest.fixture
async def redacting(database_url: str, conn: db.Connection) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(redact_deleted_customers=True), database_url)
    async with AsyncExitStack() as stack:
        yield await start_app(stack, app)


def deleted() -> dict[str, Any]:
    activity = load_fixture("customer.deleted") | {"id": "evcus_deleted"}
    activity["created_at"] = "2024-03-01T00:00:00Z"
    activity["data"]["customer"].update(id="cust_gdpr")
    return activity


CUSTOMERS = (
    "ID,Name,Email,Phone,Address City,metadata.tier,Updated At\n"
    "cust_gdpr,Ann Person,ann@example.com,+48 600,Gdansk,gold,2024-01-01T00:00:00.000Z\n"
    "cust_other,Bob Other,bob@example.com,,Krakow,,2024-01-01T00:00:00.000Z\n"
)


@pytest.mark.parametrize("deletion_first", [False, True])
async def test_a_deleted_customers_personal_data_leaves_the_kept_files(
    redacting: httpx.AsyncClient, conn: db.Connection, tmp_path: Path, deletion_first: bool
) -> None:
    """REDACT_DELETED_CUSTOMERS: the kept lines about the customer lose their personal
    cells, whether loaded before the deletion or after, the line of a redemption naming
    the redeemer but not their id included (an event gave the row its customer); the
    other cells and customers stay, and a replay brings nothing back."""
    # No Customer ID column: the row keeps the customer its event gave it.
    anonymous = (
        "ID,Date,Customer Name,Customer Source ID,Tracking ID\n"
        "r_anon,2024-02-01T10:00:00.000Z,Ann Person,ann@example.com,trk_anon\n"
    )
    redeemed = load_fixture("customer.redemption.succeeded")
    redeemed.update(id="evcus_redeemed", created_at="2024-02-01T00:00:00Z")
    redeemed["data"]["redemption"].update(id="r_anon", customer_id="cust_gdpr")
    redeemed["data"]["customer"].update(id="cust_gdpr")
    files: list[Step] = [("customer", "c.csv", CUSTOMERS), ("redemption", "r.csv", REDEMPTIONS),
                         ("redemption", "anon.csv", anonymous)]  # fmt: skip
    # Named by no event until after the deletion: a late one gives its row the customer.
    unlinked = anonymous.replace("r_anon", "r_late").replace("trk_anon", "trk_late")
    late = load_fixture("customer.redemption.succeeded")
    late.update(id="evcus_late", created_at="2024-01-15T00:00:00Z")
    late["data"]["redemption"].update(id="r_late", customer_id="cust_gdpr")
    late["data"]["customer"].update(id="cust_gdpr", name=None, source_id=None)
    files.append(("redemption", "late.csv", unlinked))
    if deletion_first:
        steps: list[Step] = [redeemed, deleted(), *files, late]
    else:
        steps = [redeemed, *files, deleted(), late]
    await run(redacting, conn, tmp_path, steps)

    live = str(await dump(conn))
    assert "Ann Person" not in live
    assert "Bob Other" in live
    kept = await conn.fetchval("SELECT string_agg(cells::text, ' ') FROM import_lines")
    for personal in ("Ann Person", "ann@example.com", "+48 600", "Gdansk", "gold"):
        assert personal not in kept
    for other in ("Bob Other", "bob@example.com", "Krakow", "trk_anon", "trk_late", "cust_gdpr"):
        assert other in kept
    for redact_deleted in (True, False):
        await replay(conn, redact_deleted=redact_deleted)
        tables = str(await dump(conn))
        assert "Ann Person" not in tables
        assert "ann@example.com" not in tables
        assert "Bob Other" in tables


async def test_a_kept_file_this_release_cannot_read_stops_the_replay_naming_it(
    client: httpx.AsyncClient, conn: db.Connection, database_url: str, tmp_path: Path
) -> None:
    """A kept file whose column this release no longer knows: the replay changes nothing
    and says which file, in one line, rather than lose the rows only the file made."""
    await run(client, conn, tmp_path, [("voucher", "v.csv", "ID,Code\nv_x,C\n")])
    await conn.execute("UPDATE imports SET headers = '{ID,Formerly Valid}'")
    before = await dump(conn)

    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    result = await asyncio.to_thread(run_cli, "replay", env=env)

    assert result.returncode == 1
    assert "error: nothing changed: the kept file v.csv (imports.id" in result.stderr
    assert "unknown column 'Formerly Valid'" in result.stderr
    assert "Traceback" not in result.stderr
    assert await dump(conn) == before


async def test_a_voucher_files_export_only_customer_source_id_is_not_kept(
    client: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """`Customer Source ID` of a voucher export is joined from the customer (export-only,
    skipped on import): a kept line has no use for it, so it keeps nobody's email."""
    file = ("voucher", "v.csv", "ID,Code,Customer ID,Customer Source ID\n"
            "v_x,C,cust_gdpr,ann@example.com\n")  # fmt: skip
    await run(client, conn, tmp_path, [file])
    assert await conn.fetchval("SELECT cells FROM import_lines") == ["v_x", "C", "cust_gdpr", ""]


async def test_a_replay_without_the_setting_keeps_a_redacted_customer_redacted(
    redacting: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """Replayed by a shell without REDACT_DELETED_CUSTOMERS, a redacted customer stays
    redacted: a customers file loaded afterwards still loads around them."""
    created = load_fixture("customer.created") | {"id": "evcus_created"}
    created["data"]["customer"].update(id="cust_gdpr", name="Ann Person")
    await run(redacting, conn, tmp_path, [created, deleted()])

    live = await dump(conn)

    await replay(conn, redact_deleted=False)
    assert await dump(conn) == live
    await run(redacting, conn, tmp_path, [("customer", "c.csv", CUSTOMERS)])

    row = await fetch_one(
        conn, "SELECT name, email, redacted_at FROM customers WHERE id = 'cust_gdpr'"
    )
    assert (row["name"], row["email"]) == (None, None)
    assert row["redacted_at"] is not None


async def test_a_file_giving_an_earlier_files_row_a_redacted_customer_clears_both(
    redacting: httpx.AsyncClient, conn: db.Connection, tmp_path: Path
) -> None:
    """The first file names the redeemer but not their id; a second names the deleted
    customer's id for the same redemption: the first file's line loses the names too, so
    a replay without the setting gives the live tables."""
    created = load_fixture("customer.created") | {"id": "evcus_created"}
    created["data"]["customer"].update(id="cust_gdpr")
    anonymous = ("redemption", "a.csv", "ID,Date,Customer Name,Customer Source ID,Tracking ID\n"
                 "r_x,2024-02-01T10:00:00.000Z,Ann Person,ann@example.com,trk\n")  # fmt: skip
    linking = ("redemption", "b.csv", "ID,Object,Voucher Code,Customer ID,Date,Result\n"
               "r_x,redemption,C,cust_gdpr,2024-03-01T10:00:00.000Z,SUCCESS\n")  # fmt: skip
    await run(redacting, conn, tmp_path, [created, deleted(), anonymous, linking])
    live = await dump(conn)
    assert "Ann Person" not in str(live)
    kept = await conn.fetchval("SELECT string_agg(cells::text, ' ') FROM import_lines")
    assert "Ann Person" not in kept
    assert "ann@example.com" not in kept

    await replay(conn, redact_deleted=False)

    assert await dump(conn) == live


async def test_a_customer_deleted_before_redaction_was_on_keeps_the_redactions_time(
    client: httpx.AsyncClient, redacting: httpx.AsyncClient, conn: db.Connection
) -> None:
    """Deleted once without the setting, then again with it: the customer is redacted
    from the second deletion, live and in a replay without the setting."""
    created = load_fixture("customer.created") | {"id": "evcus_created"}
    created["data"]["customer"].update(id="cust_gdpr")
    first = deleted() | {"id": "evcus_deleted_first", "created_at": "2024-02-01T00:00:00Z"}
    updated = load_fixture("customer.updated") | {"id": "evcus_updated"}
    updated["created_at"] = "2024-02-15T00:00:00Z"
    updated["data"]["customer"].update(id="cust_gdpr")
    await deliver_processed(client, created, first, updated)
    await deliver_processed(redacting, deleted())
    live = await dump(conn)
    assert '"redacted_at": "2024-03-01T00:00:00+00:00"' in str(live["customers"])

    await replay(conn, redact_deleted=False)

    assert await dump(conn) == live
