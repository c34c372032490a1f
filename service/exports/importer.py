"""Load a Voucherify export CSV into the analyst tables (`python -m service import`).

Lets a team load history from before the webhook was connected. Each row is written with
the same newer-wins rule as webhook events: its own time (updated_at, created_at, date,
expires_at; else the beginning of time) and `last_event_id = 'import:<file>:<line>'`, so an
import never overwrites newer webhook data and shows where a row came from. The whole file
loads in one transaction: a malformed row stops it with an error naming its line, and an
import undone by a deadlock with live webhook batches is loaded again (`load`). The file
is kept as read (`imports`, `import_lines`), so a full replay applies it again, where it
came among the events (`apply_again`).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from service.db import Connection, again_if_undone
from service.events.times import parse_date, parse_time
from service.exports.catalog import OBJECTS, Column, ExportObject, Kind
from service.exports.query import field_name
from service.handlers._entities import (
    PERSONAL_FIELDS,
    REDACT_NEW_LINES,
    REDACT_STORED_COPIES,
    UPSERT_CUSTOMER,
    UPSERT_ORDER,
)
from service.handlers._sql import NEWER, update_filling, update_when

BATCH = 1000
# csv's default, 128 KiB, refused values our own exports write (a long metadata value).
# Far above any value a webhook brings (bodies are MAX_BODY_BYTES, 1 MiB by default); a
# quote left open still stops with its line rather than read the whole file into a cell.
FIELD_LIMIT = 64 << 20
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)

# What every imported row's `last_event_id` starts with (then `<file>:<line>`).
IMPORTED = "import:"
# Where each object's rows go, and the columns that time a row (first present wins).
TABLES = {
    "order": "orders",
    "voucher": "vouchers",
    "publication": "publications",
    "redemption": "redemptions",
    "customer": "customers",
    "points_expiration": "points_expirations",
    "voucher_transactions": "voucher_transactions",
}
TIME_FIELDS = ("updated_at", "created_at", "date", "expires_at")
# Tables whose rows say whether they are embedded copies; an import is a full object.
STUB_TABLES = {"customers", "orders"}
# What a copy embedded in another event leaves empty: an older file may fill those in a
# row that is still a copy (a customer's address, phone, totals; an order copy carries
# every column). `replay` fills them again, applying the file again where it came.
FILLABLE = {
    s.table: tuple(c for c in s.columns if c not in (s.copy_columns or s.columns))
    for s in (UPSERT_CUSTOMER, UPSERT_ORDER)
}


class ImportError_(Exception):  # noqa: N801, N818 - ImportError is a builtin
    """A row that cannot be loaded; the message names the line and the column."""


@dataclass(frozen=True)
class Plan:
    """How the CSV's columns map onto the table."""

    obj: ExportObject
    table: str
    columns: list[tuple[int, str, Column]]  # (CSV index, table column, catalog column)
    metadata: list[tuple[int, str]]  # (CSV index, metadata key)
    skipped: list[str]  # headers that are export-only (computed, joined)


def plan(exported_object: str, headers: list[str]) -> Plan:
    if exported_object not in OBJECTS:
        raise ImportError_(f"unknown object {exported_object!r}; one of {', '.join(OBJECTS)}")
    obj = OBJECTS[exported_object]
    columns: list[tuple[int, str, Column]] = []
    metadata: list[tuple[int, str]] = []
    skipped: list[str] = []
    for index, text in enumerate(headers):
        name = field_name(text)
        if name.startswith("metadata.") and obj.metadata is not None:
            metadata.append((index, name[9:]))
        elif name in obj.fields:
            column = obj.fields[name]
            if column.sql.startswith("x.") and name != "metadata":
                columns.append((index, column.sql[2:], column))
            else:
                skipped.append(text)
        else:
            raise ImportError_(f"line 1: unknown column {text!r} for {exported_object}")
    names = {c for _, c, _ in columns}
    if "id" not in names and exported_object != "publication":
        raise ImportError_(f"line 1: a {exported_object} import needs the ID column")
    return Plan(obj, TABLES[exported_object], columns, metadata, skipped)


def _convert(kind: Kind, text: str) -> Any:
    if text == "":
        return None
    if kind is Kind.NUMBER:
        return Decimal(text) if "." in text else int(text)
    if kind is Kind.TIME:
        value = parse_time(text)
        if value is None:
            raise ValueError(f"{text!r} is not an ISO 8601 time")
        return value
    if kind is Kind.DATE:
        day = parse_date(text)
        if day is None:
            raise ValueError(f"{text!r} is not a date")
        return day
    if kind is Kind.BOOL:
        if text not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text == "true"
    if kind is Kind.JSON:
        return msgspec.json.decode(text)
    if kind is Kind.ARRAY:
        return [int(part) for part in text.split(",")]
    return text


