"""Builds the statements handlers add, once, at import.

Every current-state table follows one rule, so the rule is written once: a row is replaced
only by an event newer than the one it holds, ordered by (event time, event id) so ties
resolve the same way whatever the arrival order. History tables insert once per key.

Each statement reads its rows as a set (a JSON array, `_rows`), so `Writes` runs the rows
of many events as one statement, and all statements of a batch in one round trip
(`install` below compiles them all into one function). One statement cannot write a key
twice, so `Writes` sends each key's chosen row (`reduce`), and the rows it passed over
beside them: when a batch turns out to hold events that are stored already (retries),
`sql_skipping` leaves those events' rows out (every row names its `source_event`) and
only then chooses per key, so a retry can neither write nor hide a new event's row.
"""

from __future__ import annotations

import operator
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import msgspec

# The stored row is older than the incoming one.
NEWER = "(t.last_event_at, t.last_event_id) < (EXCLUDED.last_event_at, EXCLUDED.last_event_id)"


# The event each row came from, a field of every row after the statement's columns.
SOURCE_EVENT = "source_event"
# In `sql_skipping`: a row is kept unless the event it came from is one `_skip` names.
# (Rows without a source event, from a `Writes` built without one, are always kept.)
KEPT = f"coalesce(e.row ->> '{SOURCE_EVENT}' <> ALL (_skip), true)"

# LOCK_ORDER: a statement locks its rows (the upsert's conflicting row, the unique-index
# entry of a new one) as it writes them, and keeps the locks until the batch commits. Two
# writers' batches that hold the same keys in opposite arrival orders then deadlock, and
# Postgres ends one only after deadlock_timeout (1 s by default): seen under load, as
# 1 s of p99. So every statement writes its rows in key order, and every batch runs the
# statements in one order (`Writes`): locks on one table are taken in one order.
# And a table has one Statement (checked as they are built): a full object and a copy of
# it (customers, orders) go through the same one (`copy_when`), else two batches could
# still meet in opposite orders (one writing A in full and a copy of B, the other B in
# full and a copy of A) on the table's two statements.

# Every statement built here, in creation order: `install` compiles them into one
# function per connection, so a batch's writes travel in one round trip.
REGISTRY: list[Statement | Bulk] = []


