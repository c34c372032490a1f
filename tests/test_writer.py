"""Group commit under concurrency, failure isolation inside a batch, and backpressure."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from asyncpg.transaction import Transaction
from structlog.testing import capture_logs

from service import db
from service import writer as writer_module
from service.app import create_app
from service.handlers import Writes
from service.handlers._sql import REGISTRY
from service.intake import parse
from service.replay import replay
from service.writer import (
    INGEST,
    Outcome,
    Prepared,
    Saturated,
    Writer,
    _event_rows,
    commit,
    prepare,
)
from tests.conftest import (
    WEBHOOK,
    compact_json,
    dump,
    fetch_one,
    fixture_types,
    load_fixture,
    reset,
    settings,
    share_objects,
    signed,
    start_app,
)


def order_event(n: int, at: str | None = None, **order: Any) -> bytes:
    activity = load_fixture("customer.order.paid") | {"id": f"evcus_batch_{n}"}
    if at is not None:
        activity["created_at"] = at
    activity["data"]["order"].update({"id": f"ord_batch_{n}"} | order)
    return compact_json(activity)


async def test_concurrent_deliveries_commit_together_and_all_land(
    database_url: str, conn: db.Connection
) -> None:
    """200 concurrent deliveries: fewer transactions than events, every event stored."""
    app = create_app(settings(), database_url)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        bodies = [order_event(n) for n in range(200)]
        answers = await asyncio.gather(
            *(client.post(WEBHOOK, content=b, headers=signed(b)) for b in bodies)
        )
        batches = app.state.service.writer.batches
    assert {a.status_code for a in answers} == {202}
    assert await conn.fetchval("SELECT count(*) FROM events") == 200
    assert await conn.fetchval("SELECT count(*) FROM orders WHERE id LIKE 'ord_batch_%'") == 200
    assert batches < 200


async def test_an_event_postgres_rejects_is_quarantined_and_its_batch_commits(
    database_url: str, conn: db.Connection
) -> None:
    """A value out of bigint range fails the batch in Postgres; the writer retries event by
    event: the bad one is stored quarantined with the error, the others are processed."""
    app = create_app(settings(), database_url)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        bodies = [order_event(n) for n in range(20)] + [order_event(99, amount=2**70)]
        answers = await asyncio.gather(
            *(client.post(WEBHOOK, content=b, headers=signed(b)) for b in bodies)
        )
    outcomes = [a.json()["outcome"] for a in answers]
    assert outcomes == ["processed"] * 20 + ["quarantined"]
    row = await conn.fetchrow("SELECT status, error FROM events WHERE id = 'evcus_batch_99'")
    assert row is not None
    assert row["status"] == "quarantined"
    assert "order handler" in row["error"]
    assert await conn.fetchval("SELECT count(*) FROM orders") == 20


def unstorable_event(n: int) -> bytes:
    """Valid JSON that jsonb cannot hold: a \\u0000 in a string."""
    return order_event(n).replace(b'"metadata":{', b'"metadata":{"nul":"a\\u0000b",', 1)


async def test_an_event_postgres_cannot_store_as_sent_is_kept_quarantined_with_nuls_escaped(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """jsonb (and text) cannot hold a NUL character. Refusing the event lost it: Voucherify
    retries a 400 for two days, then drops it. It is kept, the NULs written out as text,
    quarantined with the reason; a replay of the quarantine then normalizes it."""
    body = unstorable_event(1)
    assert b"\\u0000" in body
    answer = await client.post(WEBHOOK, content=body, headers=signed(body))
    retry = await client.post(WEBHOOK, content=body, headers=signed(body))

    assert (answer.status_code, answer.json()["outcome"]) == (202, "quarantined")
    assert (retry.status_code, retry.json()["outcome"]) == (200, "duplicate")
    row = await conn.fetchrow("SELECT id, status, error, payload FROM events")
    assert row is not None
    assert row["status"] == "quarantined"
    assert "NUL character written out" in row["error"]
    # The six characters, not a NUL: in JSON text, an escaped backslash.
    assert b'"nul":"a\\\\u0000b"' in msgspec.json.encode(row["payload"])
    assert await conn.fetchval("SELECT count(*) FROM orders") == 0

    report = await replay(conn, quarantined_only=True)
    assert report.newly_processed == [row["id"]]
    assert await conn.fetchval("SELECT count(*) FROM orders") == 1
    # Processed now, but its rows hold the text \u0000, not what was sent: the note stays,
    # also through a full replay.
    await replay(conn)
    replayed = await conn.fetchrow("SELECT status, error FROM events")
    assert replayed is not None
    assert (replayed["status"], replayed["error"]) == ("processed", row["error"])


async def test_a_repeat_in_its_batch_of_an_event_that_cannot_be_stored_is_not_acknowledged(
    database_url: str, conn: db.Connection
) -> None:
    """Two deliveries of one event Postgres cannot store as sent, in one batch: the first is
    kept (escaped, quarantined), the repeat is its duplicate. (Before, when such an event
    was refused, the repeat was answered 200 `duplicate` of an event never stored.)"""
    app = create_app(settings(), database_url)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)

        async def post(body: bytes) -> httpx.Response:
            return await client.post(WEBHOOK, content=body, headers=signed(body))

        blocker, tx = await stack.enter_async_context(events_locked(database_url))
        ahead = asyncio.create_task(post(order_event(1)))
        await waiting_on_a_lock(blocker)  # its batch waits for the lock
        bad = unstorable_event(2)
        repeats = [asyncio.create_task(post(bad)) for _ in range(2)]
        for _ in range(1000):  # both queued behind it: the next batch holds both
            if app.state.service.writer.depth == 2:
                break
            await asyncio.sleep(0.01)
        await tx.rollback()
        answers = [await ahead, *[await r for r in repeats]]
    assert answers[0].status_code == 202
    assert [(a.status_code, a.json()["outcome"]) for a in answers[1:]] == [
        (202, "quarantined"),
        (200, "duplicate"),
    ]
    assert await conn.fetchval("SELECT count(*) FROM events") == 2


async def test_a_stalled_database_gets_503_with_retry_after_within_the_deadline(
    database_url: str, conn: db.Connection
) -> None:
    """With Postgres blocked, queued deliveries get 503 at the deadline and those beyond
    the queue limit at once; nothing waits past the configured deadline."""
    app = create_app(
        settings(write_timeout_seconds=1.0, writer_queue_limit=5, writer_concurrency=1),
        database_url,
    )
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        _, tx = await stack.enter_async_context(events_locked(database_url))
        bodies = [order_event(n) for n in range(30)]
        # The lock is held until every answer is in: they can only come from the
        # deadline and the queue limit.
        started = time.monotonic()
        with capture_logs() as logs:
            answers = await asyncio.gather(
                *(client.post(WEBHOOK, content=b, headers=signed(b)) for b in bodies)
            )
        waited = time.monotonic() - started
        await tx.rollback()
    assert {a.status_code for a in answers} == {503}
    assert all(a.headers["retry-after"] == "5" for a in answers)
    reasons = [line["reason"] for line in logs if line["event"] == "webhook"]
    # At most the batch blocked in Postgres and a full queue behind it wait for the
    # deadline; the rest are refused at once.
    deadline = "TimeoutError: not committed within 1 s"
    assert set(reasons) == {"queue full", deadline}
    assert reasons.count(deadline) <= 2 * 5
    # The 1 s deadline, not the connection's 30 s command timeout, ended the wait (the
    # bound is loose: it separates the two, it does not time the service).
    assert waited < 10


async def test_an_event_stored_after_its_503_is_logged_and_counted(
    database_url: str, conn: db.Connection
) -> None:
    """A delivery answered 503 at its deadline whose batch then commits is stored: the
    log line of its 503 would send the on-call person looking for a lost event. The
    commit says so in a line of its own, with the id, and in /metrics."""
    app = create_app(settings(write_timeout_seconds=0.5), database_url)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        _, tx = await stack.enter_async_context(events_locked(database_url))
        bodies = [order_event(n) for n in range(2)]
        with capture_logs() as logs:
            answers = await asyncio.gather(
                *(client.post(WEBHOOK, content=b, headers=signed(b)) for b in bodies)
            )
            await tx.rollback()
            for _ in range(1500):  # the blocked batch commits once the lock is gone
                if app.state.service.writer.stored_after_answer == 2:
                    break
                await asyncio.sleep(0.02)
        text = (await client.get("/metrics")).text
    assert [a.status_code for a in answers] == [503, 503]
    assert await conn.fetchval("SELECT count(*) FROM events") == 2
    late = [line for line in logs if line["event"] == "stored after its answer"]
    stored = {json.loads(b)["id"] for b in bodies}
    assert {line["event_id"] for line in late} == stored
    assert {(line["log_level"], line["outcome"]) for line in late} == {("warning", "processed")}
    assert "voucherify_writer_stored_after_answer_total 2.0" in text


async def test_a_caller_giving_up_loses_neither_its_event_nor_the_batch(
    database_url: str, conn: db.Connection
) -> None:
    """A request that stops waiting (its deadline) while its batch is blocked in Postgres:
    the batch commits once unblocked, with that event, and the others are answered."""
    async with writer_behind_a_lock(database_url) as (writer, blocker, lock):
        gives_up, waits = (asyncio.create_task(writer.write(parse(order_event(n)))) for n in (1, 2))
        await waiting_on_a_lock(blocker)
        gives_up.cancel()
        await lock.rollback()
        async with asyncio.timeout(30):  # a writer that stopped answering fails, not hangs
            assert (await waits).outcome is Outcome.PROCESSED
    assert gives_up.cancelled()
    assert await conn.fetchval("SELECT count(*) FROM events") == 2
    assert await conn.fetchval("SELECT count(*) FROM orders") == 2


async def test_each_write_gets_its_own_deadline_and_its_event_still_lands(
    database_url: str, conn: db.Connection
) -> None:
    """`deadline_seconds` counts from each write: with Postgres blocked, the first write
    fails at its deadline while one made later still waits, then fails at its own; both
    events are stored once Postgres answers (the batch went on without its callers)."""
    async with writer_behind_a_lock(database_url, deadline_seconds=1.0) as (writer, blocker, lock):
        first = asyncio.create_task(writer.write(parse(order_event(1))))
        await waiting_on_a_lock(blocker)
        await asyncio.sleep(0.5)
        later = asyncio.create_task(writer.write(parse(order_event(2))))
        async with asyncio.timeout(30):
            with pytest.raises(TimeoutError):
                await first
            assert not later.done()
            with pytest.raises(TimeoutError):
                await later
        await lock.rollback()
    assert await conn.fetchval("SELECT count(*) FROM events") == 2
    assert await conn.fetchval("SELECT count(*) FROM orders") == 2


async def test_a_full_queue_refuses_at_once_without_running_the_handler(
    database_url: str, conn: db.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the writer blocked and its queue full, a delivery is refused (`Saturated`, a
    503) before its handler runs: an overloaded service spends nothing on what it refuses.
    The two it took are stored once Postgres answers; the refused one is not."""
    handled: list[str] = []

    def counting(incoming: Any, *args: Any, **kwargs: Any) -> Prepared:
        handled.append(incoming.event_id)
        return prepare(incoming, *args, **kwargs)

    monkeypatch.setattr(writer_module, "prepare", counting)
    async with writer_behind_a_lock(database_url, queue_limit=1) as (writer, blocker, lock):
        taken = asyncio.create_task(writer.write(parse(order_event(1))))
        await waiting_on_a_lock(blocker)  # the writer holds event 1, blocked
        queued = asyncio.create_task(writer.write(parse(order_event(2))))
        await asyncio.sleep(0)  # its task runs up to waiting for its commit
        assert writer.depth == 1
        with pytest.raises(Saturated):
            await writer.write(parse(order_event(3)))
        assert handled == ["evcus_batch_1", "evcus_batch_2"]
        await lock.rollback()
        async with asyncio.timeout(30):
            assert [(await t).outcome for t in (taken, queued)] == [Outcome.PROCESSED] * 2
    ids = await conn.fetch("SELECT id FROM events ORDER BY id")
    assert [r["id"] for r in ids] == ["evcus_batch_1", "evcus_batch_2"]