def _statement(p: Plan, extra: list[str], types: dict[str, str]) -> str:
    """The upsert of one row; `types`: the table's column types (see below)."""
    names = [c for _, c, _ in p.columns] + extra
    params = ", ".join(f"${n}" for n in range(1, len(names) + 1))
    # Newer wins, also over a copy (a stub): an older file replaced a newer copy, marked
    # it full, and later copies could no longer update it. An older file still fills what
    # a copy left empty (a customer's address, totals, ...), leaving the copy's own
    # values, its time and its being a copy as they are: later copies go on updating it.
    fillable = FILLABLE.get(p.table, ())
    guard = f"({NEWER} OR t.is_stub)" if fillable else NEWER
    if p.table == "customers":  # a redacted customer stays empty, as for webhooks
        guard = f"{guard} AND t.redacted_at IS NULL"
    rows = f"VALUES ({params})"
    if p.table == "publications" and set(PUBLICATION_IDENTITY) <= set(names):
        # Publication files carry no id (`_publication_id` makes one): a publication a
        # webhook stored already, under its real pub_ id, is left to it, not doubled.
        # Equalities, or both NULL (not IS NOT DISTINCT FROM, which no index serves): the
        # customer_id index finds the twin, one lookup per file row, not a table scan.
        same = " AND ".join(
            f"(p.{c} = ${n} OR (${n} IS NULL AND p.{c} IS NULL))"
            for c, n in ((c, names.index(c) + 1) for c in PUBLICATION_IDENTITY)
        )
        # (Typed: outside VALUES, Postgres would read the parameters as text.)
        typed = ", ".join(f"${n}::{types[c]}" for n, c in enumerate(names, start=1))
        rows = (
            f"SELECT {typed} WHERE NOT EXISTS (SELECT FROM publications p WHERE {same} "  # noqa: S608 - our names and types
            f"AND p.last_event_id NOT LIKE '{IMPORTED}%')"
        )
    insert = f"INSERT INTO {p.table} AS t ({', '.join(names)}) {rows}\n"
    if not fillable:
        return insert + update_when(names, when=guard)
    return insert + update_filling(names, fill=fillable, when=guard)


