"""From export parameters (fields, filters, order) to one parameterized SELECT.

Everything a caller sends is checked against the catalog first: unknown fields, filter
keys, operators or values are refused with a Voucherify-style error naming the problem.
Identifiers come only from the catalog; every filter value reaches Postgres as a `$n`
parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.db import Connection
from service.events.times import parse_date, parse_time
from service.exports.catalog import OBJECTS, Column, ExportObject, Kind

JUNCTIONS = ("and", "or")


class InvalidExport(Exception):  # noqa: N818 - named like the error key it answers with
    """Parameters the export cannot honour; `key` and `details` go to the 400 answer."""

    def __init__(self, key: str, message: str, details: str) -> None:
        super().__init__(details)
        self.key = key
        self.message = message
        self.details = details


def invalid_payload(details: str) -> InvalidExport:
    return InvalidExport("invalid_payload", "Invalid payload", details)


def invalid_fields(details: str) -> InvalidExport:
    return InvalidExport("invalid_export_fields", "Invalid Export", details)


@dataclass
class Params:
    """Bind parameters, numbered in the order they are added."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any, cast: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{cast}"


@dataclass(frozen=True)
class Export:
    """A validated export request."""

    obj: ExportObject
    fields: tuple[str, ...]
    filters: dict[str, Any]
    order: str
    campaign_id: str | None = None


def validate(exported_object: Any, parameters: Any) -> Export:
    """Check a request body's `exported_object` and `parameters` against the catalog."""
    if not isinstance(exported_object, str) or exported_object not in OBJECTS:
        allowed = ", ".join(OBJECTS)
        raise invalid_payload(
            f"Property .exported_object should be equal to one of the allowed values [ {allowed} ]"
        )
    obj = OBJECTS[exported_object]
    parameters = parameters or {}
    if not isinstance(parameters, dict):
        raise invalid_payload("Property .parameters should be an object")
    unknown = set(parameters) - {"fields", "filters", "order", "campaign_id", "response_format"}
    if unknown:
        raise invalid_payload(f"Unknown parameters: {', '.join(sorted(unknown))}")

    fields = parameters.get("fields") or list(obj.defaults)
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise invalid_payload("Property .parameters.fields should be an array of strings")
    for name in fields:
        if name not in obj.fields and not _is_metadata_key(obj, name):
            allowed = ", ".join(obj.fields)
            raise invalid_fields(f"Unsupported field used: {name}. Allowed fields: {allowed}")

    # Without an order, newest first where the object has a creation time.
    order = parameters.get("order") or (
        "-created_at" if "created_at" in obj.orders else next(iter(obj.orders))
    )
    if not isinstance(order, str) or order.lstrip("-") not in obj.orders:
        allowed = ", ".join(f"{d}{o}" for o in obj.orders for d in ("-", ""))
        raise invalid_payload(f"Unsupported order: {order}. Allowed: {allowed}")

    filters = parameters.get("filters") or {}
    if not isinstance(filters, dict):
        raise invalid_payload("Property .parameters.filters should be an object")
    # Build once to validate every key, operator and value now rather than in the job.
    where(obj, filters, Params())

    campaign_id = parameters.get("campaign_id")
    if campaign_id is not None and (obj.name != "voucher" or not isinstance(campaign_id, str)):
        raise invalid_payload("Property .parameters.campaign_id applies to voucher exports only")
    return Export(obj, tuple(fields), filters, order, campaign_id)


def _is_metadata_key(obj: ExportObject, name: str) -> bool:
    return obj.metadata is not None and name.startswith("metadata.") and len(name) > 9


# -- filters ------------------------------------------------------------------------------