async def test_a_delivery_whose_preparation_fails_gets_503_and_the_writer_goes_on(
    database_url: str, conn: db.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure outside the handler's own guard (here: `prepare` raising, as a
    MemoryError would) answers that delivery 503, so Voucherify retries it; nothing of it
    is queued, and the writer goes on storing the next deliveries."""

    def failing_once(incoming: Any, *args: Any, **kwargs: Any) -> Prepared:
        if incoming.event_id == "evcus_batch_1":
            raise RuntimeError("out of something")
        return prepare(incoming, *args, **kwargs)

    monkeypatch.setattr(writer_module, "prepare", failing_once)
    app = create_app(settings(), database_url)
    async with AsyncExitStack() as stack:
        client = await start_app(stack, app)
        first, second = order_event(1), order_event(2)
        refused = await client.post(WEBHOOK, content=first, headers=signed(first))
        assert app.state.service.writer.depth == 0
        stored = await client.post(WEBHOOK, content=second, headers=signed(second))
        monkeypatch.setattr(writer_module, "prepare", prepare)
        retried = await client.post(WEBHOOK, content=first, headers=signed(first))
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")
    assert (stored.status_code, retried.status_code) == (202, 202)
    ids = await conn.fetch("SELECT id FROM events ORDER BY id")
    assert [r["id"] for r in ids] == ["evcus_batch_1", "evcus_batch_2"]


APPLY_WRITES_DEFINED = "SELECT to_regprocedure('pg_temp.apply_writes(jsonb)')"


async def test_a_read_only_session_still_connects(database_url: str) -> None:
    """Connections install the batch-write function; one that cannot write (an analyst's
    read-only session) connects all the same, without it."""
    conn = await db.connect(database_url, server_settings={"default_transaction_read_only": "on"})
    try:
        assert await conn.fetchval(APPLY_WRITES_DEFINED) is None
        # The rest of the set-up ran: the jsonb codec decodes into Python objects.
        assert await conn.fetchval("""SELECT '{"a": [1]}'::jsonb""") == {"a": [1]}
    finally:
        await conn.close()
    conn = await db.connect(database_url)
    try:
        assert await conn.fetchval(APPLY_WRITES_DEFINED)
    finally:
        await conn.close()


def prepared_order(n: int, at: str, **order: Any) -> Prepared:
    """Event n about the one order these tests share, decoded and normalized."""
    return prepare(parse(order_event(n, at, id="ord_shared", **order)), datetime.now(UTC))


async def test_a_retry_of_a_stored_event_never_hides_a_new_events_rows(
    conn: db.Connection,
) -> None:
    """A batch is reduced per key before it is written. Event 1 was stored quarantined
    (no rows); its retry arrives with event 2, older, for the same order: only event 2 is
    new, and its row is written, as if event 1's retry had never been in the batch."""
    failed_first = quarantined(order_event(1, "2024-02-01T10:00:00Z", id="ord_shared", amount=100))
    assert await commit(conn, [failed_first]) == {"evcus_batch_1"}

    retry = prepared_order(1, "2024-02-01T10:00:00Z", amount=100)
    older = prepared_order(2, "2024-01-01T10:00:00Z", amount=200)
    assert await commit(conn, [retry, older]) == {"evcus_batch_2"}

    row = await fetch_one(conn, "SELECT amount, last_event_id FROM orders")
    assert (row["amount"], row["last_event_id"]) == (200, "evcus_batch_2")
    assert await conn.fetchval("SELECT count(*) FROM events") == 2
    status = await conn.fetchval("SELECT status FROM events WHERE id = 'evcus_batch_1'")
    assert status == "quarantined"