@dataclass(frozen=True, eq=False)
class Statement:
    """An upsert or insert-once into one table; rows are positional, in `columns` order."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    conflict: str
    newest_wins: bool
    # With copies (`upsert(copy_when=...)`): the columns a copy carries. Rows are full
    # objects or copies (`is_stub`), and a full row of a key beats any copy of it.
    copy_columns: tuple[str, ...] | None = None
    # `upsert(kept_if_null=...)`: columns a row without a value leaves as they are. A
    # key's passed-over rows are always sent (`handlers._step`): `sql` applies them all.
    kept_if_null: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if any(isinstance(s, Statement) and s.table == self.table for s in REGISTRY):
            raise ValueError(f"a second statement on {self.table}: see LOCK_ORDER")
        REGISTRY.append(self)

    @cached_property
    def name(self) -> str:
        return f"{self.table}_{self.position}"

    @property
    def copies(self) -> bool:
        return self.copy_columns is not None

    def copy_row(self, *values: Any) -> tuple[Any, ...]:
        """A copy's values, in `copy_columns` order, as a row of every column (the others
        NULL, which a copy never writes over)."""
        positions = self._copy_positions
        if len(values) != len(positions):
            raise TypeError(f"{self.name}: a copy without one value per copied column")
        row: list[Any] = [None] * len(self.columns)
        for position, value in zip(positions, values, strict=True):
            row[position] = value
        return tuple(row)

    @cached_property
    def _copy_positions(self) -> list[int]:
        return [self.columns.index(c) for c in self.copy_columns or ()]

    @cached_property
    def position(self) -> int:
        """Where it was defined: statements run in this order (see `Writes`)."""
        return REGISTRY.index(self)

    @cached_property
    def sql(self) -> str:
        """The write for a set of rows given as a JSON array of objects (`_rows`), one per
        key (see `reduce`): the table's own row type reads each column from its key. Rows
        go in key order, as in `sql_skipping` (see LOCK_ORDER)."""
        columns = ", ".join(self.columns)
        one_per_key = (
            f"INSERT INTO {self.table} AS t ({columns})\n"
            f"SELECT {columns} FROM jsonb_populate_recordset(NULL::{self.table}, _rows)\n"
            f"ORDER BY {', '.join(self.key)}\n"
            f"{self.conflict}"
        )
        if not self.kept_if_null:
            return one_per_key
        # `kept_if_null`: with one row per key the conflict clause alone merges it with the
        # stored row; a batch repeating a key (its other rows in `_step -> 2`, sent for
        # these statements always) applies them in rounds (`_in_rounds`).
        return (
            "IF coalesce(jsonb_array_length(_step -> 2), 0) = 0 THEN\n"
            f"{textwrap.indent(one_per_key, '    ')};\nELSE\n"
            f"{textwrap.indent(self._in_rounds('_rows || (_step -> 2)', 'true'), '    ')};\n"
            "END IF"
        )

    @cached_property
    def sql_skipping(self) -> str:
        """`sql` for rows of several per key (the chosen ones first, then those passed
        over), some from events in `_skip`: those are left out, then each key is reduced
        as `reduce` does, in SQL (with `kept_if_null`, applied in rounds instead); written
        in key order (LOCK_ORDER)."""
        if self.kept_if_null:
            return self._in_rounds("_rows", KEPT)
        columns = ", ".join(self.columns)
        key = ", ".join(f"r.{c}" for c in self.key)
        newest = "r.last_event_at DESC, r.last_event_id DESC, " if self.newest_wins else ""
        if self.copies:
            newest = "r.is_stub, " + newest  # a full row first (false sorts first)
        return f"""
INSERT INTO {self.table} AS t ({columns})
SELECT {columns} FROM (
    SELECT DISTINCT ON ({key}) r.*
    FROM jsonb_array_elements(_rows) WITH ORDINALITY AS e (row, n),
         jsonb_populate_record(NULL::{self.table}, e.row) AS r
    WHERE {KEPT}
    ORDER BY {key}, {newest}e.n
) AS r
ORDER BY {key}
{self.conflict}"""  # noqa: S608 - names from this module's constants; rows arrive as json

    def _in_rounds(self, rows: str, where: str) -> str:
        """Several rows of a key (`kept_if_null`), applied one at a time per key, oldest
        first: round k writes each key's k-th row through the conflict clause, as
        deliveries one by one would. (A merge chosen in one statement had to read the
        stored row, and a concurrent writer's newer one, committed meanwhile, went
        unseen: a late balance passed as the newest.) The rows are ranked once, reading
        only their key and time; each round then inserts its part. Round 1 holds every
        key and locks them in key order (LOCK_ORDER); later rounds touch keys held already."""
        columns = ", ".join(self.columns)
        key = ", ".join(f"e.row ->> '{c}'" for c in self.key)
        return f"""FOR _part IN
    SELECT jsonb_agg(item ORDER BY k) FROM (
        SELECT e.row AS item, ({key}) AS k, row_number() OVER (
            PARTITION BY {key}
            ORDER BY (e.row ->> 'last_event_at')::timestamptz, e.row ->> 'last_event_id', e.n
        ) AS turn
        FROM jsonb_array_elements({rows}) WITH ORDINALITY AS e (row, n)
        WHERE {where}
    ) AS ranked
    GROUP BY turn ORDER BY turn
LOOP
    INSERT INTO {self.table} AS t ({columns})
    SELECT {columns} FROM jsonb_populate_recordset(NULL::{self.table}, _part)
    ORDER BY {", ".join(self.key)}
    {self.conflict};
