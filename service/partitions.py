"""Monthly partitions of `events`: keep them ready, and drop whole old months.

`maintain_event_partitions()` (migration 0005) creates the current month and three more
and moves strays out of the default partition; `serve` runs it at start and hourly.
`python -m service retention --keep-months N` detaches and drops months older than N;
`event_ids` keeps their ids, so late retries of dropped events are still duplicates.
"""

from __future__ import annotations

import asyncio
import re
from datetime import date

import structlog

from service.db import Connection, Pool

log = structlog.get_logger("service.partitions")

MONTHLY = re.compile(r"^events_(\d{4})_(\d{2})$")

PARTITIONS = """
SELECT c.relname AS name, pg_total_relation_size(c.oid) AS bytes
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'events'::regclass
ORDER BY c.relname
"""


async def maintain(conn: Connection) -> None:
    await conn.execute("SELECT maintain_event_partitions()")


async def keep_ready(pool: Pool, every_seconds: float = 3600) -> None:
    """Run `maintain` now and then every hour; problems are logged, never fatal."""
    while True:
        try:
            async with pool.acquire() as conn:
                await maintain(conn)
        except Exception as exc:  # noqa: BLE001 - the next round retries
            log.warning("partition maintenance failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(every_seconds)


def months_to_drop(names: list[str], today: date, keep_months: int) -> list[str]:
    """Monthly partitions entirely older than the last `keep_months` months (this one too).
    Fewer than one would drop this month's events (and with 0 or less, months to come)."""
    if keep_months < 1:
        raise ValueError(f"keep_months must be at least 1 (this month), not {keep_months}")
    index = today.year * 12 + today.month - 1 - (keep_months - 1)
    cutoff = date(index // 12, index % 12 + 1, 1)
    old = []
    for name in names:
        match = MONTHLY.match(name)
        if match and date(int(match[1]), int(match[2]), 1) < cutoff:
            old.append(name)
    return old


async def drop_old(conn: Connection, keep_months: int, *, dry_run: bool) -> list[str]:
    """Detach and drop months older than `keep_months`; returns their names."""
    rows = await conn.fetch(PARTITIONS)
    today: date = await conn.fetchval("SELECT current_date")
    old = months_to_drop([r["name"] for r in rows], today, keep_months)
    if not dry_run:
        for name in old:
            # Names come from the catalog and match events_YYYY_MM.
            await conn.execute(f"ALTER TABLE events DETACH PARTITION {name}")
            await conn.execute(f"DROP TABLE {name}")
            log.info("dropped events partition", partition=name)
    return old
