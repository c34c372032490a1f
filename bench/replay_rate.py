"""Benchmark: `python -m service replay` over N stored events (target: 10,000 events/s).

    python bench/replay_rate.py [--events 100000]

Stores N benchmark deliveries (bench/events.py: all families, 1-3 KB) straight into
`events` of a fresh database, then times a full replay, which decodes every payload and
rebuilds every normalized table in one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._db import drop_database, fresh_database, postgres_cpu_seconds, server_url  # noqa: E402
from bench.events import events  # noqa: E402
from bench.run import SECRET  # noqa: E402
from service import db  # noqa: E402
from service.intake import parse  # noqa: E402
from service.replay import replay  # noqa: E402

INSERT = """
INSERT INTO events (id, type, family, status, payload, created_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[],
                     $6::timestamptz[])
"""


async def run(url: str, count: int) -> None:
    conn = await db.connect(url)
    try:
        rows: list[tuple[object, ...]] = []
        seen: set[str] = set()
        for event_id, _, body in events(count, SECRET, seed=3):
            if event_id in seen:
                continue  # retries: stored once
            seen.add(event_id)
            i = parse(body)
            rows.append((i.event_id, i.type, i.family, "processed", msgspec.Raw(body),
                         i.created_at))  # fmt: skip
        for start in range(0, len(rows), 5000):
            chunk = rows[start : start + 5000]
            await conn.execute(INSERT, *map(list, zip(*chunk, strict=True)))
        stored = await conn.fetchval("SELECT count(*) FROM events")
        started, cpu, pg_cpu = time.perf_counter(), time.process_time(), postgres_cpu_seconds()
        report = await replay(conn)
        seconds = time.perf_counter() - started
        cpu, pg_cpu = time.process_time() - cpu, postgres_cpu_seconds() - pg_cpu
    finally:
        await conn.close()
    print(
        f"replayed {report.events:,} of {stored:,} stored events in {seconds:.1f} s: "
        f"{report.events / seconds:,.0f} events/s ({report.quarantined} quarantined); "
        f"target 10,000 events/s: {'PASS' if report.events / seconds >= 10000 else 'FAIL'}\n"
        f"CPU during the replay: this process {cpu:.1f} s, Postgres {pg_cpu:.1f} s "
        f"(wall {seconds:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100000)
    args = parser.parse_args()
    server = server_url()
    url = fresh_database(server)
    try:
        asyncio.run(run(url, args.events))
    finally:
        drop_database(server, url)


if __name__ == "__main__":
    main()
