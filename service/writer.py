"""Group commit: concurrent deliveries are written together, one transaction per batch.

Each request runs its event's handler (`prepare`, in the request's own task), hands the
result to the `Writer` and waits. A writer task takes everything queued (up to
`max_batch`), combines the rows, then makes one call,
`pg_temp.ingest(events, writes)`, on a connection it keeps: one statement, so one
transaction and one round trip, that inserts all raw events and applies the new events'
rows (`Writes.steps`); only then are the requests answered. While one batch commits the
next one gathers, so the batch size follows the load. (A transaction spread over several
statements sat idle between them whenever the event loop was busy with requests: batches
took 7.5 ms instead of 4.8.)

Guarantees:
- A 2xx is only sent after the commit that holds the event.
- The raw insert goes through `event_ids` (`ON CONFLICT (id) DO NOTHING`), and duplicates
  inside a batch are answered `duplicate` before the insert: retries, both wire shapes and
  racing deliveries leave exactly one row, whatever month it is stored in.
- An event whose handler fails is stored quarantined in the same batch. A batch undone
  by a concurrent one (a deadlock: `db.TRANSIENT`) is written again whole, and undone on
  every attempt its deliveries get 503, as when Postgres is down. If the batch
  fails in Postgres otherwise, its events are retried one by one, so one bad event cannot
  take others down; one that still fails is stored quarantined with the database's error.
- The queue is bounded: when it is full the request is refused at once (503), and a
  request that waits past the deadline gets 503 too (Voucherify retries; if the batch did
  commit, the retry is a duplicate, and the commit is logged 'stored after its answer'
  and counted). The deadline is kept here, one timer for all waiting
  requests (`_Deadlines`), not by an `asyncio.timeout` per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import textwrap
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import asyncpg
import msgspec
import structlog

from service.db import NOT_THE_EVENTS_FAULT, Connection, Pool, again_if_undone
from service.handlers import Meta, Writes, handler_failure
from service.handlers._entities import REDACT_AFTER_STORE
from service.intake import ESCAPED_NOTE, Incoming, Rejected, escaped, parse
from service.routing import UNKNOWN, normalize

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger("service.writer")


class EventRow(msgspec.Struct):
    """One `events` row, as a JSON object of the batch's jsonb argument (a Struct encodes
    as one without a dict built per event)."""

    id: str
    type: str
    family: str
    status: str
    error: str | None
    payload: msgspec.Raw  # the request body as it came, unparsed
    created_at: datetime | None
    received_at: datetime
    group_id: str | None
    customer_id: str | None
    delivery_id: str | None
    project_id: str | None


# `event_ids` decides what is new (its primary key spans every month of the partitioned
# `events`); only new events are inserted, in the same statement. `{events}` is the batch's
# rows as one jsonb array; `new` returns the ids inserted.
EVENT_COLUMNS = EventRow.__struct_fields__
_columns = ", ".join(EVENT_COLUMNS)
_NEW_EVENTS = f"""
WITH batch AS (
    SELECT {_columns} FROM jsonb_populate_recordset(NULL::events, {{events}})
), new AS (
    INSERT INTO event_ids (id, received_at)
    SELECT id, received_at FROM batch ORDER BY id  -- see LOCK_ORDER in handlers/_sql.py
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), stored AS (
    INSERT INTO events ({_columns})
    SELECT b.* FROM batch b JOIN new USING (id)
    RETURNING id
)"""  # noqa: S608 - column names only; the rows arrive as one jsonb argument
INSERT_EVENTS = _NEW_EVENTS.replace("{events}", "$1::jsonb") + "\nSELECT id FROM new"

# A whole batch in one statement, so one round trip, and no transaction left waiting on
# this process between statements (the event loop has other requests to serve): stores
# the new events, applies their writes, and returns the ids that were stored already
# (retries, or an event a concurrent writer committed first: the insert's ON CONFLICT
# waits for it and skips it). Those events' rows are left out before each statement
# reduces its rows per key (`apply_writes_skipping`), so a retry neither writes nor hides
# a new event's row. (A batch holding a retry used to take a second round trip: the
# writes had been reduced in Python assuming every event new. With the benchmark's 5%
# retries most batches held one, and that round trip was a third of a batch's time.)
# Batches without stored events take `apply_writes` as before.
# Nothing is inserted and undone: ON CONFLICT DO NOTHING finds a stored id in the index
# before it writes.
INGEST = "SELECT pg_temp.ingest($1::jsonb, $2::jsonb)"
INGEST_FUNCTION = f"""
CREATE OR REPLACE FUNCTION pg_temp.ingest(_events jsonb, _steps jsonb) RETURNS text[]
LANGUAGE plpgsql SET "TimeZone" = 'UTC' AS $ingest$
DECLARE
    _new text[];
    _stored text[];