def where(obj: ExportObject, filters: dict[str, Any], params: Params) -> str:
    """The WHERE clause for `filters` ({junction, <key>: {conditions: {<op>: [values]}}})."""
    junction = filters.get("junction", "and")
    if junction not in JUNCTIONS:
        raise invalid_payload(
            f"Property .filters.junction should be one of: {', '.join(JUNCTIONS)}"
        )
    clauses = []
    for key, spec in filters.items():
        if key == "junction":
            continue
        column = _filter_column(obj, key, params)
        conditions = spec.get("conditions") if isinstance(spec, dict) else None
        if not isinstance(conditions, dict) or not conditions:
            raise invalid_payload(
                f'Filter {key} should be {{"conditions": {{operator: [values]}}}}'
            )
        for operator, raw in conditions.items():
            values = raw if isinstance(raw, list) else [raw]
            clauses.append(_condition(key, column, operator, values, params))
    if not clauses:
        return "true"
    return "(" + f" {junction.upper()} ".join(clauses) + ")"


def _filter_column(obj: ExportObject, key: str, params: Params) -> Column:
    if key in obj.filters:
        return obj.filters[key]
    if _is_metadata_key(obj, key):
        # The key is a parameter too: metadata keys come from the caller.
        return Column(f"({obj.metadata} ->> {params.add(key[9:], 'text')})", Kind.JSON)
    allowed = ", ".join([*obj.filters, *(["metadata.<key>"] if obj.metadata else [])])
    raise invalid_payload(f"Unsupported filter: {key}. Allowed filters: {allowed}")


TEXT_OPS = {"$in", "$not_in", "$is", "$is_not", "$has_value", "$is_unknown", "$contains",
            "$not_contain", "$starts_with", "$ends_with"}  # fmt: skip
NUMBER_OPS = {"$in", "$not_in", "$is", "$is_not", "$has_value", "$is_unknown", "$more_than",
              "$less_than", "$more_than_equal", "$less_than_equal"}  # fmt: skip
TIME_OPS = {"$in", "$not_in", "$is", "$is_not", "$has_value", "$is_unknown", "$after", "$before",
            "$more_than_ago", "$less_than_ago", "$is_days_ago", "$more_than_future",
            "$less_than_future", "$is_days_in_future"}  # fmt: skip
BOOL_OPS = {"$is", "$is_not", "$has_value", "$is_unknown"}
ARRAY_OPS = {"$in", "$not_in", "$is", "$has_value", "$is_unknown", "$count", "$count_less",
             "$count_more"}  # fmt: skip
OPERATORS = {
    Kind.TEXT: TEXT_OPS,
    Kind.NUMBER: NUMBER_OPS,
    Kind.TIME: TIME_OPS,
    Kind.DATE: TIME_OPS,
    Kind.BOOL: BOOL_OPS,
    Kind.ARRAY: ARRAY_OPS,
    # metadata.<key>: text operators, plus number comparisons on numeric values.
    Kind.JSON: TEXT_OPS | NUMBER_OPS,
}

_COMPARE = {"$more_than": ">", "$less_than": "<", "$more_than_equal": ">=",
            "$less_than_equal": "<=", "$after": ">", "$before": "<"}  # fmt: skip