async def test_a_retry_costs_no_second_call_and_leaves_no_dead_rows(conn: db.Connection) -> None:
    """A batch holding a retry is stored in the same one call: the new event and its rows
    are written, the retry is answered as stored, and nothing is inserted and undone (each
    would stay behind as a dead row, up to a batch of ~2 KB payloads per retry)."""
    assert await commit(conn, [prepared_order(1, "2024-01-01T10:00:00Z")]) == {"evcus_batch_1"}
    batch = [prepared_order(1, "2024-01-01T10:00:00Z"), prepared_order(2, "2024-01-02T10:00:00Z")]
    # This session's counters not yet sent to the statistics (they include the commit
    # above): what the call adds to them is what it wrote, kept or undone.
    counters = """SELECT coalesce(sum(n_tup_ins), 0) AS ins, coalesce(sum(n_tup_upd), 0) AS upd,
                         coalesce(sum(n_tup_del), 0) AS del FROM pg_stat_xact_user_tables"""

    async def written() -> list[int]:
        return [int(n) for n in (await fetch_one(conn, counters)).values()]

    live = "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM event_ids)"
    async with conn.transaction():
        before, live_before = await written(), await conn.fetchval(live)
        stored = await conn.fetchval(
            INGEST, _event_rows(batch), Writes.combine(p.writes for p in batch).steps()
        )
        after, live_after = await written(), await conn.fetchval(live)
    assert stored == ["evcus_batch_1"]
    assert live_after - live_before == 2  # event 2 in events and event_ids
    assert await conn.fetchval("SELECT last_event_id FROM orders") == "evcus_batch_2"
    with_retry = [a - b for a, b in zip(after, before, strict=True)]
    # What the same kind of event writes alone (a newer event about the same order):
    # exactly what the batch wrote, so the retry wrote nothing, not even to undo it.
    assert await commit(conn, [prepared_order(3, "2024-01-03T10:00:00Z")]) == {"evcus_batch_3"}
    async with conn.transaction():
        before = await written()
        await commit(conn, [prepared_order(4, "2024-01-04T10:00:00Z")])
        alone = [a - b for a, b in zip(await written(), before, strict=True)]
    assert with_retry[0] > 0
    assert with_retry == alone