END LOOP"""  # noqa: S608 - names from this module's constants; rows arrive as json

    def reduce(
        self, rows: list[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """(one row per key, as running them one by one would leave it, and the rows
        passed over, in arrival order): for newer-wins upserts the newest (time, event
        id), the first on ties (with `copies`, a full row before any copy: once a full
        row is written, or refused, no copy would change it); otherwise the first.
        (`sql_skipping` breaks ties by position, chosen rows first: passed-over rows out
        of arrival order could let a later tie win once the chosen row's event is
        skipped.) With `kept_if_null`, `sql` merges the chosen and passed-over rows of a
        key (both always sent: `handlers._step`)."""
        keys = self._key_positions
        chosen: dict[tuple[Any, ...], int] = {}
        if self.newest_wins:
            rank = self._rank
            for n, row in enumerate(rows):
                k = tuple(row[i] for i in keys)
                old = chosen.get(k)
                if old is None or rank(rows[old]) < rank(row):
                    chosen[k] = n
        else:
            for n, row in enumerate(rows):
                chosen.setdefault(tuple(row[i] for i in keys), n)
        if len(chosen) == len(rows):
            return rows, []
        kept = set(chosen.values())
        return [rows[n] for n in chosen.values()], [r for n, r in enumerate(rows) if n not in kept]

    @cached_property
    def _key_positions(self) -> list[int]:
        return [self.columns.index(c) for c in self.key]

    @cached_property
    def _rank(self) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
        """What `reduce` keeps the highest of: (time, event id), after whether the row is
        a full object where rows may be copies."""
        at, event_id = self.columns.index("last_event_at"), self.columns.index("last_event_id")
        if not self.copies:
            return operator.itemgetter(at, event_id)
        stub = self.columns.index("is_stub")
        return lambda row: (not row[stub], row[at], row[event_id])

    @cached_property
    def row_type(self) -> type[msgspec.Struct]:
        """A row as the JSON object `sql` reads (see `_row_type`)."""
        return _row_type(self.name, self.columns)


@dataclass(frozen=True, eq=False)
class Bulk:
    """Any other statement over a set of rows. `{rows}` in the template reads them as
    relation `r`, from a JSON array of objects whose keys are `columns` (name, SQL type);
    every row is kept, in order."""

    name: str
    columns: tuple[tuple[str, str], ...]
    template: str

    def __post_init__(self) -> None:
        REGISTRY.append(self)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @cached_property
    def position(self) -> int:
        """Where it was defined: statements run in this order (see `Writes`)."""
        return REGISTRY.index(self)

    @cached_property
    def row_type(self) -> type[msgspec.Struct]:
        """A row as the JSON object `sql` reads (see `_row_type`)."""
        return _row_type(self.name, self.names)

    @cached_property
    def sql(self) -> str:
        return self.template.replace("{rows}", f"jsonb_to_recordset(_rows) AS r ({self._record})")

    @cached_property
    def sql_skipping(self) -> str:
        """`sql` without the rows of events in `_skip`."""
        rows = f"""(
        SELECT r.* FROM jsonb_array_elements(_rows) AS e (row),
                        jsonb_to_record(e.row) AS r ({self._record})
        WHERE {KEPT}
    ) AS r"""  # noqa: S608 - names from this module's constants
        return self.template.replace("{rows}", rows)

    @cached_property
    def _record(self) -> str:
        return ", ".join(f"{name} {kind}" for name, kind in self.columns)


def _row_type(name: str, columns: Sequence[str]) -> type[msgspec.Struct]:
    """A Struct with one field per column, then the row's source event: a positional row
    becomes the JSON object the statement reads without building a dict per row (5x
    faster for a 33-column customer row, encoding included; a batch sends ~5 rows per
    event). NULLs are left out (Postgres reads a missing key as NULL): a copy of a
    customer sends its 8 columns, not 25 nulls besides."""
    fields = [(c, Any, None) for c in (*columns, SOURCE_EVENT)]
    return msgspec.defstruct(f"{name}_row", fields, omit_defaults=True)


def upsert(table: str, columns: Sequence[str], *, key: Sequence[str] = ("id",),
           when: str = NEWER, copy_when: str | None = None,
           copy_columns: Sequence[str] | None = None,
           kept_if_null: Sequence[str] = ()) -> Statement:  # fmt: skip
    """INSERT, or UPDATE every non-key column when `when` holds. With `copy_when`, rows
    are full objects or copies embedded in other events (`is_stub` true): a copy updates
    only `copy_columns` (all, by default), and only when `copy_when` holds. With
    `kept_if_null`, rows are copies that may leave those columns out (NULL): a newer row
    keeps the stored value there, and an older one fills it where the stored row has none."""
    if kept_if_null:
        if copy_when is not None or when != NEWER or not set(kept_if_null) <= set(columns):
            raise ValueError(f"{table}: kept_if_null names columns of a newer-wins upsert")
        # (Not exact when a value changes between events that arrive out of order
        # around one that lacks it: the first value to arrive can stay.)
        fills = " OR ".join(f"(t.{c} IS NULL AND EXCLUDED.{c} IS NOT NULL)" for c in kept_if_null)
        conflict = update_filling(columns, key=key, fill=kept_if_null, when=f"{NEWER} OR {fills}",
                                  kept_if_null=kept_if_null)  # fmt: skip
        kept = tuple(kept_if_null)
        return Statement(table, tuple(columns), tuple(key), conflict, True, kept_if_null=kept)
    if copy_when is None:
        if copy_columns is not None:
            raise ValueError("copy_columns without copy_when")
        conflict = update_when(columns, key=key, when=when)
        return Statement(table, tuple(columns), tuple(key), conflict, newest_wins=True)
    copied = tuple(columns if copy_columns is None else copy_columns)
    if not {*key, "is_stub", "last_event_at", "last_event_id"} <= set(copied) <= set(columns):
        raise ValueError(f"{table}: a copy carries its key, is_stub and last_event_*, all columns")
    kept_by_a_copy = "{c} = CASE WHEN EXCLUDED.is_stub THEN t.{c} ELSE EXCLUDED.{c} END"
    updates = ",\n    ".join(
        f"{c} = EXCLUDED.{c}" if c in copied else kept_by_a_copy.format(c=c)
        for c in columns
        if c not in key
    )
    conflict = (
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET\n    {updates}\n"
        f"WHERE CASE WHEN EXCLUDED.is_stub THEN {copy_when} ELSE {when} END"
    )
    return Statement(table, tuple(columns), tuple(key), conflict, True, copy_columns=copied)


def update_filling(
    columns: Sequence[str],
    *,
    fill: Sequence[str],
    when: str,
    key: Sequence[str] = ("id",),
    kept_if_null: Sequence[str] = (),
) -> str:
    """The ON CONFLICT clause of an upsert whose older rows still fill some gaps: a row
    newer than the stored one writes every column (but the stored `kept_if_null` values
    it lacks); an older one only fills the `fill` columns the stored row lacks. Both
    when `when` holds. (Vouchers' copies, `upsert(kept_if_null=...)`; an older export
    file over a webhook's copy, exports/importer.py.)"""
    newer = {c: f"coalesce(EXCLUDED.{c}, t.{c})" if c in kept_if_null else f"EXCLUDED.{c}"
             for c in columns}  # fmt: skip
    older = {c: f"coalesce(t.{c}, EXCLUDED.{c})" if c in fill else f"t.{c}" for c in columns}
    updates = ",\n    ".join(
        f"{c} = CASE WHEN {NEWER} THEN {newer[c]} ELSE {older[c]} END"
        for c in columns
        if c not in key
    )
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET\n    {updates}\nWHERE {when}"


def update_when(columns: Sequence[str], *, key: Sequence[str] = ("id",), when: str = NEWER) -> str:
    """The ON CONFLICT clause of an upsert: every non-key column from the new row, when
    `when` holds (by default: the new row is newer than the stored one)."""
    updates = ",\n    ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    return f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET\n    {updates}\nWHERE {when}"


def append(table: str, columns: Sequence[str], *, key: Sequence[str] = ("event_id",)) -> Statement:
    """INSERT once per key: history rows, one per event."""
    conflict = f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    return Statement(table, tuple(columns), tuple(key), conflict, newest_wins=False)