def _condition(key: str, col: Column, op: str, values: list[Any], params: Params) -> str:
    if op not in OPERATORS[col.kind]:
        allowed = ", ".join(sorted(OPERATORS[col.kind]))
        raise invalid_payload(f"Operator {op} does not apply to filter {key}. Allowed: {allowed}")
    sql = col.sql
    if op == "$has_value":
        return f"({sql} IS NOT NULL)"
    if op == "$is_unknown":
        return f"({sql} IS NULL)"
    if not values:
        raise invalid_payload(f"Filter {key} {op} needs at least one value")
    if col.kind is Kind.ARRAY:
        return _array_condition(key, sql, op, values, params)
    if op in ("$is_days_ago", "$is_days_in_future", "$more_than_ago", "$less_than_ago",
              "$more_than_future", "$less_than_future"):  # fmt: skip
        days = params.add(_number(key, op, values[0]), "integer")
        day = _utc_day(sql) if col.kind is Kind.TIME else sql
        today = "(now() AT TIME ZONE 'UTC')::date"  # UTC, as the days compared (not the session's)
        return {
            "$is_days_ago": f"({day} = {today} - {days})",
            "$is_days_in_future": f"({day} = {today} + {days})",
            "$more_than_ago": f"({sql} < now() - make_interval(days => {days}))",
            "$less_than_ago": f"({sql} BETWEEN now() - make_interval(days => {days}) AND now())",
            "$more_than_future": f"({sql} > now() + make_interval(days => {days}))",
            "$less_than_future": f"({sql} BETWEEN now() AND now() + make_interval(days => {days}))",
        }[op]  # fmt: skip

    kind = col.kind
    cast, target = _typed(col, sql)
    if (
        kind is Kind.TIME
        and op in ("$in", "$is", "$not_in", "$is_not", "$after", "$before")
        and all(isinstance(v, str) and len(v) == 10 for v in values)
    ):
        # Bare dates stand for the whole UTC day: $is matches it, $after starts after it,
        # $before ends before it (with midnight, $after a day included that day).
        kind, cast, target = Kind.DATE, "date", _utc_day(sql)
    converted = [_value(key, op, kind, v) for v in values]
    if op in _COMPARE:
        if col.kind is Kind.JSON:
            cast, target = "numeric", _json_number(sql)
        return f"({target} {_COMPARE[op]} {params.add(converted[0], cast)})"
    if op in ("$in", "$is"):
        return f"({target} = ANY({params.add(converted, cast + '[]')}))"
    if op in ("$not_in", "$is_not"):
        return f"({target} IS NULL OR {target} <> ALL({params.add(converted, cast + '[]')}))"
    needle = params.add(str(converted[0]), "text")
    return {
        "$contains": f"(strpos({sql}, {needle}) > 0)",
        "$not_contain": f"({sql} IS NULL OR strpos({sql}, {needle}) = 0)",
        "$starts_with": f"starts_with({sql}, {needle})",
        "$ends_with": f"(right({sql}, length({needle})) = {needle})",
    }[op]


def _typed(col: Column, sql: str) -> tuple[str, str]:
    """(cast for parameters, expression compared): times compare by UTC day for $is/$in."""
    return {
        Kind.TEXT: ("text", sql),
        Kind.JSON: ("text", sql),
        Kind.NUMBER: ("numeric", sql),
        Kind.TIME: ("timestamptz", sql),
        Kind.DATE: ("date", sql),
        Kind.BOOL: ("boolean", sql),
        Kind.ARRAY: ("integer[]", sql),
    }[col.kind]


def _json_number(sql: str) -> str:
    # Only numeric metadata values compare as numbers; anything else never matches.
    return f"(CASE WHEN {sql} ~ '^-?[0-9]+(\\.[0-9]+)?$' THEN ({sql})::numeric END)"


def _utc_day(sql: str) -> str:
    """The UTC date of a timestamptz expression."""
    return f"({sql} AT TIME ZONE 'UTC')::date"


def _value(key: str, op: str, kind: Kind, value: Any) -> Any:
    if kind is Kind.NUMBER or (kind is Kind.JSON and op in _COMPARE):
        return _number(key, op, value)
    if kind is Kind.TIME:
        parsed = parse_time(str(value)) if isinstance(value, str) else None
        if parsed is None:
            raise invalid_payload(f"Filter {key} {op} expects ISO 8601 times, got {value!r}")
        return parsed
    if kind is Kind.DATE:
        day = parse_date(str(value)) if isinstance(value, str) else None
        if day is None:
            raise invalid_payload(f"Filter {key} {op} expects dates, got {value!r}")
        return day
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise invalid_payload(f"Filter {key} {op} expects true or false, got {value!r}")
    if isinstance(value, dict | list):
        raise invalid_payload(f"Filter {key} {op} expects plain values, got {value!r}")
    if value is None:  # str() would look for the text 'None'
        raise invalid_payload(f"Filter {key} {op}: null is no value; use $is_unknown or $has_value")
    if isinstance(value, bool):  # as JSON writes it, which metadata ->> reads back
        return "true" if value else "false"
    return str(value)


def _number(key: str, op: str, value: Any) -> Any:
    if isinstance(value, bool):
        raise invalid_payload(f"Filter {key} {op} expects numbers, got {value!r}")
    if isinstance(value, int | float):
        return value
    try:
        return float(value) if "." in str(value) else int(value)
    except (TypeError, ValueError):
        raise invalid_payload(f"Filter {key} {op} expects numbers, got {value!r}") from None