async def test_every_statement_runs_in_a_batch_holding_retries(conn: db.Connection) -> None:
    """A batch holding stored events takes each statement's other SQL (`sql_skipping`),
    compiled only when a batch first reaches it: every statement runs that way here, on
    the retries of every fixture beside new events of every type, which are stored with
    all their rows."""
    now = datetime.now(UTC)

    def of_every_type(suffix: str) -> list[Prepared]:
        batch = []
        for event_type in fixture_types():
            # Some statements run only under REDACT_DELETED_CUSTOMERS.
            for redacting in (False, True):
                activity = load_fixture(event_type)
                activity["id"] += ("_redacting" if redacting else "") + suffix
                prepared = prepare(parse(compact_json(activity)), now, redact_deleted=redacting)
                if not prepared.writes.plain_sql:  # redactions: statement by statement
                    batch.append(prepared)
        return batch

    first, retries, new = of_every_type(""), of_every_type(""), of_every_type("_new")
    steps = Writes.combine(p.writes for p in first).steps()
    assert {name for name, _, _ in steps} == {s.name for s in REGISTRY}
    assert await commit(conn, first) == {p.incoming.event_id for p in first}
    rows_before = await conn.fetchval("SELECT count(*) FROM customers")

    async with conn.transaction():  # count this transaction's calls of the function
        await conn.execute("SET LOCAL track_functions = 'pl'")
        assert await commit(conn, retries + new) == {p.incoming.event_id for p in new}
        skipping_calls = await conn.fetchval(
            "SELECT sum(calls) FROM pg_stat_xact_user_functions"
            " WHERE funcname = 'apply_writes_skipping'"
        )
    assert skipping_calls == 1
    assert await conn.fetchval("SELECT count(*) FROM events") == 2 * len(first)
    assert await conn.fetchval("SELECT count(*) FROM customers") == rows_before
    # The newer copies (same time, greater event id) now hold the current-state rows.
    held = await conn.fetchval(
        "SELECT count(*) FROM customers WHERE last_event_id NOT LIKE '%\\_new' ESCAPE '\\'"
    )
    assert held == 0


# Types whose events share one customer, order, voucher, redemption and segment
# (`share_objects`): every kind of statement meets another event's row for the same key
# in one batch.
MIXED_TYPES = (
    "customer.order.paid", "customer.order.updated", "customer.order.canceled",
    "customer.updated", "customer.segment.entered", "customer.segment.left",
    "customer.redemption.succeeded", "customer.email.sent", "customer.rewarded",
)  # fmt: skip


def mixed_events(rng: random.Random, count: int) -> list[bytes]:
    """`count` events about the same objects, at times that often tie (then the greater
    event id wins; a redemption's customer and holder copies tie within one event)."""
    bodies = []
    for n in range(count):
        activity = load_fixture(rng.choice(MIXED_TYPES)) | {"id": f"evcus_mix_{n:02d}"}
        activity["created_at"] = f"2024-03-01T10:{rng.randrange(4):02d}:00Z"
        bodies.append(compact_json(share_objects(activity, n)))
    return bodies


def quarantined(body: bytes) -> Prepared:
    """An event as it is stored when its handler failed: raw, without rows."""
    prepared = prepare(parse(body), datetime.now(UTC))
    prepared.error, prepared.writes = "handler failed earlier", Writes()
    return prepared


