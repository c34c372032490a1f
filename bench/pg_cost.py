"""Benchmark: what a batch commit costs Postgres per event, by part and by statement.

    python bench/pg_cost.py [--events 12000] [--batch 32] [--rounds 3]

Prepares the benchmark deliveries (bench/events.py) as the writer does, then commits them
on one connection in batches, sequentially, and reads the CPU of that connection's
Postgres backend (/proc: Postgres must run on this machine). Each measure runs in a fresh
database, and the rounds alternate them, so a change of the machine's phase shows as
spread rather than as a difference:

- `full`: `writer.commit`'s one call per batch (raw events and normalized rows);
- `raw`: only the raw events (`writer.INSERT_EVENTS`);
- `rows`: only the normalized rows (`pg_temp.apply_writes`);
- `by statement` (last): each statement of a batch as its own call, in one transaction
  per batch, so each is charged its own CPU (the calls' own overhead included: the sum
  is above `rows`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._db import drop_database, fresh_database, server_url  # noqa: E402
from bench.events import events  # noqa: E402
from bench.run import SECRET  # noqa: E402
from service import db  # noqa: E402
from service.handlers import APPLY_WRITES, Writes  # noqa: E402
from service.intake import parse  # noqa: E402
from service.writer import INGEST, INSERT_EVENTS, Prepared, _event_rows, prepare  # noqa: E402

Batches = list[list[Prepared]]
T = TypeVar("T")


def backend_cpu_seconds(pid: int) -> float:
    """User + system CPU of one local process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepared_batches(count: int, size: int) -> tuple[Batches, int]:
    """The deliveries once each (retries dropped, as the writer answers them), prepared."""
    seen: set[str] = set()
    prepared = []
    received = datetime.now(UTC)
    for _, _, body in events(count, SECRET):
        incoming = parse(body)
        if incoming.event_id not in seen:
            seen.add(incoming.event_id)
            prepared.append(prepare(incoming, received))
    return [prepared[n : n + size] for n in range(0, len(prepared), size)], len(prepared)


async def full(conn: db.Connection, batch: list[Prepared]) -> None:
    writes = Writes.combine(p.writes for p in batch)
    await conn.fetchval(INGEST, _event_rows(batch), writes.steps(passed_over=True))


async def raw(conn: db.Connection, batch: list[Prepared]) -> None:
    await conn.fetch(INSERT_EVENTS, _event_rows(batch))


async def rows(conn: db.Connection, batch: list[Prepared]) -> None:
    await conn.execute(APPLY_WRITES, Writes.combine(p.writes for p in batch).steps())


MEASURES: dict[str, Callable[[db.Connection, list[Prepared]], Awaitable[None]]] = {
    "full": full,
    "raw": raw,
    "rows": rows,
}


def in_fresh_database(server: str, run: Callable[[str], Coroutine[Any, Any, T]]) -> T:
    url = fresh_database(server)
    try:
        return asyncio.run(run(url))
    finally:
        drop_database(server, url)


async def measure(url: str, batches: Batches, write: str) -> float:
    """Postgres CPU seconds for committing every batch with `write`."""
    conn = await db.connect(url)
    try:
        pid = conn.get_server_pid()
        started = backend_cpu_seconds(pid)
        for batch in batches:
            await MEASURES[write](conn, batch)
        return backend_cpu_seconds(pid) - started
    finally:
        await conn.close()


async def by_statement(url: str, batches: Batches) -> dict[str, float]:
    """Postgres CPU seconds per statement, each of a batch's statements its own call."""
    spent: dict[str, float] = defaultdict(float)
    conn = await db.connect(url)
    try:
        pid = conn.get_server_pid()
        for batch in batches:
            async with conn.transaction():
                await conn.fetch(INSERT_EVENTS, _event_rows(batch))
                for step in Writes.combine(p.writes for p in batch).steps():
                    before = backend_cpu_seconds(pid)
                    await conn.execute(APPLY_WRITES, [step])
                    spent[step[0]] += backend_cpu_seconds(pid) - before
    finally:
        await conn.close()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=12000, help="deliveries prepared")
    parser.add_argument("--batch", type=int, default=32, help="events per commit")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    args = parser.parse_args()
    server = server_url()
    batches, count = prepared_batches(args.events, args.batch)
    print(f"{count:,} events in batches of {args.batch}, Postgres CPU per event (us):")
    results: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.rounds):
        for write in MEASURES:
            seconds = in_fresh_database(server, partial(measure, batches=batches, write=write))
            results[write].append(seconds / count * 1e6)
    for write, figures in results.items():
        runs = " / ".join(f"{us:.0f}" for us in figures)
        print(f"  {write:5s} {statistics.median(figures):5.0f}   ({runs})")
    spent = in_fresh_database(server, partial(by_statement, batches=batches))
    print("by statement (each its own call):")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {name:32s} {seconds / count * 1e6:5.1f}")


if __name__ == "__main__":
    main()
