"""Handlers, one module per event family; `service.routing` says which handles what.

A handler does no I/O: it reads one decoded event and adds the statements its rows need
to a `Writes`. The writer (live deliveries, in batches) and replay (page by page) execute
the collected statements together, each statement once for all its rows, in the
transaction that stores the raw events. Raising `NormalizeError` (or any error) drops that
event's statements: the raw event is stored quarantined with the error, for `replay`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from service.handlers._sql import REGISTRY, Bulk, Statement

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
    """Statements to run, grouped by statement, rows in arrival order.

    They run in the order they are defined (`_sql.REGISTRY`), then the plain SQL strings
    in first-use order, whichever event of a batch brought which: so an order row, full
    or a copy, is written before its items are rewritten (they follow the event the order
    row holds). In first-use order, a batch whose first order event carried a copy ran
    the items before the full order's upsert, and left the order's items from another
    event than its row. Every statement is safe to run for several events' rows in
    sequence (newer-wins upserts, insert-once appends).
    """

    # The event these rows come from: each row names it (`source_event`), so a batch
    # that turns out to hold a retry of a stored event can leave that event's rows out.
    event_id: str | None = None
    rows: dict[str | Statement | Bulk, list[tuple[Any, ...]]] = field(default_factory=dict)
    # The customer the event is about when `data.customer` does not name one and the
    # handler found it elsewhere (a publication's customer, a tier's holder): the raw
    # event's `events.customer_id`, which analysts and customer redaction look it up by.
    customer_id: str | None = None

    def add(self, statement: str | Statement | Bulk, *args: Any) -> None:
        row = args if isinstance(statement, str) else (*args, self.event_id)
        self.rows.setdefault(statement, []).append(row)

    def extend(self, other: Writes) -> None:
        for statement, rows in other.rows.items():
            self.rows.setdefault(statement, []).extend(rows)

    @classmethod
    def combine(cls, many: Iterable[Writes]) -> Writes:
        """Several events' writes as one batch's, in order."""
        combined = cls()
        for writes in many:
            combined.extend(writes)
        return combined

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    @property
    def plain_sql(self) -> bool:
        """Whether some rows go to a plain SQL string (run by `apply`, not `steps`)."""
        return any(isinstance(statement, str) for statement in self.rows)

    def steps(self, *, passed_over: bool = True) -> list[Step]:
        """Every statement's rows as `pg_temp.apply_writes` takes them (no plain SQL);
        without the rows passed over when no event can turn out to be skipped (replay:
        its pages repeat keys often, and those rows would only be sent and parsed)."""
        if self.plain_sql:
            raise TypeError("plain SQL statements run through apply()")
        return [
            _step(statement, self.rows[statement], passed_over=passed_over)
            for statement in self._defined_order()
        ]

    async def apply(self, conn: Connection) -> None:
        """Run every statement once over all its rows (reduced to one per key where one
        statement could not write a key twice), in the order they are defined, all in one
        round trip through `pg_temp.apply_writes`; then the plain SQL strings, pipelined
        by asyncpg's executemany, in first-use order."""
        steps = [
            _step(statement, self.rows[statement], passed_over=False)
            for statement in self._defined_order()
        ]
        if steps:
            await conn.execute(APPLY_WRITES, steps)
        for statement, rows in self.rows.items():
            if isinstance(statement, str):
                await conn.executemany(statement, rows)

    def _defined_order(self) -> list[Statement | Bulk]:
        statements = [s for s in self.rows if not isinstance(s, str)]
        return sorted(statements, key=lambda s: s.position)


Step = tuple[str, list[Any], list[Any]]


def _step(statement: Statement | Bulk, rows: list[tuple[Any, ...]], *, passed_over: bool) -> Step:
    """One statement's rows as JSON objects keyed by column (its `row_type`): reduced to
    one per key where one statement could not write a key twice, then the rows passed
    over (what `sql_skipping` chooses from when some events are left out), if asked."""
    row = statement.row_type
    # Every field has a default (NULL, left out of the JSON), so a short row would be
    # padded silently: refused instead.
    width = len(row.__struct_fields__)
    if any(len(r) != width for r in rows):
        raise TypeError(f"{statement.name}: a row without one value per column")
    others: list[tuple[Any, ...]] = []
    if isinstance(statement, Statement):
        rows, others = statement.reduce(rows)
    # A statement that merges a key's rows (`kept_if_null`) needs them all, also in replay.
    if not passed_over and not (isinstance(statement, Statement) and statement.kept_if_null):
        others = []
    return statement.name, [row(*r) for r in rows], [row(*r) for r in others]