@pytest.mark.parametrize("seed", range(16))
async def test_a_batch_holding_retries_leaves_the_tables_as_its_events_one_by_one(
    conn: db.Connection, seed: int
) -> None:
    """Some events are stored first (some quarantined, without rows); then one batch
    holds retries of some of them and the rest, shuffled. The normalized tables end
    exactly as when every event is written on its own, one by one, in the batch's order:
    the retries' rows are left out before each key's row is chosen
    (`apply_writes_skipping`), whatever the order and the ties."""
    rng = random.Random(seed)
    bodies = mixed_events(rng, 14)
    stored = rng.sample(bodies, rng.randint(1, 7))
    failed = {b for b in stored if rng.random() < 0.5}
    retried = rng.sample(stored, rng.randint(1, len(stored)))
    batch = [b for b in bodies if b not in stored] + retried
    rng.shuffle(batch)
    now = datetime.now(UTC)

    async def store_first() -> None:
        for body in stored:
            await commit(conn, [quarantined(body) if body in failed else prepare(parse(body), now)])

    await store_first()
    new = await commit(conn, [prepare(parse(body), now) for body in batch])
    assert new == {parse(b).event_id for b in batch if b not in stored}
    together = await dump(conn)

    await reset(conn)
    await store_first()
    for body in batch:
        await commit(conn, [prepare(parse(body), now)])
    assert together == await dump(conn)


async def test_without_a_skipped_events_row_the_newest_of_the_rest_wins(
    conn: db.Connection,
) -> None:
    """Event 9 was stored quarantined; its retry, the newest, comes after events 1 and 2
    about the same order: its row is passed over, and of the rest the newest (2) wins."""
    await commit(conn, [quarantined(order_event(9, "2024-03-01T00:00:00Z", id="ord_shared"))])
    batch = [prepared_order(1, "2024-01-01T00:00:00Z", amount=1),
             prepared_order(2, "2024-02-01T00:00:00Z", amount=2),
             prepared_order(9, "2024-03-01T00:00:00Z", amount=9)]  # fmt: skip
    assert await commit(conn, batch) == {"evcus_batch_1", "evcus_batch_2"}
    assert await conn.fetchval("SELECT amount FROM orders") == 2


async def test_without_a_skipped_events_row_a_tie_goes_to_the_first_row(
    conn: db.Connection,
) -> None:
    """A redemption copies one customer twice (customer and holder, same time and event):
    written alone, the first copy wins. In a batch beside a skipped newer event about the
    same customer, it must still be the first (the passed-over rows keep arrival order)."""
    redemption = load_fixture("customer.redemption.succeeded") | {"id": "evcus_red_1"}
    redemption["created_at"] = "2024-05-01T00:00:00Z"
    redemption["data"]["customer"].update(id="cust_tie", name="customer copy")
    redemption["data"]["holder"].update(id="cust_tie", name="holder copy")
    newer = load_fixture("customer.order.paid") | {"id": "evcus_ord_1"}
    newer["created_at"] = "2024-05-02T00:00:00Z"
    newer["data"]["customer"].update(id="cust_tie", name="order copy")
    await commit(conn, [quarantined(compact_json(newer))])

    batch = [prepare(parse(compact_json(b)), datetime.now(UTC)) for b in (redemption, newer)]
    assert await commit(conn, batch) == {"evcus_red_1"}
    name = await conn.fetchval("SELECT name FROM customers WHERE id = 'cust_tie'")
    assert name == "customer copy"


async def test_an_event_stored_by_a_concurrent_batch_is_a_duplicate_not_an_error(
    database_url: str, conn: db.Connection
) -> None:
    """Two writers (replicas) hold the same event: the second waits on the first's
    uncommitted row, is undone when the first commits, and stores only the rest."""
    first = await db.connect(database_url)
    try:
        tx = first.transaction()
        await tx.start()
        assert await commit(first, [prepared_order(1, "2024-01-01T10:00:00Z")]) == {"evcus_batch_1"}
        second = asyncio.create_task(
            commit(
                conn,
                [
                    prepared_order(1, "2024-01-01T10:00:00Z"),
                    prepared_order(2, "2024-01-02T10:00:00Z"),
                ],
            )
        )
        await waiting_on_a_lock(first, conn.get_server_pid())
        await tx.commit()
        assert await second == {"evcus_batch_2"}
    finally:
        await first.close()
    assert await conn.fetchval("SELECT count(*) FROM events") == 2
    assert await conn.fetchval("SELECT last_event_id FROM orders") == "evcus_batch_2"


@asynccontextmanager
async def writer_behind_a_lock(
    database_url: str, **options: Any
) -> AsyncIterator[tuple[Writer, db.Connection, Transaction]]:
    """A started one-task Writer whose batches block: another connection holds `events`
    locked, in the transaction yielded (roll it back to release them). On the way out the
    writer finishes what it took (the blocked batches commit) and stops."""
    pool = await db.create_pool(database_url, max_size=2)
    writer = Writer(pool, concurrency=1, **options)
    try:
        writer.start()
        async with events_locked(database_url) as (blocker, lock):
            yield writer, blocker, lock
    finally:
        await writer.stop()  # it holds a connection of the pool until then
        await pool.close()


@asynccontextmanager
async def events_locked(database_url: str) -> AsyncIterator[tuple[db.Connection, Transaction]]:
    """Another connection holding `events` locked, in the transaction yielded (roll it
    back to release the lock; closing the connection on the way out releases it too)."""
    blocker = await db.connect(database_url)
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        yield blocker, lock
    finally:
        await blocker.close()