def _numbered(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """The file's records with their line numbers (the headers are line 1); a record csv
    cannot read (a cell over FIELD_LIMIT) is an ImportError_ naming its line."""
    for line in itertools.count(1):
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportError_(f"line {line}: {exc}") from None
        yield line, row


def _rows(p: Plan, lines: Iterable[tuple[int, list[str]]], source: str) -> Iterator[list[Any]]:
    """Each CSV row as statement parameters: its columns, then the extra ones."""
    names = [c for _, c, _ in p.columns]
    for line, row in lines:
        values: list[Any] = []
        for index, column, spec in p.columns:
            try:
                values.append(_convert(spec.kind, row[index]))
            except (ValueError, InvalidOperation, IndexError, msgspec.DecodeError) as exc:
                raise ImportError_(f"line {line}: {column}: {exc}") from None
        named = dict(zip(names, values, strict=True))
        extra: list[Any] = []
        if p.metadata:
            meta = {key: row[i] for i, key in p.metadata if i < len(row) and row[i] != ""}
            extra.append(meta or None)
        if "id" not in named:
            extra.append(_publication_id(named))
        if p.table in STUB_TABLES:
            extra.append(False)
        extra += [_row_time(named), f"{IMPORTED}{source}:{line}"]
        yield values + extra


def _row_time(named: dict[str, Any]) -> datetime:
    """The row's own time, so newer webhook data always wins over an export file."""
    for column in TIME_FIELDS:
        value = named.get(column)
        if isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return BEGINNING


COLUMN_TYPES = """
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped
"""

# What identifies a publication in an export file, which carries no id.
PUBLICATION_IDENTITY = ("voucher_code", "customer_id", "date")


def _publication_id(named: dict[str, Any]) -> str:
    """Publication exports carry no id: derive a stable one from what identifies them."""
    basis = "|".join(str(named.get(k)) for k in PUBLICATION_IDENTITY)
    return "pub_import_" + hashlib.sha256(basis.encode()).hexdigest()[:24]


async def load(
    conn: Connection,
    exported_object: str,
    path: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, list[str]]:
    """Load the CSV at `path`; returns (rows loaded, export-only headers skipped).

    The file loads in one transaction. Webhook batches write beside it and lock rows in
    key order; the import locks them in the file's order, so the two can wait on each
    other in a cycle, and Postgres then undoes one of them (`db.TRANSIENT`). When that is
    the import, it is loaded again from the start (`progress` is wound back by what the
    undone attempt had counted), up to TRANSIENT_ATTEMPTS in all."""
    return await again_if_undone(
        conn,
        lambda counting: _load_once(conn, exported_object, path, counting),
        progress=progress,
        warning="import undone by a concurrent transaction; loading it again",
        file=path.name,
    )


async def _load_once(
    conn: Connection, exported_object: str, path: Path, progress: Callable[[int], None]
) -> tuple[int, list[str]]:
    csv.field_size_limit(FIELD_LIMIT)  # the process's: nothing else here reads CSV
    # utf-8-sig: a file saved with a byte order mark (Excel) reads as one without.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        lines = _numbered(csv.reader(handle))
        first = next(lines, None)
        if first is None:
            raise ImportError_("line 1: the file is empty")
        p = plan(exported_object, first[1])
        async with conn.transaction():
            import_id: int = await conn.fetchval(
                INSERT_IMPORT, exported_object, path.name, first[1], _personal_cells(p, first[1])
            )
            count = await _write(
                conn, p, path.name, _batches(lines), progress=progress, import_id=import_id
            )
            await conn.execute(FINISH_IMPORT, import_id)
    return count, p.skipped


# Every file is kept as read (`imports`, `import_lines`), so a full replay applies it
# again among the events, where it came (`replay.py`). A redacted customer's lines keep
# no personal data: the cells the tables' redaction clears are emptied (`_redact_imported`
# and REDACT_NEW_LINES in handlers/_entities.py).
INSERT_IMPORT = """
INSERT INTO imports (object, file, headers, personal_cells) VALUES ($1, $2, $3, $4)
RETURNING id
"""
FINISH_IMPORT = "UPDATE imports SET imported_at = clock_timestamp() WHERE id = $1"
LINE_COLUMNS = ("import_id", "line", "cells", "row_id", "customer_id")


def _kept_cells(p: Plan) -> Callable[[list[str]], list[str]]:
    """A line's cells as kept: those of export-only columns (skipped, `Plan.skipped`)
    empty, since applying the file again never reads them."""
    used = {index for index, _, _ in p.columns} | {index for index, _ in p.metadata}
    return lambda cells: [cell if n in used else "" for n, cell in enumerate(cells)]


def _personal_cells(p: Plan, headers: list[str]) -> list[int]:
    """Positions (from 1) of the cells of the table's personal fields (PERSONAL_FIELDS;
    where metadata is one, every metadata.<key> column). A voucher file's customer source
    id is export-only: its cells are not kept at all (`_kept_cells`)."""
    personal = PERSONAL_FIELDS.get(p.table, ())
    return [
        n
        for n, text in enumerate(headers, start=1)
        if (name := field_name(text)) in personal
        or ("metadata" in personal and name.startswith("metadata."))
    ]


Lines = list[tuple[int, list[str]]]  # (line number, cells)


async def _batches(lines: Iterator[tuple[int, list[str]]]) -> AsyncIterator[Lines]:
    while batch := list(itertools.islice(lines, BATCH)):
        yield batch


async def _write(
    conn: Connection,
    p: Plan,
    source: str,
    batches: AsyncIterator[Lines],
    *,
    progress: Callable[[int], None],
    import_id: int | None,
) -> int:
    """Write a file's lines, batch by batch, in the caller's transaction; with
    `import_id`, keep them too. Replay calls this again with the kept lines."""
    extra = (
        (["metadata"] if p.metadata else [])
        + (["id"] if "id" not in [c for _, c, _ in p.columns] else [])
        + (["is_stub"] if p.table in STUB_TABLES else [])
        + ["last_event_at", "last_event_id"]
    )
    names = [c for _, c, _ in p.columns] + extra
    types = {r["attname"]: r["format_type"] for r in await conn.fetch(COLUMN_TYPES, p.table)}
    statement = _statement(p, extra, types)
    kept = _kept_cells(p)
    customer = (
        names.index("id" if p.table == "customers" else "customer_id")
        if (p.table == "customers" or "customer_id" in names)
        else None
    )
    count = 0
    async for batch in batches:
        rows = list(_rows(p, batch, source))
        await conn.executemany(statement, rows)
        if import_id is not None:
            key = names.index("id")
            records = [
                (
                    import_id,
                    line,
                    kept(cells),
                    row[key],
                    None if customer is None else row[customer],
                )
                for (line, cells), row in zip(batch, rows, strict=True)
            ]
            await conn.copy_records_to_table("import_lines", records=records, columns=LINE_COLUMNS)
        count += len(rows)
        progress(len(rows))
    if import_id is not None:
        # A redacted customer's names stay gone (REDACT_DELETED_CUSTOMERS), whatever a
        # file says: a customer row keeps its redaction on its own (`_statement`), the
        # names a redemption or publication copies are cleared here, and the file keeps
        # none. (Applied again, a kept file holds none already.)
        for redaction in REDACT_STORED_COPIES:
            await conn.execute(redaction, None)
        for redaction in REDACT_NEW_LINES:
            await conn.execute(redaction, import_id)
    return count


async def apply_again(
    conn: Connection, import_id: int, exported_object: str, file: str, headers: list[str]
) -> int:
    """Apply a kept file again (full replay), as when it was loaded; returns its rows."""
    p = plan(exported_object, headers)

    async def batches() -> AsyncIterator[Lines]:
        after = 0
        while rows := await conn.fetch(KEPT_LINES, import_id, after, BATCH):
            after = rows[-1]["line"]
            yield [(r["line"], list(r["cells"])) for r in rows]

    return await _write(conn, p, file, batches(), progress=lambda _: None, import_id=None)


KEPT_LINES = """
SELECT line, cells FROM import_lines WHERE import_id = $1 AND line > $2 ORDER BY line LIMIT $3
"""