BEGIN
    {textwrap.indent(_NEW_EVENTS.replace("{events}", "_events").strip(), " " * 4).strip()}
    -- The stored ids come from `batch`: unpacking `_events` again would copy every
    -- payload once more: 102-111 against 109-124 us of Postgres CPU per event, batches
    -- of 32, lower in all eight alternating pairs.
    SELECT (SELECT coalesce(array_agg(id), '{{}}') FROM new),
           ARRAY(SELECT b.id FROM batch b LEFT JOIN new n USING (id) WHERE n.id IS NULL)
    INTO _new, _stored;
    -- An id twice in the batch would be counted new once (and inserted into `events`
    -- twice): refused, and the whole call undone.
    IF cardinality(_new) + cardinality(_stored) < jsonb_array_length(_events) THEN
        RAISE EXCEPTION 'one batch holds the same event id twice';
    END IF;
    IF cardinality(_stored) = 0 THEN
        PERFORM pg_temp.apply_writes(_steps);
    ELSE
        PERFORM pg_temp.apply_writes_skipping(_steps, _stored);
    END IF;
    RETURN _stored;
END
$ingest$;
"""  # noqa: S608 - column names only


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Written:
    outcome: Outcome
    error: str | None = None


class Saturated(Exception):  # noqa: N818 - reads as "raise Saturated"
    """The queue is full: answer 503 now rather than pile up memory."""


@dataclass
class Prepared:
    """One delivery after its handler ran: the raw row and the rows it adds."""

    incoming: Incoming
    received_at: datetime
    error: str | None = None
    writes: Writes = field(default_factory=Writes)

    @property
    def outcome(self) -> Outcome:
        if self.error:
            return Outcome.QUARANTINED
        return Outcome.UNKNOWN if self.incoming.family == UNKNOWN else Outcome.PROCESSED


def prepare(incoming: Incoming, received_at: datetime, *, redact_deleted: bool = False) -> Prepared:
    """Run the event's handler; a failure quarantines the event instead of its rows."""
    writes = Writes(event_id=incoming.event_id)
    prepared = Prepared(incoming, received_at, error=incoming.decode_error, writes=writes)
    if incoming.event is not None:
        meta = Meta(
            event_id=incoming.event_id,
            at=incoming.created_at or received_at,
            type=incoming.type,
            redact_deleted=redact_deleted,
        )
        try:
            normalize(prepared.writes, meta, incoming.family, incoming.event)
        except Exception as exc:  # noqa: BLE001 - any handler failure quarantines the event
            prepared.error = handler_failure(incoming.family, exc)
            prepared.writes = Writes()
    return prepared


async def commit(
    conn: Connection, batch: Sequence[Prepared], *, redact_deleted: bool = False
) -> set[str]:
    """Insert the raw events and, for those new, their rows; returns the new event ids.

    Two batches take their locks in one order (LOCK_ORDER in handlers/_sql.py), but
    another session (customer redaction's statements, replay, a CSV import, an operator's
    transaction) can still close a cycle with one, and Postgres may undo the batch: it is
    then written again whole (`again_if_undone`), rather than failing and being split
    into single events."""
    ids = {p.incoming.event_id for p in batch}
    if len(ids) < len(batch):
        raise ValueError("one batch holds the same event id twice (the writer drops repeats)")
    writes = Writes.combine(p.writes for p in batch)
    in_transaction = redact_deleted or writes.plain_sql
    args = None if in_transaction else (_event_rows(batch), writes.steps(passed_over=True))

    async def write(_: Callable[[int], None]) -> set[str]:
        if args is None:
            return await _commit_in_transaction(conn, batch, redact_deleted=redact_deleted)
        stored = await conn.fetchval(INGEST, *args)
        return ids - set(stored)

    return await again_if_undone(
        conn, write, warning="batch undone by a concurrent one; writing it again",
        events=len(batch),
    )  # fmt: skip


async def _commit_in_transaction(
    conn: Connection, batch: Sequence[Prepared], *, redact_deleted: bool
) -> set[str]:
    """`commit` for batches with plain SQL statements (customer redaction): statement by
    statement in one transaction."""
    async with conn.transaction():
        new = {r["id"] for r in await conn.fetch(INSERT_EVENTS, _event_rows(batch))}
        await Writes.combine(p.writes for p in batch if p.incoming.event_id in new).apply(conn)
        if redact_deleted and new:
            for statement in REDACT_AFTER_STORE:
                await conn.execute(statement, list(new))
    return new