async def waiting_on_a_lock(observer: db.Connection, pid: int | None = None) -> None:
    """Until backend `pid` (any other backend of this database, by default) waits on a lock."""
    for _ in range(1000):
        # Inside a transaction, pg_stat_activity is read once and then kept (the observer
        # may hold the lock in one): drop that snapshot before each look.
        await observer.execute("SELECT pg_stat_clear_snapshot()")
        waits = await observer.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database() AND pid = coalesce($1, pid)",
            pid,
        )
        if waits:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on a lock")


async def test_a_batch_holding_one_event_id_twice_is_refused_not_lost(
    conn: db.Connection,
) -> None:
    """The writer drops a batch's repeats before it commits; a caller that did not gets an
    error, never the answer "stored" for events that were not."""
    twice = [prepared_order(1, "2024-01-01T10:00:00Z"), prepared_order(1, "2024-01-01T10:00:00Z")]
    with pytest.raises(ValueError, match="same event id twice"):
        await commit(conn, twice)
    # Postgres' own guard, for a caller that skips that check: an error, not "all new".
    writes = Writes.combine(p.writes for p in twice).steps()
    with pytest.raises(asyncpg.RaiseError, match="same event id twice"):
        await conn.fetchval(INGEST, _event_rows(twice), writes)
    assert await conn.fetchval("SELECT count(*) FROM events") == 0


def customer_event(n: int, customer_id: str, at: str) -> bytes:
    activity = load_fixture("customer.created") | {"id": f"evcus_locks_{n}", "created_at": at}
    activity["data"]["customer"].update(id=customer_id, name=f"Customer as of event {n}")
    return compact_json(activity)


def order_by_customer(n: int, customer_id: str, at: str) -> bytes:
    """An order event: its customer is a copy, its order a full object."""
    activity = load_fixture("customer.order.paid") | {"id": f"evcus_locks_{n}", "created_at": at}
    activity["data"]["customer"]["id"] = customer_id
    activity["data"]["order"].update(id=f"ord_locks_{n}", customer_id=customer_id)
    activity["data"]["order"].pop("customer", None)
    return compact_json(activity)


def prepared(*bodies: bytes) -> list[Prepared]:
    return [prepare(parse(body), datetime.now(UTC)) for body in bodies]


async def race_behind_a_held_customer(
    database_url: str,
    held: str,
    first: list[Prepared],
    second: list[Prepared],
    deadlock_timeouts: tuple[str, str] = ("1s", "1s"),
) -> list[set[str] | BaseException]:
    """Batch `first` is committed while another session holds customer `held`, and waits
    for it; then batch `second` starts and waits too; then the holder lets go. Returns
    what each commit returned or raised. `deadlock_timeouts`: the two batches' sessions'
    (the one whose time is up first checks for a deadlock, and is undone if one formed)."""
    holder = await db.connect(database_url)
    sessions = [
        await db.connect(database_url, server_settings={"deadlock_timeout": timeout})
        for timeout in deadlock_timeouts
    ]
    try:
        holder_tx = holder.transaction()
        await holder_tx.start()
        await holder.execute("SELECT FROM customers WHERE id = $1 FOR UPDATE", held)
        tasks = []
        for session, batch in zip(sessions, (first, second), strict=True):
            tasks.append(asyncio.create_task(commit(session, batch)))
            await waiting_on_a_lock(holder, session.get_server_pid())
        await holder_tx.rollback()
        async with asyncio.timeout(30):
            return list(await asyncio.gather(*tasks, return_exceptions=True))
    finally:
        for c in (holder, *sessions):
            await c.close()


