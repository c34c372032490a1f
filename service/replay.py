"""Rebuild the normalized tables from the stored raw events (`python -m service replay`).

Full replay empties every normalized table and re-derives it in one transaction from
`events`, a page at a time with the same batch writes as live ingestion
(`pg_temp.apply_writes`), and from the export files `import` loaded: each is kept
(`import_lines`) and applied again, with the statements of its load, after the events
received before it, so the result equals what live ingestion and the imports produced.
(What replay kept of files loaded before migration 0012, which were not kept, is put
back first, from `imported_before_0012`, for the events to apply over, as before.) The
tables are locked meanwhile (TRUNCATE): analysts' queries and live batches wait for the
replay, then see the new tables, never a mix. Quarantined events are retried; those that
now normalize become `processed`, those that still fail keep (or get) their error.
`--quarantined` retries only those, without touching anything else. A full replay
refuses (`EventsDropped`) once `retention` has dropped months: it would lose the rows
only their events had made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import msgspec
import structlog

from service.db import NOT_THE_EVENTS_FAULT, UNAVAILABLE, Connection, again_if_undone
from service.events import DECODER, decode_failure
from service.exports.importer import TABLES as IMPORTED_TABLES
from service.exports.importer import ImportError_, apply_again
from service.handlers import TRY_APPLY_WRITES, Meta, Writes, handler_failure
from service.handlers._entities import REDACT_AFTER_STORE, REDACT_IMPORTED
from service.intake import ESCAPED_NOTE
from service.routing import UNKNOWN, family_of, normalize

log = structlog.get_logger("service.replay")

PAGE = 1000

SELECT_PAGE = """
SELECT id, type, family, status, error, payload::text AS body,
       COALESCE(created_at, received_at) AS at, received_at
FROM events
WHERE (received_at, id) > ($1, $2)
  AND ($3 OR status = 'quarantined' OR family = 'unknown')
  AND ($5::timestamptz IS NULL OR received_at < $5)
