"""Export semantics on real rows: defaults, fields, metadata, every operator, ordering."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from service import db
from service.exports.catalog import OBJECTS
from service.exports.jobs import stream_csv
from service.exports.query import InvalidExport, validate
from tests.exports.conftest import seed


async def export_csv(conn: db.Connection, obj: str, **parameters: Any) -> list[list[str]]:
    chunks: list[bytes] = []

    async def sink(data: bytes) -> None:
        chunks.append(data)

    await stream_csv(conn, validate(obj, parameters), sink)
    return list(csv.reader(io.StringIO(b"".join(chunks).decode())))


async def ids(conn: db.Connection, obj: str, filters: dict[str, Any]) -> list[str]:
    rows = await export_csv(conn, obj, fields=["id"], filters=filters)
    return sorted(r[0] for r in rows[1:])


# Seed 000's "Default fields returned", as headers. Two departures, where the seed
# contradicts its own field tables and exports.json: a publication's default `code` is
# the field `voucher_code`, and voucher_transactions has no `status` field to export.
VOUCHERIFY_DEFAULTS = {
    "order": ["ID", "Source ID", "Status"],
    "voucher": ["Code", "Voucher Type", "Value", "Discount Type"],
    "publication": ["Voucher Code", "Customer ID", "Date", "Channel"],
    "redemption": ["ID", "Object", "Voucher Code", "Customer ID", "Date", "Result"],
    "customer": ["Name", "Source ID"],
    "points_expiration": ["ID", "Campaign ID", "Voucher ID", "Status", "Expires At", "Points"],
    "voucher_transactions": ["ID", "Type", "Source ID", "Reason", "Source", "Balance",
                             "Amount", "Created At"],
}  # fmt: skip


@pytest.mark.parametrize("obj", sorted(OBJECTS))
async def test_default_fields_are_voucherifys_defaults(conn: db.Connection, obj: str) -> None:
    await seed(conn)
    rows = await export_csv(conn, obj)
    assert rows[0] == VOUCHERIFY_DEFAULTS[obj]


async def test_default_order_export_has_the_documented_columns_and_rows(
    conn: db.Connection,
) -> None:
    await seed(conn)
    rows = await export_csv(conn, "order")
    assert rows[0] == ["ID", "Source ID", "Status"]
    # Newest first (-created_at) by default.
    assert rows[1:] == [["ord_3", "S-3", "CANCELED"], ["ord_2", "S-2", "CREATED"],
                        ["ord_1", "S-1", "PAID"]]  # fmt: skip


async def test_fields_choose_the_columns_and_their_order(conn: db.Connection) -> None:
    await seed(conn)
    rows = await export_csv(conn, "customer", fields=["email", "id", "created_at",
                                                      "loyalty_points", "birthdate"],
                            order="id")  # fmt: skip
    assert rows[0] == ["Email", "ID", "Created At", "Loyalty Points", "Birthdate"]
    assert rows[1] == ["ann@example.com", "cust_a", "2024-01-01T10:00:00.000Z", "500", "1990-04-01"]
    assert rows[3] == ["", "cust_c", "2024-03-01T10:00:00.000Z", "", ""]


async def test_metadata_expands_to_one_column_per_key_present(conn: db.Connection) -> None:
    await seed(conn)
    rows = await export_csv(conn, "customer", fields=["id", "metadata"], order="id")
    assert rows[0] == ["ID", "metadata.city", "metadata.tier", "metadata.vip", "metadata.visits"]
    assert rows[1:] == [["cust_a", "", "gold", "true", "12"],
                        ["cust_b", "Oslo", "silver", "false", ""],
                        ["cust_c", "", "", "", ""]]  # fmt: skip


async def test_metadata_key_picks_one_property(conn: db.Connection) -> None:
    await seed(conn)
    rows = await export_csv(conn, "order", fields=["id", "metadata.store"], order="created_at")
    assert rows == [["ID", "metadata.store"], ["ord_1", "north"], ["ord_2", "south"], ["ord_3", ""]]


async def test_voucher_values_render_as_voucherify_writes_them(conn: db.Connection) -> None:
    await seed(conn)
    fields = ["code", "active", "validity_day_of_week", "customer_source_id"]
    rows = await export_csv(conn, "voucher", fields=fields, order="code")
    assert rows[1:] == [["GIFT50", "false", "", "bob@example.com"],
                        ["SUMMER10", "true", "1,2,3", "ann@example.com"]]  # fmt: skip


@pytest.mark.parametrize(
    ("order", "expected"),
    [("created_at", ["ord_1", "ord_2", "ord_3"]), ("-created_at", ["ord_3", "ord_2", "ord_1"]),
     ("status", ["ord_3", "ord_2", "ord_1"]), ("-status", ["ord_1", "ord_2", "ord_3"])],
)  # fmt: skip
async def test_order_sorts_ascending_or_descending(
    conn: db.Connection, order: str, expected: list[str]
) -> None:
    await seed(conn)
    rows = await export_csv(conn, "order", fields=["id"], order=order)
    assert [r[0] for r in rows[1:]] == expected


def cond(**conditions: Any) -> dict[str, Any]:
    return {"conditions": {f"${op}": values for op, values in conditions.items()}}


@pytest.mark.parametrize(
    ("obj", "filters", "expected"),
    [
        # text
        ("order", {"status": cond(**{"in": ["PAID", "CREATED"]})}, ["ord_1", "ord_2"]),
        ("order", {"status": cond(not_in=["PAID"])}, ["ord_2", "ord_3"]),
        ("order", {"status": cond(**{"is": ["PAID"]})}, ["ord_1"]),
        ("order", {"status": cond(is_not=["PAID"])}, ["ord_2", "ord_3"]),
        ("customer", {"email": cond(has_value=[])}, ["cust_a", "cust_b"]),
        ("customer", {"email": cond(is_unknown=[])}, ["cust_c"]),
        ("customer", {"email": cond(contains=["shop"])}, ["cust_b"]),
        ("customer", {"email": cond(not_contain=["shop"])}, ["cust_a", "cust_c"]),
        ("customer", {"email": cond(starts_with=["ann"])}, ["cust_a"]),
        ("customer", {"email": cond(ends_with=[".test"])}, ["cust_b"]),
        # number
        ("order", {"amount": cond(more_than=[1000])}, ["ord_2"]),
        ("order", {"amount": cond(less_than=[1000])}, ["ord_3"]),
        ("order", {"amount": cond(more_than_equal=[1000])}, ["ord_1", "ord_2"]),
        ("order", {"amount": cond(less_than_equal=[1000])}, ["ord_1", "ord_3"]),
        ("order", {"total_amount": cond(**{"is": [900]})}, ["ord_1"]),
        # time
        ("order", {"created_at": cond(after=["2024-01-02T12:00:00Z"])}, ["ord_2", "ord_3"]),
        ("order", {"created_at": cond(before=["2024-01-02T12:00:00Z"])}, ["ord_1"]),
        ("order", {"created_at": cond(after=["2024-01-02T12:00:00Z"],
                                      before=["2024-01-03T12:00:00Z"])}, ["ord_2"]),
        ("customer", {"created_at": cond(**{"is": ["2024-02-01"]})}, ["cust_b"]),
        ("customer", {"created_at": cond(after=["2024-02-01"])}, ["cust_c"]),
        ("customer", {"created_at": cond(before=["2024-02-01"])}, ["cust_a"]),
        ("customer", {"updated_at": cond(is_unknown=[])}, ["cust_c"]),
        ("customer", {"created_at": cond(more_than_ago=[30])}, ["cust_a", "cust_b", "cust_c"]),
        ("customer", {"created_at": cond(less_than_ago=[30])}, []),
        ("customer", {"created_at": cond(is_days_ago=[1])}, []),
        ("customer", {"created_at": cond(more_than_future=[1])}, []),
        ("customer", {"created_at": cond(less_than_future=[1])}, []),
        ("customer", {"created_at": cond(is_days_in_future=[1])}, []),
        ("customer", {"birthday": cond(is_unknown=[])}, ["cust_a", "cust_b", "cust_c"]),
        # bool
        ("voucher", {"active": cond(**{"is": ["true"]})}, ["v_1"]),
        ("voucher", {"active": cond(is_not=[True])}, ["v_2"]),
        # array
        ("voucher", {"validity_day_of_week": cond(**{"in": [2, 5]})}, ["v_1"]),
        ("voucher", {"validity_day_of_week": cond(not_in=[2])}, ["v_2"]),
        ("voucher", {"validity_day_of_week": cond(count=[3])}, ["v_1"]),
        ("voucher", {"validity_day_of_week": cond(count_less=[1])}, ["v_2"]),
        ("voucher", {"validity_day_of_week": cond(count_more=[2])}, ["v_1"]),
        # metadata
        ("customer", {"metadata.tier": cond(**{"is": ["gold"]})}, ["cust_a"]),
        ("customer", {"metadata.visits": cond(more_than=[10])}, ["cust_a"]),
        ("customer", {"metadata.city": cond(has_value=[])}, ["cust_b"]),
        ("customer", {"metadata.vip": cond(**{"is": [True]})}, ["cust_a"]),
        ("customer", {"metadata.vip": cond(**{"in": [False]})}, ["cust_b"]),
        # junction
        ("order", {"junction": "or", "status": cond(**{"is": ["PAID"]}),
                   "amount": cond(more_than=[2000])}, ["ord_1", "ord_2"]),
        ("order", {"junction": "and", "customer_id": cond(**{"is": ["cust_a"]}),
                   "amount": cond(more_than=[100])}, ["ord_1"]),
    ],
)  # fmt: skip
async def test_each_filter_operator_selects_the_right_rows(
    conn: db.Connection, obj: str, filters: dict[str, Any], expected: list[str]
) -> None:
    await seed(conn)
    assert await ids(conn, obj, filters) == expected


@pytest.mark.parametrize(
    ("obj", "parameters", "key", "named"),
    [
        ("nope", {}, "invalid_payload", "exported_object"),
        ("order", {"fields": ["id", "colour"]}, "invalid_export_fields", "colour"),
        ("order", {"order": "-colour"}, "invalid_payload", "-colour"),
        ("order", {"filters": {"colour": cond(**{"is": ["x"]})}}, "invalid_payload", "colour"),
        ("order", {"filters": {"status": cond(after=["x"])}}, "invalid_payload", "$after"),
        ("order", {"filters": {"amount": cond(more_than=["lots"])}}, "invalid_payload", "lots"),
        ("order", {"filters": {"created_at": cond(after=["soon"])}}, "invalid_payload", "soon"),
        ("order", {"filters": {"junction": "xor"}}, "invalid_payload", "junction"),
        ("order", {"filters": {"customer_id": cond(**{"is": [None]})}}, "invalid_payload",
         "$is_unknown"),
        ("order", {"filters": {"status": {"no": "conditions"}}}, "invalid_payload", "status"),
        ("points_expiration", {"fields": ["metadata"]}, "invalid_export_fields", "metadata"),
    ],
)  # fmt: skip
def test_invalid_parameters_name_the_problem(
    obj: str, parameters: dict[str, Any], key: str, named: str
) -> None:
    with pytest.raises(InvalidExport) as raised:
        validate(obj, parameters)
    assert raised.value.key == key
    assert named in raised.value.details


async def test_filter_values_cannot_inject_sql(conn: db.Connection) -> None:
    """Values and metadata keys travel as parameters: hostile text matches nothing."""
    await seed(conn)
    hostile = "x' OR '1'='1'; DROP TABLE customers; --"
    for filters in (
        {"email": cond(**{"is": [hostile]})},
        {"email": cond(contains=[hostile])},
        {f"metadata.{hostile}": cond(**{"is": ["gold"]})},
    ):
        assert await ids(conn, "customer", filters) == []
    # A day count that is not a number is refused before any SQL is built.
    with pytest.raises(InvalidExport):
        await ids(conn, "customer", {"created_at": cond(is_days_ago=["1); DROP TABLE x; --"])})
    assert await conn.fetchval("SELECT count(*) FROM customers") == 3


@pytest.mark.parametrize(
    ("operator", "days", "expected"),
    [
        ("more_than_ago", 30, ["cust_c"]),
        ("less_than_ago", 30, ["cust_a"]),
        ("is_days_ago", 10, ["cust_a"]),
        ("is_days_ago", 9, []),
        ("more_than_future", 5, ["cust_b"]),
        ("more_than_future", 30, []),
        ("less_than_future", 30, ["cust_b"]),
        ("is_days_in_future", 10, ["cust_b"]),
        ("is_days_in_future", 11, []),
    ],
)
async def test_relative_day_operators_select_rows_around_now(
    conn: db.Connection, operator: str, days: int, expected: list[str]
) -> None:
    """cust_a was created 10 days ago, cust_b will be in 10 days, cust_c long ago: each
    relative operator must pick its one (they were only ever tested to match nothing)."""
    await seed(conn)
    await conn.execute("UPDATE customers SET created_at = now() - interval '10 days' "
                       "WHERE id = 'cust_a'")  # fmt: skip
    await conn.execute("UPDATE customers SET created_at = now() + interval '10 days' "
                       "WHERE id = 'cust_b'")  # fmt: skip
    assert await ids(conn, "customer", {"created_at": cond(**{operator: [days]})}) == expected


@pytest.mark.parametrize("exported_object", [{}, [], 7, None])
def test_an_exported_object_of_the_wrong_type_is_a_400_not_a_crash(exported_object: Any) -> None:
    """Found by schemathesis: a JSON object here used to raise TypeError (500)."""
    with pytest.raises(InvalidExport) as raised:
        validate(exported_object, {})
    assert raised.value.key == "invalid_payload"


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12"])  # UTC+14, UTC-12
async def test_days_ago_counts_utc_days_whatever_the_sessions_time_zone(
    conn: db.Connection, zone: str
) -> None:
    """A row created now is 0 days ago: the days compared are UTC days, and so is today
    (it was the session's date: at any hour one of these zones is on another day)."""
    await seed(conn)
    await conn.execute("UPDATE customers SET created_at = now() WHERE id = 'cust_b'")
    await conn.execute(f"SET TimeZone = '{zone}'")
    assert await ids(conn, "customer", {"created_at": cond(is_days_ago=[0])}) == ["cust_b"]
