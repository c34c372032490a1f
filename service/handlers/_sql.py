"""Builds the upsert statements handlers run, once, at import.

Every current-state table follows one rule, so the rule is written once: a row is replaced
only by an event newer than the one it holds, ordered by (event time, event id) so ties
resolve the same way whatever the arrival order. History tables insert once per key.
"""

from __future__ import annotations

from collections.abc import Sequence

# The stored row is older than the incoming one.
NEWER = "(t.last_event_at, t.last_event_id) < (EXCLUDED.last_event_at, EXCLUDED.last_event_id)"


def upsert(table: str, columns: Sequence[str], *, key: Sequence[str] = ("id",),
           when: str = NEWER) -> str:  # fmt: skip
    """INSERT, or UPDATE every non-key column when `when` holds; RETURNING true if written."""
    names = ", ".join(columns)
    params = ", ".join(f"${n}" for n, _ in enumerate(columns, 1))
    updates = ",\n    ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} AS t ({names})\n"
        f"VALUES ({params})\n"
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET\n    {updates}\n"
        f"WHERE {when}\n"
        "RETURNING true"
    )


def append(table: str, columns: Sequence[str], *, key: Sequence[str] = ("event_id",)) -> str:
    """INSERT once per key: history rows, one per event."""
    names = ", ".join(columns)
    params = ", ".join(f"${n}" for n, _ in enumerate(columns, 1))
    return (
        f"INSERT INTO {table} ({names})\nVALUES ({params})\n"
        f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
    )