def _array_condition(key: str, sql: str, op: str, values: list[Any], params: Params) -> str:
    if op in ("$count", "$count_less", "$count_more"):
        n = params.add(_number(key, op, values[0]), "integer")
        compare = {"$count": "=", "$count_less": "<", "$count_more": ">"}[op]
        return f"(coalesce(cardinality({sql}), 0) {compare} {n})"
    items = params.add([_number(key, op, v) for v in values], "integer[]")
    return {
        "$in": f"({sql} && {items})",
        "$not_in": f"({sql} IS NULL OR NOT ({sql} && {items}))",
        "$is": f"({sql} = {items})",
    }[op]


# -- the SELECT -----------------------------------------------------------------------------


def header(name: str) -> str:
    """CSV header of a field, as Voucherify writes it: `voucher_type` -> `Voucher Type`.

    `metadata.<key>` keeps the key as it is, so it reads back unambiguously.
    """
    if name.startswith("metadata."):
        return name
    return " ".join("ID" if w == "id" else w.capitalize() for w in name.split("_"))


def field_name(header_text: str) -> str:
    """The field a CSV header names: the inverse of `header`, also accepting raw names."""
    if header_text.startswith("metadata."):
        return header_text
    return header_text.strip().lower().replace(" ", "_")


def _render(col: Column) -> str:
    """The column as CSV text: times in UTC with milliseconds, arrays comma-joined."""
    sql = col.sql
    return {
        Kind.TIME: f"to_char({sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
        Kind.DATE: f"to_char({sql}, 'YYYY-MM-DD')",
        Kind.ARRAY: f"array_to_string({sql}, ',')",
    }.get(col.kind, f"({sql})::text")


async def metadata_keys(
    conn: Connection, export: Export, *, query_seconds: float | None = None
) -> list[str]:
    """The metadata keys present in the rows the export selects, sorted."""
    obj = export.obj
    params = Params()
    condition = _where_all(export, params)
    query = (
        f"SELECT DISTINCT jsonb_object_keys({obj.metadata}) AS key "  # noqa: S608 - catalog SQL
        f"FROM {obj.source} WHERE {condition} AND jsonb_typeof({obj.metadata}) = 'object' "
        "ORDER BY 1"
    )
    return [r["key"] for r in await conn.fetch(query, *params.values, timeout=query_seconds)]


def _where_all(export: Export, params: Params) -> str:
    obj = export.obj
    parts = [obj.where, where(obj, export.filters, params)]
    if export.campaign_id:
        parts.append(f"x.campaign_id = {params.add(export.campaign_id, 'text')}")
    return " AND ".join(parts)


async def select(
    conn: Connection, export: Export, *, query_seconds: float | None = None
) -> tuple[str, list[Any], list[str]]:
    """(SELECT, its parameters, CSV headers) for the export; `metadata` is expanded into
    one `metadata.<key>` column per key present in the selected rows (a query of its own,
    given `query_seconds`)."""
    obj = export.obj
    columns: list[str] = []
    headers: list[str] = []
    params = Params()
    for name in export.fields:
        if name == "metadata" and obj.metadata is not None:
            for key in await metadata_keys(conn, export, query_seconds=query_seconds):
                columns.append(f"({obj.metadata} ->> {params.add(key, 'text')})")
                headers.append(f"metadata.{key}")
        elif name.startswith("metadata.") and name not in obj.fields:
            columns.append(f"({obj.metadata} ->> {params.add(name[9:], 'text')})")
            headers.append(name)
        else:
            columns.append(_render(obj.fields[name]))
            headers.append(header(name))
    condition = _where_all(export, params)
    order = export.order
    direction = "DESC" if order.startswith("-") else "ASC"
    order_sql = f"{obj.orders[order.lstrip('-')]} {direction} NULLS LAST, x.id {direction}"
    select_list = ", ".join(columns) if columns else "NULL"
    query = f"SELECT {select_list} FROM {obj.source} WHERE {condition} ORDER BY {order_sql}"  # noqa: S608
    return query, params.values, headers