ORDER BY received_at, id
LIMIT $4
"""
# Kept export files, in the order they were loaded: a full replay applies each after the
# events received before it (`importer.apply_again`).
KEPT_IMPORTS = "SELECT id, object, file, headers, imported_at FROM imports ORDER BY imported_at, id"

COUNT = "SELECT count(*) FROM events WHERE $1 OR status = 'quarantined' OR family = 'unknown'"

# Events whose ids were stored but whose rows are gone: months `retention` dropped.
DROPPED_EVENTS = """
SELECT count(*) FROM event_ids i
WHERE NOT EXISTS (SELECT FROM events e WHERE e.id = i.id AND e.received_at = i.received_at)
"""


class EventsDropped(Exception):  # noqa: N818 - reads as "raise EventsDropped"
    """A full replay would lose the rows that events no longer stored had made."""

    def __init__(self, dropped: int) -> None:
        super().__init__(
            f"{dropped} stored events are gone (months dropped by `retention`): a full "
            "replay empties the tables and would lose every row only they had made. Restore "
            "the archived months into `events` first (docs/operations.md); `replay "
            "--quarantined` works without them"
        )
        self.dropped = dropped


class KeptFileUnreadable(Exception):  # noqa: N818 - reads as "raise KeptFileUnreadable"
    """A kept export file this release cannot read again (a column or value it refuses):
    a full replay would lose the rows only the file had made."""

    def __init__(self, file: str, import_id: int, error: ImportError_) -> None:
        super().__init__(
            f"the kept file {file} (imports.id {import_id}) cannot be applied again: "
            f"{error}. Delete it from `imports` (the rows only it made then go with the "
            "replay) or load a corrected file, and replay again"
        )


# Every table the handlers write; the test suite checks it lists every table but `events`.
NORMALIZED_TABLES = (
    "customers", "orders", "order_items", "redemptions", "vouchers", "publications",
    "voucher_transactions", "points_expirations", "loyalty_tier_changes", "distributions",
    "segment_memberships", "validations", "reward_redemptions", "customer_rewards",
    "voucher_holders", "custom_events", "referrals", "loyalty_pending_points",
)  # fmt: skip

# What full replay kept of files imported before files were kept (migration 0012): put
# back first, for the events and kept files to apply over (newer wins), as it was then.
# Orders before their items (an order an import made newer keeps the items an earlier
# event gave it). A filled customer copy goes back as older than any event, so its copies
# apply again (they re-derive what a copy carries; the filled columns are no copy's).
_BEFORE_0012_TABLES = (*IMPORTED_TABLES.values(), "order_items")
_AS_OLDEST = """CASE WHEN (row ->> 'is_stub')::boolean
    THEN row || '{"last_event_at": "-infinity"}' ELSE row END"""
PUT_BEFORE_0012_BACK = "".join(
    f"INSERT INTO {t} SELECT (jsonb_populate_record(NULL::{t}, "  # noqa: S608 - our names
    f"{_AS_OLDEST if t == 'customers' else 'row'})).* FROM imported_before_0012 "
    f"WHERE table_name = '{t}' ORDER BY position;"
    for t in _BEFORE_0012_TABLES
)

UPDATE_STATUS = """
UPDATE events AS e
SET family = u.family, status = u.status, error = u.error
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u (id, family, status, error)
WHERE e.id = u.id
"""

EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


@dataclass
class Report:
    events: int = 0
    processed: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    newly_processed: list[str] = field(default_factory=list)
    unknown: int = 0  # of `processed`: types this release does not know, stored raw only
    files: int = 0  # kept export files applied again (full replay)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def replay(
    conn: Connection,
    *,
    quarantined_only: bool = False,
    progress: Callable[[int], None] | None = None,
    redact_deleted: bool = False,
) -> Report:
    """Re-derive normalized rows from stored events; see the module docstring. Live
    batches write beside a `--quarantined` replay, and Postgres may undo the replay to
    break a deadlock with one: it is then done again from the start (`again_if_undone`)."""
    started = time.perf_counter()
    report = await again_if_undone(
        conn,
        lambda counting: _replay_once(conn, quarantined_only=quarantined_only,
                                      progress=counting, redact_deleted=redact_deleted),
        progress=progress,
        warning="replay undone by a concurrent transaction; replaying again",
    )  # fmt: skip
    report.seconds = time.perf_counter() - started  # undone attempts too: the rate paid
    return report


async def _replay_once(
    conn: Connection,
    *,
    quarantined_only: bool,
    progress: Callable[[int], None],
    redact_deleted: bool,
) -> Report:
    report = Report()
    async with conn.transaction():
        if not quarantined_only:
            # Checked in the transaction that empties the tables: nothing changes if refused.
            dropped: int = await conn.fetchval(DROPPED_EVENTS)
            if dropped:
                raise EventsDropped(dropped)
            await conn.execute(f"TRUNCATE {', '.join(NORMALIZED_TABLES)};" + PUT_BEFORE_0012_BACK)
        # The events received before each kept file, then the file, as they came live.
        files = [] if quarantined_only else await conn.fetch(KEPT_IMPORTS)
        after: tuple[datetime, str] = (EPOCH, "")
        for file in [*files, None]:
            until = None if file is None else file["imported_at"]
            rows = await conn.fetch(SELECT_PAGE, *after, not quarantined_only, PAGE, until)
            prepared = await _prepare_page(rows, redact_deleted=redact_deleted)
            while rows:
                after = (rows[-1]["received_at"], rows[-1]["id"])
                following = await conn.fetch(SELECT_PAGE, *after, not quarantined_only, PAGE, until)
                # Postgres writes this page while Python decodes the next one.
                writing = asyncio.ensure_future(_write_page(conn, rows, prepared, report))
                upcoming = await _prepare_page(following, redact_deleted=redact_deleted)
                await writing
                progress(len(rows))
                rows, prepared = following, upcoming
            if file is not None:
                try:
                    lines = await apply_again(
                        conn, file["id"], file["object"], file["file"], list(file["headers"])
                    )
                except ImportError_ as exc:
                    raise KeptFileUnreadable(file["file"], file["id"], exc) from exc
                report.files += 1
                log.info("import applied again", file=file["file"], rows=lines)
        if redact_deleted:
            # Events replayed after a customer's deletion may have copied personal data again.
            for statement in REDACT_AFTER_STORE:
                await conn.execute(statement, None)
            for statement in REDACT_IMPORTED:
                await conn.execute(statement)
    return report


Result = tuple[str, str, str | None]  # (family, status, error)


@dataclass
class Page:
    """A page decoded and normalized: each event's outcome and rows, and all the rows
    as one encoded `apply_writes` argument, ready before Postgres is free to take them."""

    events: list[tuple[Result, Writes]]
    writes: Writes  # all of them
    steps: msgspec.Raw | None  # None: plain SQL among the rows (applied statement by statement)


async def _prepare_page(rows: list[asyncpg.Record], *, redact_deleted: bool) -> Page:
    """Decode and normalize a page in Python, yielding to the event loop now and then so
    the page being written keeps streaming to Postgres meanwhile."""
    events = []
    for n, row in enumerate(rows, 1):
        events.append(_prepare(row, redact_deleted=redact_deleted))
        if n % 20 == 0:
            await asyncio.sleep(0)
    writes = Writes.combine(w for _, w in events)
    steps = (
        None
        if writes.plain_sql
        else msgspec.Raw(msgspec.json.encode(writes.steps(passed_over=False)))
    )
    return Page(events, writes, steps)


async def _write_page(
    conn: Connection, rows: list[asyncpg.Record], page: Page, report: Report
) -> None:
    """Write a page's rows, then record each event's (possibly new) status."""
    results = await _apply_page(conn, page)
    changes: list[tuple[str, str, str, str | None]] = []
    for row, (family, status, reason) in zip(rows, results, strict=True):
        report.events += 1
        error = reason
        if status == "processed" and (row["error"] or "").startswith(ESCAPED_NOTE):
            error = row["error"]  # normalized, but from a payload not as sent: still say so
        # One line per event that is or was quarantined: which recovered, which still
        # fail and why, for the on-call person who ran the replay after a fix.
        if status == "processed":
            report.processed += 1
            report.unknown += family == UNKNOWN
            if row["status"] == "quarantined":
                report.newly_processed.append(row["id"])
                log.info("recovered from quarantine", event_id=row["id"], type=row["type"])
        else:
            report.quarantined += 1
            log.warning("quarantined", event_id=row["id"], type=row["type"], error=error,
                        was=row["status"])  # fmt: skip
        if (family, status, error) != (row["family"], row["status"], row["error"]):
            changes.append((row["id"], family, status, error))
    if changes:
        await conn.execute(UPDATE_STATUS, *map(list, zip(*changes, strict=True)))


async def _apply_page(conn: Connection, page: Page) -> list[Result]:
    """All of a page's rows written together like a live batch (one round trip, its
    savepoint inside `try_apply_writes`); when that fails in Postgres, event by event, so
    only the bad one is quarantined."""
    error: str | None = None
    if page.steps is not None:
        error = await conn.fetchval(TRY_APPLY_WRITES, page.steps)
    else:
        try:
            async with conn.transaction():
                await page.writes.apply(conn)
        except UNAVAILABLE:
            raise
        except Exception as exc:  # noqa: BLE001 - fall back to one savepoint per event below
            error = f"{type(exc).__name__}: {exc}"
    if error is None:
        return [result for result, _ in page.events]
    log.warning("page failed; writing its events one by one", events=len(page.events),
                error=error)  # fmt: skip
    results = []
    for result, w in page.events:
        family, status, _ = result
        outcome = result
        if status == "processed":
            try:
                async with conn.transaction():
                    await w.apply(conn)
            except NOT_THE_EVENTS_FAULT:  # the replay's
                raise
            except Exception as exc:  # noqa: BLE001 - the error becomes the reason
                outcome = (family, "quarantined", handler_failure(family, exc))
        results.append(outcome)
    return results


def _prepare(row: asyncpg.Record, *, redact_deleted: bool) -> tuple[Result, Writes]:
    """(family, status, error) of one stored event, and the rows it normalizes to."""
    writes = Writes(event_id=row["id"])
    event_type: str = row["type"]
    family = family_of(event_type)
    if family == UNKNOWN:
        return (family, "processed", None), writes
    try:
        event = DECODER.decode(row["body"])
    except msgspec.ValidationError as exc:
        return (family, "quarantined", decode_failure(event_type, exc)), writes
    meta = Meta(event_id=row["id"], at=row["at"], type=event_type, redact_deleted=redact_deleted)
    try:
        normalize(writes, meta, family, event)
    except Exception as exc:  # noqa: BLE001 - a failing event is quarantined, the rest go on
        return (family, "quarantined", handler_failure(family, exc)), Writes()
    return (family, "processed", None), writes


async def count(conn: Connection, *, quarantined_only: bool) -> int:
    total: int = await conn.fetchval(COUNT, not quarantined_only)
    return total