APPLY_WRITES = "SELECT pg_temp.apply_writes($1::jsonb)"
# The same inside a savepoint: NULL, or the error that undid all of this call's writes.
TRY_APPLY_WRITES = "SELECT pg_temp.try_apply_writes($1::jsonb)"


async def install(conn: Connection, *statements: str) -> None:
    """Create this session's `pg_temp.apply_writes(jsonb)` (and `try_apply_writes`, the
    same in a savepoint, returning the error): every statement handlers use,
    compiled into one PL/pgSQL function (its plans cached for the session). Built from the
    statements themselves, so it never drifts from them. `statements` (functions that
    call it, like the writer's, and session settings) run in the same round trip."""
    # Bodies are compiled at their first call instead of being validated here too
    # (halves what a connection costs; every test makes several).
    await conn.execute(
        "SET check_function_bodies = off;"
        + _apply_writes_function()
        + "".join(statements)
        + "RESET check_function_bodies;"
    )


@cache
def _apply_writes_function() -> str:
    from service import routing  # noqa: F401, PLC0415 - imports every handler: all statements

    def function(signature: str, rows: str, sql: Callable[[Statement | Bulk], str]) -> str:
        branches = "\n".join(
            f"            WHEN '{s.name}' THEN\n{textwrap.indent(sql(s).strip(), ' ' * 16)};"
            for s in REGISTRY
        )
        return (
            _APPLY_TEMPLATE.replace("{signature}", signature)
            .replace("{rows}", rows)
            .replace("{branches}", branches)
        )

    # Only our own statements' SQL goes in; every value arrives in the jsonb argument.
    return (
        function("apply_writes(_steps jsonb)", "_step -> 1", lambda s: s.sql)
        + function(
            "apply_writes_skipping(_steps jsonb, _skip text[])",
            "(_step -> 1) || coalesce(_step -> 2, '[]')",
            lambda s: s.sql_skipping,
        )
        + _TRY_APPLY_WRITES
    )


# Plans inside are made once per session, often while the tables are still small, and
# estimate every `jsonb_to_recordset` at 100 rows: joins to `orders` were planned as hash
# joins over a sequential scan and stayed so while the table grew (measured: the
# order-items statements were 58% of this function at 30,000 events). A batch touches a
# few keys of large tables: index lookups are always the right plan here.
# `apply_writes_skipping` is the same for a batch holding events stored already (`_skip`):
# it reads each statement's chosen and passed-over rows, and chooses again without those
# events' rows (slower: a sort per statement; only batches holding a retry take it).
_APPLY_TEMPLATE = """
CREATE OR REPLACE FUNCTION pg_temp.{signature} RETURNS void
LANGUAGE plpgsql SET "TimeZone" = 'UTC' SET enable_seqscan = off SET enable_hashjoin = off
SET enable_mergejoin = off AS $apply$
DECLARE
    _step jsonb;
    _rows jsonb;
    _part jsonb;  -- one round of a statement applied in rounds (`_sql._in_rounds`)
BEGIN
    FOR _step IN SELECT value FROM jsonb_array_elements(_steps) LOOP
        _rows := {rows};
        CASE _step ->> 0
{branches}
        END CASE;
    END LOOP;
END
$apply$;
"""
_TRY_APPLY_WRITES = """
CREATE OR REPLACE FUNCTION pg_temp.try_apply_writes(_steps jsonb) RETURNS text
LANGUAGE plpgsql AS $try$
BEGIN
    PERFORM pg_temp.apply_writes(_steps);
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$try$;
"""


def require(value: T | None, path: str) -> T:
    """The value a normalized row is keyed on, or a NormalizeError naming what is missing."""
    if value is None or value == "":
        raise NormalizeError(f"{path} is missing")
    return value


def handler_failure(family: str, exc: BaseException) -> str:
    """The `events.error` of an event its handler could not normalize."""
    return f"{family} handler: {type(exc).__name__}: {exc}"
