"""The benchmark's own parts: a misread wrk report, or a reference receiver that did not
store what it acknowledged, would print wrong numbers silently."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from bench import openloop, pg_cost
from bench.baselines import grouped
from bench.run import Result, half_ceiling_budget, parse_wrk
from service import db
from tests.conftest import SECRET, WEBHOOK, compact_json, load_fixture, signed, start_app

# wrk 4.x's report; its thread stats' "+/- Stdev" column also ends in "%".
WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:8000
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.45ms    3.21ms  45.00ms   87.50%
    Req/Sec     5.60k   400.00     6.20k    71.99%
  Latency Distribution
     50%   11.30ms
     75%   12.00ms
     90%   14.00ms
     99%  117.70ms
  56000 requests in 10.00s, 9.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   5600.00
Transfer/sec:      0.90MB
"""


def test_wrk_percentiles_are_read_from_the_latency_distribution() -> None:
    rps, p50, p99, errors, requests = parse_wrk(WRK_REPORT)
    assert (rps, p50, p99) == (5600.0, 11.3, 117.7)
    assert (errors, requests) == (4 + 3, 56000)


async def test_the_grouped_sketch_acknowledges_only_what_it_stored(
    database_url: str, conn: db.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make bench` compares the service with this raw-only group commit: its 202s must
    mean stored, once, retries in the same batch included, and bad signatures refused."""
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", database_url)
    fixture = load_fixture("customer.order.paid")
    bodies = [compact_json(fixture | {"id": f"evcus_grouped_{n}"}) for n in range(20)]
    try:
        async with AsyncExitStack() as stack:
            client = await start_app(stack, grouped())
            answers = await asyncio.gather(
                *(client.post(WEBHOOK, content=b, headers=signed(b)) for b in bodies + bodies[:3])
            )
            forged = compact_json(fixture | {"id": "evcus_grouped_forged"})
            refused = await client.post(WEBHOOK, content=forged, headers=signed(forged, "wrong"))
        stored = await conn.fetch("SELECT id, count(*) AS n FROM grouped_events GROUP BY id")
    finally:
        # The sketch's own table is no part of the schema the other tests check.
        await conn.execute("DROP TABLE IF EXISTS grouped_events")
    assert [a.status_code for a in answers] == [202] * 23
    assert refused.status_code == 401
    assert {r["id"]: r["n"] for r in stored} == {f"evcus_grouped_{n}": 1 for n in range(20)}


def test_the_report_says_what_half_the_ceiling_leaves_per_event() -> None:
    """20,000/s ceiling on 2 cores: 10,000/s leaves 200 us of CPU per event in all."""
    ceiling = Result("ceiling", 20_000, 1, 2, 0, 200_000, 38, 90, server_us=40)
    service = Result("service", 5_000, 9, 19, 0, 50_000, 72, 60, server_us=150, postgres_us=140)
    line = half_ceiling_budget(ceiling, service, cores=2)
    assert "(10,000/s): 2 cores allow 200 us" in line
    assert "the service and Postgres use 290 us (over it" in line
    lean = Result("sketch", 10_000, 4, 16, 0, 100_000, 40, 60, server_us=80, postgres_us=40)
    assert "use 120 us (within it" in half_ceiling_budget(ceiling, lean, cores=2)


async def _answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A receiver for the generator's tests: the body is an event id; one with "slow"
    is answered after 300 ms, "fail" gets 503, "drop" has its connection closed before
    an answer, "close" after one, "garbage" gets a 202 that is not JSON."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            if b"drop" in body:
                writer.close()
                return
            if b"slow" in body:
                await asyncio.sleep(0.3)
            status = 503 if b"fail" in body else 202
            answer = b"not json" if b"garbage" in body else b'{"event_id":"' + body + b'"}'
            close = b"connection: close\r\n" if b"close" in body else b""
            writer.write(b"HTTP/1.1 %d X\r\n%scontent-length: %d\r\n\r\n"
                         % (status, close, len(answer)) + answer)  # fmt: skip
            if close:
                writer.close()
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def _requests(ids: list[str]) -> list[bytes]:
    return [b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s"
            % (len(i), i.encode()) for i in ids]  # fmt: skip


async def test_the_open_loop_generator_times_requests_from_when_they_were_due() -> None:
    """One connection, 100 requests at 100/s, the 11th answered after 300 ms: the ~25
    due meanwhile wait for it, and their latency counts that wait (timed from when they
    were sent, only the slow one would look slow: coordinated omission)."""
    server = await asyncio.start_server(_answering, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ids = [f"ev_{n}" + ("_slow" if n == 10 else "") for n in range(100)]
    async with server, asyncio.timeout(20):
        result = await openloop.run(port, _requests(ids), rate=100, seconds=1, max_connections=1)
    assert (result.sent, result.errors) == (100, 0)
    assert sorted(result.acked) == sorted(ids)
    assert result.stalled_windows >= 1  # the first quarter-second: 15 of 25 over 100 ms
    assert result.worst_window_ms > 100
    assert result.p99_ms >= 250


async def test_the_open_loop_generator_counts_refusals_and_dropped_connections() -> None:
    server = await asyncio.start_server(_answering, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    kinds = {3: "_fail", 7: "_drop", 11: "_garbage", 13: "_close"}
    ids = [f"ev_{n}" + kinds.get(n % 20, "") for n in range(100)]
    async with server, asyncio.timeout(20):
        result = await openloop.run(port, _requests(ids), rate=200, seconds=0.5,
                                    max_connections=8)  # fmt: skip
    refused = [i for i in ids if i.endswith(("_fail", "_drop", "_garbage"))]
    assert result.sent == 100
    assert result.errors == len(refused) == 15
    # An answer with "connection: close" counts: the next request gets a new connection.
    assert sorted(result.acked) == sorted(set(ids) - set(refused))
    assert result.p99_ms < 250  # nothing slow: closed connections were replaced


async def test_the_open_loop_generator_keeps_to_its_connection_cap() -> None:
    """A burst due at once, answers slow: beyond the 64 connections opened before the
    start, no more than `max_connections` in all."""
    open_now = most = 0

    async def counting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            await _answering(reader, writer)
        finally:
            open_now -= 1

    server = await asyncio.start_server(counting, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ids = [f"ev_{n}_slow" for n in range(128)]
    cap = openloop.WARM_CONNECTIONS + 4
    async with server, asyncio.timeout(20):
        # 128 requests due within 1 ms: submitted together, before any connect starts.
        result = await openloop.run(port, _requests(ids), rate=2**17, seconds=128 / 2**17,
                                    max_connections=cap)  # fmt: skip
    assert (result.sent, result.errors, len(result.acked)) == (128, 0, 128)
    assert most == cap
    assert result.p99_ms >= 550  # two rounds of 300 ms: 128 requests on 68 connections


async def test_the_open_loop_generator_ends_when_the_server_goes_away() -> None:
    """The server closes every connection and stops listening mid-run: the run still
    ends, every request counted once, answered or failed."""
    answered = 0
    writers: list[asyncio.StreamWriter] = []

    async def dying(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        writers.append(writer)
        while answered < 20:
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(int(head.lower().split(b"content-length:")[1]
                                                .split(b"\r\n")[0]))  # fmt: skip
            answer = b'{"event_id":"' + body + b'"}'
            writer.write(b"HTTP/1.1 202 X\r\ncontent-length: %d\r\n\r\n" % len(answer) + answer)
            answered += 1
        server.close()
        for w in writers:
            w.close()

    server = await asyncio.start_server(dying, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ids = [f"ev_{n}" for n in range(100)]
    async with asyncio.timeout(20):
        result = await openloop.run(port, _requests(ids), rate=200, seconds=0.5,
                                    max_connections=4)  # fmt: skip
    assert result.sent == 100
    assert len(result.acked) == 20
    assert result.errors == 80


@pytest.mark.parametrize(("write", "tables"), [("full", ("events", "customers")),
                                               ("raw", ("events",)),
                                               ("rows", ("customers",))])  # fmt: skip
async def test_the_postgres_cost_probe_measures_real_commits_of_each_part(
    database_url: str, conn: db.Connection, write: str, tables: tuple[str, ...]
) -> None:
    """`bench/pg_cost.py` charges Postgres' CPU to each part of a batch commit: each part
    must write what it names (every distinct delivery once, retries dropped) and nothing
    of the other part."""
    batches, count = pg_cost.prepared_batches(300, 32)
    ids = [p.incoming.event_id for batch in batches for p in batch]
    assert len(ids) == len(set(ids)) == count < 300  # the ~5% retries are dropped

    seconds = await pg_cost.measure(database_url, batches, write)

    assert seconds >= 0
    stored = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("events", "customers")}  # noqa: S608
    assert (stored["events"] == count) is ("events" in tables)
    assert (stored["customers"] > 0) is ("customers" in tables)