def _event_rows(batch: Iterable[Prepared]) -> list[EventRow]:
    """The raw rows as one jsonb argument: the request bodies go in as they came, unparsed."""
    return [
        EventRow(
            id=p.incoming.event_id,
            type=p.incoming.type,
            family=p.incoming.family,
            status="quarantined" if p.error else "processed",
            error=p.error,
            payload=msgspec.Raw(p.incoming.body),
            created_at=p.incoming.created_at,
            received_at=p.received_at,
            group_id=p.incoming.group_id,
            customer_id=p.incoming.customer_id or p.writes.customer_id,
            delivery_id=p.incoming.delivery_id,
            project_id=p.incoming.project_id,
        )
        for p in batch
    ]


@dataclass
class Writer:
    """The group-commit queue and its writer tasks (see the module docstring)."""

    pool: Pool
    max_batch: int = 500
    queue_limit: int = 5000
    concurrency: int = 1
    on_batch: Callable[[int, float], None] | None = None  # (events, seconds), for metrics
    redact_deleted: bool = False
    # How long `write` waits for its commit before it raises TimeoutError (None: no limit).
    deadline_seconds: float | None = None

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[tuple[Prepared, asyncio.Future[Written]]] = asyncio.Queue(
            self.queue_limit
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._deadlines = (
            None if self.deadline_seconds is None else _Deadlines(self.deadline_seconds)
        )
        self.batches = 0
        # Events committed after their delivery got 503 (its deadline) or was abandoned:
        # stored, though the answer said otherwise (the retry is answered 'duplicate').
        self.stored_after_answer = 0

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"writer-{n}") for n in range(self.concurrency)
        ]

    async def stop(self) -> None:
        """Finish what is queued, then stop the tasks."""
        await self._queue.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._deadlines is not None:
            self._deadlines.stop()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def write(self, incoming: Incoming) -> Written:
        """Queue one delivery and wait for its commit; raises `Saturated` when full, and
        TimeoutError once `deadline_seconds` have passed."""
        if self._queue.full():
            raise Saturated
        # The handler runs here, in the request's task, while a batch commits: the writer
        # then only combines rows between commits, while Postgres waits for its next
        # batch (five alternating pairs: +3% events/s, p99 lower in four).
        prepared = prepare(incoming, datetime.now(UTC), redact_deleted=self.redact_deleted)
        future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((prepared, future))
        if self._deadlines is not None:
            self._deadlines.watch(future)
        # A caller giving up (cancelled, or past its deadline) ends only this future: the
        # batch goes on, and the writer skips answering a future that is done.
        return await future

    async def _run(self) -> None:
        lease = _Lease(self.pool)
        try:
            while True:
                items = [await self._queue.get()]
                while len(items) < self.max_batch:
                    try:
                        items.append(self._queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                try:
                    await self._write_batch(items, lease)
                finally:
                    for _ in items:
                        self._queue.task_done()
        finally:
            await lease.release()

    async def _write_batch(
        self, items: list[tuple[Prepared, asyncio.Future[Written]]], lease: _Lease
    ) -> None:
        started = time.perf_counter()
        first: dict[str, Prepared] = {}
        repeats: set[int] = set()  # positions in `items` of an id earlier in the batch
        for n, (prepared, _) in enumerate(items):
            if prepared.incoming.event_id in first:
                repeats.add(n)
            else:
                first[prepared.incoming.event_id] = prepared
        batch = list(first.values())
        try:
            new, failed = await self._commit(batch, await lease.connection())
        except BaseException as exc:
            # Whatever state the connection is in now, the next batch starts on a clean one.
            await lease.release()
            for _, future in items:
                _fail(future, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for n, (prepared, future) in enumerate(items):
            event_id = prepared.incoming.event_id
            if event_id in failed:  # a repeat too: its event is not stored either
                _fail(future, failed[event_id])
            elif n in repeats or event_id not in new:
                _resolve(future, Written(Outcome.DUPLICATE))
            elif future.done():  # answered 503 at its deadline, or its client left
                self.stored_after_answer += 1
                log.warning(
                    "stored after its answer",
                    event_id=event_id,
                    family=prepared.incoming.family,
                    outcome=prepared.outcome.value,
                )
            else:
                _resolve(future, Written(prepared.outcome, prepared.error))
        self.batches += 1
        if self.on_batch is not None:
            self.on_batch(len(items), time.perf_counter() - started)

    async def _commit(
        self, batch: list[Prepared], conn: Connection
    ) -> tuple[set[str], dict[str, Exception]]:
        """(new event ids, events that could not be stored at all, with the error)."""
        try:
            return await commit(conn, batch, redact_deleted=self.redact_deleted), {}
        except NOT_THE_EVENTS_FAULT:  # `commit` already wrote a batch undone once again
            raise
        except Exception as exc:  # noqa: BLE001 - find the bad event below
            log.warning(
                "batch failed; writing its events one by one",
                events=len(batch),
                error=f"{type(exc).__name__}: {exc}",
            )
        new: set[str] = set()
        failed: dict[str, Exception] = {}
        for prepared in batch:
            try:
                new |= await commit(conn, [prepared], redact_deleted=self.redact_deleted)
            except NOT_THE_EVENTS_FAULT:
                raise
            except Exception as exc:  # noqa: BLE001 - isolate the bad event, keep the rest
                # Its rows fail in Postgres: keep it raw, quarantined with the error.
                prepared.error = handler_failure(prepared.incoming.family, exc)
                prepared.writes = Writes()
                try:
                    new |= await commit(conn, [prepared], redact_deleted=self.redact_deleted)
                except NOT_THE_EVENTS_FAULT:
                    raise
                except Exception as raw_exc:  # noqa: BLE001 - not even the raw event fits
                    if not await self._keep_escaped(conn, prepared, raw_exc, new):
                        failed[prepared.incoming.event_id] = raw_exc
        return new, failed

    async def _keep_escaped(
        self, conn: Connection, prepared: Prepared, exc: Exception, new: set[str]
    ) -> bool:
        """Store an event Postgres refused even raw (a NUL character in a string) with the
        NULs written out (`intake.escaped`), quarantined, so it is kept and replayable
        instead of refused; False if that is not what was wrong with it."""
        body = escaped(prepared.incoming.body)
        if body is None:
            return False
        try:
            incoming = parse(body)
        except Rejected:
            return False
        sent, error = prepared.incoming, prepared.error
        prepared.incoming = incoming  # the body's text as it was, NULs written out
        prepared.error = (
            f"{ESCAPED_NOTE} (Postgres refused the payload as sent: {type(exc).__name__}: "
            f"{exc}); the signature was over the original"
        )
        try:
            new |= await commit(conn, [prepared], redact_deleted=self.redact_deleted)
        except NOT_THE_EVENTS_FAULT:
            raise
        except Exception:  # noqa: BLE001 - something else is wrong with it: refused
            # As sent again: its failure is keyed by its id as sent, which its repeats in
            # the batch share (a NUL in the id itself is written out in the escaped one).
            prepared.incoming, prepared.error = sent, error
            return False
        return True


class _Deadlines:
    """Fails each watched future with TimeoutError once it has waited `seconds`.

    Every future gets the same span, so their deadlines come in the order they were
    watched: one queue and one timer, armed for the oldest, serve them all. (An
    `asyncio.timeout` per request arms and cancels a timer each: 3.9 us per request on
    uvloop, measured, against well under 1 here.) Futures answered in time are dropped
    from the front as new ones come, so the queue holds about what is in flight.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._waiting: deque[tuple[float, asyncio.Future[Written]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, future: asyncio.Future[Written]) -> None:
        waiting = self._waiting
        while waiting and waiting[0][1].done():
            waiting.popleft()
        loop = future.get_loop()
        waiting.append((loop.time() + self.seconds, future))
        if self._timer is None:
            self._timer = loop.call_at(waiting[0][0], self._expire, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        waiting, now = self._waiting, loop.time()
        while waiting:
            deadline, future = waiting[0]
            if not future.done():
                if deadline > now:
                    self._timer = loop.call_at(deadline, self._expire, loop)
                    return
                # The batch goes on without this answer (`_resolve` skips a done future).
                future.set_exception(TimeoutError(f"not committed within {self.seconds:g} s"))
            waiting.popleft()


class _Lease:
    """A writer task's own connection, kept from batch to batch: borrowing one from the
    pool for every batch costs a round trip more (the pool resets it on release)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._conn: PoolConnectionProxy[asyncpg.Record] | None = None

    async def connection(self) -> Connection:
        if self._conn is None or self._conn.is_closed():
            await self.release()
            self._conn = await self._pool.acquire()
        return self._conn

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._pool.release(conn)


def _resolve(future: asyncio.Future[Written], written: Written) -> None:
    if not future.done():
        future.set_result(written)


def _fail(future: asyncio.Future[Written], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