async def test_concurrent_batches_take_row_locks_in_one_order(
    database_url: str, conn: db.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers' batches about the same two customers, arrived in opposite orders,
    must not deadlock: each statement takes its rows' locks in key order. (A deadlock
    costs both batches Postgres' deadlock_timeout, 1 s by default, before one fails.)

    A third session holds customer B; batch 1 (B, then A as they came) queues behind it,
    then batch 2 (A, then B) starts. Were rows locked as they came, batch 1 would get B
    when the holder lets go and wait for A, which batch 2 took while batch 1 waited."""
    # One attempt: a deadlock must fail the test, not be written again (`commit`).
    monkeypatch.setattr(db, "TRANSIENT_ATTEMPTS", 1)
    stored = prepared(
        customer_event(1, "cust_a", "2026-01-01T00:00:01Z"),
        customer_event(2, "cust_b", "2026-01-01T00:00:02Z"),
    )
    await commit(conn, stored)
    results = await race_behind_a_held_customer(
        database_url,
        "cust_b",
        prepared(
            customer_event(3, "cust_b", "2026-02-01T00:00:03Z"),
            customer_event(4, "cust_a", "2026-02-01T00:00:04Z"),
        ),
        prepared(
            customer_event(5, "cust_a", "2026-02-01T00:00:05Z"),
            customer_event(6, "cust_b", "2026-02-01T00:00:06Z"),
        ),
    )
    assert results == [{"evcus_locks_3", "evcus_locks_4"}, {"evcus_locks_5", "evcus_locks_6"}]
    rows = await conn.fetch("SELECT id, name FROM customers")
    names = {r["id"]: r["name"] for r in rows}
    assert names == {"cust_a": "Customer as of event 5", "cust_b": "Customer as of event 6"}


def redemption_with_copies(n: int, customer_id: str, order_id: str, at: str) -> bytes:
    """A redemption: its customer and its order are copies."""
    activity = load_fixture("customer.redemption.succeeded")
    activity |= {"id": f"evcus_locks_{n}", "created_at": at}
    activity["data"]["customer"].update(id=customer_id, name=f"Copy as of event {n}")
    activity["data"]["order"].update(id=order_id, customer_id=customer_id, status=f"copy {n}")
    return compact_json(activity)


@pytest.mark.parametrize("seed", range(12))
async def test_full_objects_and_copies_in_one_batch_end_as_one_by_one(
    conn: db.Connection, seed: int
) -> None:
    """A full object and its copies share one statement per table (LOCK_ORDER): a batch
    holding both must still leave what committing its events one by one leaves (a full
    row replaces a copy and is never replaced by one, newer or older), whatever the
    arrival order, over a stored copy."""
    full_order = order_by_customer(0, "cust_x", "2026-03-01T00:00:00Z").replace(
        b"ord_locks_0", b"ord_x"
    )
    stored_copy = redemption_with_copies(9, "cust_x", "ord_x", "2025-11-01T00:00:00Z")
    events = [
        full_order,  # the order in full, and a copy of the customer
        customer_event(1, "cust_x", "2026-02-01T00:00:00Z"),  # the customer in full
        redemption_with_copies(2, "cust_x", "ord_x", "2026-04-01T00:00:00Z"),  # newest
        customer_event(3, "cust_x", "2026-01-01T00:00:00Z"),  # in full, older
        redemption_with_copies(4, "cust_x", "ord_x", "2025-12-01T00:00:00Z"),  # oldest
    ]
    for body in (stored_copy, *events):
        await commit(conn, prepared(body))
    one_by_one = await dump(conn)
    await reset(conn)
    random.Random(seed).shuffle(events)
    await commit(conn, prepared(stored_copy))
    await commit(conn, prepared(*events))
    assert await dump(conn) == one_by_one
    customer = await fetch_one(conn, "SELECT name, is_stub FROM customers WHERE id = 'cust_x'")
    assert customer == {"name": "Customer as of event 1", "is_stub": False}
    row = await fetch_one(conn, "SELECT last_event_id, is_stub FROM orders WHERE id = 'ord_x'")
    assert row == {"last_event_id": "evcus_locks_0", "is_stub": False}


async def test_a_full_object_and_a_copy_in_opposite_orders_do_not_deadlock(
    database_url: str, conn: db.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two batches reach a full customer and a copy of it in opposite orders: batch 1
    writes A in full, then copies of AB and B; batch 2 B in full, then a copy of A. A
    session holding AB lets batch 2 start while batch 1 waits. Had full rows and copies
    their own statements, batch 2 would take B, wait for A, and batch 1 (once AB is let
    go) wait for B: a deadlock. With one statement per table, locked in key order,
    batch 2 waits for batch 1 instead."""
    # One attempt: a deadlock must fail the test, not be written again (`commit`).
    monkeypatch.setattr(db, "TRANSIENT_ATTEMPTS", 1)
    await commit(
        conn,
        prepared(
            *(
                customer_event(n, c, f"2026-01-01T00:00:0{n}Z")
                for n, c in ((1, "cust_a"), (2, "cust_ab"), (3, "cust_b"))
            )
        ),
    )
    results = await race_behind_a_held_customer(
        database_url,
        "cust_ab",
        prepared(
            customer_event(4, "cust_a", "2026-02-01T00:00:04Z"),
            order_by_customer(5, "cust_ab", "2026-02-01T00:00:05Z"),
            order_by_customer(6, "cust_b", "2026-02-01T00:00:06Z"),
        ),
        prepared(
            customer_event(7, "cust_b", "2026-02-01T00:00:07Z"),
            order_by_customer(8, "cust_a", "2026-02-01T00:00:08Z"),
        ),
        # Were there a cycle, batch 2 would find it once the holder lets go (3 s of slack).
        deadlock_timeouts=("60s", "3s"),
    )
    assert results == [
        {"evcus_locks_4", "evcus_locks_5", "evcus_locks_6"},
        {"evcus_locks_7", "evcus_locks_8"},
    ]
    rows = await conn.fetch("SELECT id, name FROM customers WHERE NOT is_stub")
    assert {r["id"]: r["name"] for r in rows} == {
        "cust_a": "Customer as of event 4",
        "cust_ab": "Customer as of event 2",
        "cust_b": "Customer as of event 7",
    }
    assert await conn.fetchval("SELECT count(*) FROM orders") == 3


@asynccontextmanager
async def undone_by_a_deadlock(
    database_url: str,
    write: Callable[[db.Connection, list[Prepared]], Coroutine[Any, Any, set[str]]],
) -> AsyncIterator[tuple[asyncio.Task[set[str]], Transaction]]:
    """Customers A and B stored; another session holds B, then `write` writes events 3 (A)
    and 4 (B) on a session of its own, then the other session takes A: a cycle. The
    write's session checks for a deadlock 3 s after it starts to wait, after the cycle
    closed, so it is the side Postgres undoes. Yields the write's task and the other
    session's transaction, which holds both rows until it is rolled back."""
    other = await db.connect(database_url, server_settings={"deadlock_timeout": "60s"})
    session = await db.connect(database_url, server_settings={"deadlock_timeout": "3s"})
    try:
        stored = prepared(customer_event(1, "cust_a", "2026-01-01T00:00:01Z"),
                          customer_event(2, "cust_b", "2026-01-01T00:00:02Z"))  # fmt: skip
        await commit(session, stored)
        other_tx = other.transaction()
        await other_tx.start()
        await other.execute("SELECT FROM customers WHERE id = 'cust_b' FOR UPDATE")
        batch = prepared(customer_event(3, "cust_a", "2026-02-01T00:00:03Z"),
                         customer_event(4, "cust_b", "2026-02-01T00:00:04Z"))  # fmt: skip
        writing: asyncio.Task[set[str]] = asyncio.create_task(write(session, batch))
        await waiting_on_a_lock(other, session.get_server_pid())  # holds B, waits for A
        async with asyncio.timeout(30):
            # Granted only once the write is undone: the deadlock happened.
            await other.execute("SELECT FROM customers WHERE id = 'cust_a' FOR UPDATE")
        yield writing, other_tx
    finally:
        await other.close()
        await session.close()


async def test_a_batch_undone_by_a_deadlock_is_written_again(
    database_url: str, conn: db.Connection
) -> None:
    """Two batches never wait on each other in a cycle, but another session can close one
    with a batch (an operator's transaction locking rows in its own order): Postgres then
    undoes one side. When that is the batch, `commit` writes it again, whole."""
    async with undone_by_a_deadlock(database_url, commit) as (batch, other_tx):
        assert not batch.done()  # written again, waiting for the other session's locks
        await other_tx.rollback()
        async with asyncio.timeout(30):
            assert await batch == {"evcus_locks_3", "evcus_locks_4"}
    rows = await conn.fetch("SELECT id, name FROM customers")
    assert {r["id"]: r["name"] for r in rows} == {
        "cust_a": "Customer as of event 3",
        "cust_b": "Customer as of event 4",
    }


async def test_a_batch_undone_by_deadlocks_attempt_after_attempt_gets_503_not_split(
    database_url: str, conn: db.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every attempt is undone (one attempt here), the batch's deliveries fail with
    the deadlock, answered 503 and retried by Voucherify: the writer does not split it into
    single events, which could be undone too and be quarantined though nothing is wrong
    with them."""
    monkeypatch.setattr(db, "TRANSIENT_ATTEMPTS", 1)
    writer = Writer(pool=None)  # type: ignore[arg-type]  # _commit uses the connection given

    async def write(conn: db.Connection, batch: list[Prepared]) -> set[str]:
        new, _ = await writer._commit(batch, conn)
        return new

    async with undone_by_a_deadlock(database_url, write) as (writing, other_tx):
        await other_tx.rollback()
        with pytest.raises(asyncpg.exceptions.DeadlockDetectedError):
            async with asyncio.timeout(30):
                await writing
    assert await conn.fetchval("SELECT count(*) FROM events WHERE id LIKE 'evcus_locks_%'") == 2


LZ4_AVAILABLE = (
    "SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
)


async def test_the_session_settings_survive_the_pools_reset(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncpg's pool runs RESET ALL on a connection given back; the pool's reset sets
    `PREFER_LZ4` again. Checked on any server (the embedded one has no lz4) with a
    setting every Postgres has, added to it."""
    marker = "SET application_name = 'vh_session_check';"
    monkeypatch.setattr(db, "PREFER_LZ4", db.PREFER_LZ4 + marker)
    pool = await db.create_pool(database_url, max_size=1)
    try:
        lz4 = await pool.fetchval(LZ4_AVAILABLE)
        for _ in range(2):  # the second time, on the connection given back
            async with pool.acquire() as pooled:
                assert await pooled.fetchval("SHOW application_name") == "vh_session_check"
                method = await pooled.fetchval("SHOW default_toast_compression")
                assert method == ("lz4" if lz4 else "pglz")
    finally:
        await pool.close()


async def test_a_large_payload_is_stored_compressed_with_lz4_where_the_server_has_it(
    client: httpx.AsyncClient, conn: db.Connection
) -> None:
    """The service's sessions compress with lz4 when the server was built with it
    (`db.PREFER_LZ4`), pglz otherwise: a body past Postgres' ~2 KB compression threshold
    is stored so, and reads back as it came."""
    lz4 = await conn.fetchval(LZ4_AVAILABLE)
    assert await conn.fetchval("SHOW default_toast_compression") == ("lz4" if lz4 else "pglz")
    activity = load_fixture("customer.order.paid") | {"id": "evcus_large"}
    activity["data"]["customer"]["metadata"] = {f"key_{n}": "value " * 20 for n in range(40)}
    body = compact_json(activity)
    assert len(body) > 4000
    answer = await client.post(WEBHOOK, content=body, headers=signed(body))
    assert answer.status_code == 202
    row = await conn.fetchrow(
        "SELECT pg_column_compression(payload) AS method, payload FROM events"
        " WHERE id = 'evcus_large'"
    )
    assert row is not None
    assert row["method"] == ("lz4" if lz4 else "pglz")
    assert row["payload"] == activity
    metadata = await conn.fetchval(
        "SELECT pg_column_compression(metadata) FROM customers WHERE id = $1",
        activity["data"]["customer"]["id"],
    )
    assert metadata == ("lz4" if lz4 else "pglz")
