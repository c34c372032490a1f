"""Builds the statements handlers add, once, at import.

Every current-state table follows one rule, so the rule is written once: a row is replaced
only by an event newer than the one it holds, ordered by (event time, event id) so ties
resolve the same way whatever the arrival order. History tables insert once per key.

Each statement also knows its table, columns and key, so `Writes` can run the rows of many
events as one set-based statement (`INSERT ... SELECT * FROM unnest($1::type[], ...)`)
instead of one execution per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

# The stored row is older than the incoming one.
NEWER = "(t.last_event_at, t.last_event_id) < (EXCLUDED.last_event_at, EXCLUDED.last_event_id)"


@dataclass(frozen=True)
class Statement:
    """SQL for one row (`sql`), plus what it takes to write many rows in one statement."""

    table: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    conflict: str
    newest_wins: bool

    # Built on first use, then kept: these run for every batch.
    @cached_property
    def sql(self) -> str:
        params = ", ".join(f"${n}" for n, _ in enumerate(self.columns, 1))
        return (
            f"INSERT INTO {self.table} AS t ({', '.join(self.columns)})\n"
            f"VALUES ({params})\n{self.conflict}"
        )

    def set_based(self, types: Mapping[tuple[str, str], str]) -> str | None:
        """The same write for many rows at once, given the columns' SQL types; None when a
        column is an array (unnest would flatten it) or unknown."""
        casts = [types.get((self.table, c)) for c in self.columns]
        if any(t is None or t.endswith("]") for t in casts):
            return None
        arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(casts, 1))
        return (
            f"INSERT INTO {self.table} AS t ({', '.join(self.columns)})\n"
            f"SELECT * FROM unnest({arrays})\n{self.conflict}"
        )

    def reduce(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """One row per key, as running them one by one would leave it: for newer-wins
        upserts the newest (time, event id), the first on ties; otherwise the first."""
        keys = self._key_positions
        chosen: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        if self.newest_wins:
            at, event_id = self._version_positions
            for row in rows:
                k = tuple(row[i] for i in keys)
                old = chosen.get(k)
                if old is None or (old[at], old[event_id]) < (row[at], row[event_id]):
                    chosen[k] = row
        else:
            for row in rows:
                chosen.setdefault(tuple(row[i] for i in keys), row)
        return list(chosen.values())

    @cached_property
    def _key_positions(self) -> list[int]:
        return [self.columns.index(c) for c in self.key]

    @cached_property
    def _version_positions(self) -> tuple[int, int]:
        return self.columns.index("last_event_at"), self.columns.index("last_event_id")


@dataclass(frozen=True)
class Bulk:
    """A statement written once for many rows: `sql` takes one array per column ($1 the
    first column of every row, ...), so `Writes` runs it once per batch."""

    sql: str


def upsert(table: str, columns: Sequence[str], *, key: Sequence[str] = ("id",),
           when: str = NEWER) -> Statement:  # fmt: skip
    """INSERT, or UPDATE every non-key column when `when` holds."""
    updates = ",\n    ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET\n    {updates}\nWHERE {when}"
    return Statement(table, tuple(columns), tuple(key), conflict, newest_wins=True)


def append(table: str, columns: Sequence[str], *, key: Sequence[str] = ("event_id",)) -> Statement:
    """INSERT once per key: history rows, one per event."""
    conflict = f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    return Statement(table, tuple(columns), tuple(key), conflict, newest_wins=False)
