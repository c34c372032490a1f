"""Handlers, one module per event family; `service.routing` says which handles what.

A handler does no I/O: it reads one decoded event and adds the statements its rows need
to a `Writes`. The writer (live deliveries, in batches) and replay (page by page) execute
the collected statements together, each statement once for all its rows, in the
transaction that stores the raw events. Raising `NormalizeError` (or any error) drops that
event's statements: the raw event is stored quarantined with the error, for `replay`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from service.handlers._sql import Bulk, Statement

if TYPE_CHECKING:
    from service.db import Connection

T = TypeVar("T")


class NormalizeError(Exception):
    """The event decoded, but lacks what its normalized rows need."""


@dataclass(frozen=True, slots=True)
class Meta:
    """What a handler knows about the event besides its data."""

    event_id: str
    # When the activity happened: the event's created_at, else when it was received.
    # Current-state rows keep it and ignore anything older.
    at: datetime
    type: str
    # REDACT_DELETED_CUSTOMERS: customer.deleted also removes the customer's personal data.
    redact_deleted: bool = False


@dataclass
class Writes:
    """Statements to run, grouped by statement in first-use order, rows in arrival order.

    Grouping keeps dependencies right: an order is upserted before its items are
    rewritten, for every event of a batch. Every statement is safe to run for several
    events' rows in sequence (newer-wins upserts, insert-once appends).
    """

    rows: dict[str | Statement | Bulk, list[tuple[Any, ...]]] = field(default_factory=dict)

    def add(self, statement: str | Statement | Bulk, *args: Any) -> None:
        self.rows.setdefault(statement, []).append(args)

    def extend(self, other: Writes) -> None:
        for statement, rows in other.rows.items():
            self.rows.setdefault(statement, []).extend(rows)

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    async def apply(self, conn: Connection) -> None:
        """Run every statement once over all its rows: as one `unnest` statement where
        the statement allows it (rows reduced to one per key first), else pipelined by
        asyncpg's executemany."""
        types = _COLUMN_TYPES or await _load_column_types(conn)
        for statement, rows in self.rows.items():
            if isinstance(statement, str):
                await conn.executemany(statement, rows)
                continue
            if isinstance(statement, Bulk):
                await conn.execute(statement.sql, *(list(c) for c in zip(*rows, strict=True)))
                continue
            if statement not in _SET_BASED:
                _SET_BASED[statement] = statement.set_based(types)
            set_based = _SET_BASED[statement] if len(rows) > 1 else None
            if set_based is None:
                await conn.executemany(statement.sql, rows)
                continue
            reduced = statement.reduce(rows)
            await conn.execute(set_based, *(list(column) for column in zip(*reduced, strict=True)))


# (table, column) -> SQL type, read once per process from the migrated schema, and the
# set-based form of each statement built from them (None: executemany).
_COLUMN_TYPES: dict[tuple[str, str], str] = {}
_SET_BASED: dict[Statement, str | None] = {}

COLUMN_TYPES = """
SELECT c.relname AS table, a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
"""


async def _load_column_types(conn: Connection) -> dict[tuple[str, str], str]:
    for row in await conn.fetch(COLUMN_TYPES):
        _COLUMN_TYPES[(row["table"], row["column"])] = row["type"]
    return _COLUMN_TYPES


def require(value: T | None, path: str) -> T:
    """The value a normalized row is keyed on, or a NormalizeError naming what is missing."""
    if value is None or value == "":
        raise NormalizeError(f"{path} is missing")
    return value


def handler_failure(family: str, exc: BaseException) -> str:
    """The `events.error` of an event its handler could not normalize."""
    return f"{family} handler: {type(exc).__name__}: {exc}"
