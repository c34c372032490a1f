"""Rows travel to Postgres as JSON objects keyed by column, plus the event each came from:
what `jsonb_populate_record` and `jsonb_to_record` read. A key that is not a column would
be read as NULL silently."""

from __future__ import annotations

import msgspec
import pytest

from service import routing  # noqa: F401 - imports every handler: all statements registered
from service.handlers import Writes
from service.handlers._sql import REGISTRY, SOURCE_EVENT, Bulk, Statement, upsert


def _columns(statement: Statement | Bulk) -> tuple[str, ...]:
    return statement.columns if isinstance(statement, Statement) else statement.names


@pytest.mark.parametrize("statement", REGISTRY, ids=lambda s: s.name)
def test_every_statements_rows_are_objects_keyed_by_its_columns(
    statement: Statement | Bulk,
) -> None:
    columns = _columns(statement)
    writes = Writes(event_id="evcus_1")
    writes.add(statement, *(f"value {n}" for n in range(len(columns))))
    [(name, rows, passed_over)] = msgspec.json.decode(msgspec.json.encode(writes.steps()))
    assert name == statement.name
    assert rows == [{c: f"value {n}" for n, c in enumerate(columns)} | {SOURCE_EVENT: "evcus_1"}]
    assert passed_over == []
    assert SOURCE_EVENT not in columns


def test_a_row_with_the_wrong_number_of_values_is_refused_not_padded() -> None:
    statement = next(s for s in REGISTRY if isinstance(s, Statement))
    writes = Writes()
    writes.add(statement, *range(len(statement.columns) - 1))
    with pytest.raises(TypeError):
        writes.steps()


def test_a_second_statement_on_one_table_is_refused() -> None:
    """Two statements on one table could lock its rows in two orders (LOCK_ORDER): a full
    object and its copies go through one statement (`upsert(copy_when=...)`)."""
    before = list(REGISTRY)
    try:
        with pytest.raises(ValueError, match="LOCK_ORDER"):
            upsert("customers", ("id", "name", "last_event_at", "last_event_id"))
    finally:
        REGISTRY[:] = before


def test_a_copy_is_a_row_of_every_column_with_only_its_own_values() -> None:
    customers = next(s for s in REGISTRY if isinstance(s, Statement) and s.table == "customers")
    assert customers.copy_columns is not None
    values = [f"value {n}" for n in range(len(customers.copy_columns))]
    row = dict(zip(customers.columns, customers.copy_row(*values), strict=True))
    assert {c: v for c, v in row.items() if v is not None} == dict(
        zip(customers.copy_columns, values, strict=True)
    )
    with pytest.raises(TypeError):
        customers.copy_row(*values[:-1])
    with pytest.raises(ValueError, match="copy carries"):
        upsert("nowhere", ("id", "name", "last_event_at", "last_event_id"), copy_when="true")
