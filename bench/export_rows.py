"""Benchmark: export N orders to CSV, the service's way against a naive baseline.

    python bench/export_rows.py [--rows 1000000]

Fills a fresh database (DATABASE_URL's server, or the embedded Postgres) with N orders,
then, each in its own process so peak memory is its own:
- service: the export job exactly as the API runs it (server-side cursor, CSV chunks
  stored in Postgres);
- baseline: fetch every row at once, then write the CSV (what a quick script does).
Prints rows/s and peak RSS for both, and checks the service against the target
(peak RSS under 200 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._db import drop_database, fresh_database, server_url  # noqa: E402
from service import db  # noqa: E402
from service.exports.jobs import ExportRunner, create  # noqa: E402
from service.exports.query import select, validate  # noqa: E402

FIELDS = ["id", "source_id", "created_at", "status", "amount", "total_amount",
          "customer_id", "metadata"]  # fmt: skip
TARGET_RSS_MB = 200

FILL = """
INSERT INTO orders (id, source_id, created_at, updated_at, status, amount, total_amount,
                    customer_id, metadata, is_stub, last_event_at, last_event_id)
SELECT 'ord_' || n, 'S-' || n, now() - n * interval '1 second', now(),
       (ARRAY['CREATED', 'PAID', 'FULFILLED', 'CANCELED'])[1 + n % 4],
       1000 + n % 5000, 900 + n % 5000, 'cust_' || (n % 50000),
       jsonb_build_object('store', 'store_' || (n % 20), 'channel', 'web'),
       false, now(), 'bench'
FROM generate_series(1, $1) AS n
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run_service(url: str) -> dict[str, Any]:
    pool = await db.create_pool(url, max_size=4)
    try:
        async with pool.acquire() as conn:
            row = await create(conn, "order", {"fields": FIELDS}, channel="CLI", app_id=None,
                               token_ttl=timedelta(hours=1))  # fmt: skip
        started = time.perf_counter()
        await ExportRunner(pool).run_once()
        seconds = time.perf_counter() - started
        async with pool.acquire() as conn:
            done = await conn.fetchrow("SELECT status, row_count, byte_count FROM exports "
                                       "WHERE id = $1", row["id"])  # fmt: skip
    finally:
        await pool.close()
    if done is None or done["status"] != "DONE":
        raise SystemExit(f"export did not finish: {done}")
    return {"rows": done["row_count"], "bytes": done["byte_count"], "seconds": seconds}


async def run_baseline(url: str) -> dict[str, Any]:
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    conn = await db.connect(url)
    try:
        started = time.perf_counter()
        query, args, headers = await select(conn, validate("order", {"fields": FIELDS}))
        records = await conn.fetch(query, *args)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows(records)
        size = len(buffer.getvalue().encode())
        seconds = time.perf_counter() - started
    finally:
        await conn.close()
    return {"rows": len(records), "bytes": size, "seconds": seconds}


def child(mode: str, url: str) -> None:
    result = asyncio.run(run_service(url) if mode == "service" else run_baseline(url))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(mode: str, url: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--url", url],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["service", "baseline"])
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url)
        return

    server = server_url()
    url = fresh_database(server)
    try:

        async def fill() -> None:
            conn = await db.connect(url)
            try:
                await conn.execute(FILL, args.rows)
                await conn.execute("ANALYZE orders")
            finally:
                await conn.close()

        started = time.perf_counter()
        asyncio.run(fill())
        print(f"filled {args.rows:,} orders in {time.perf_counter() - started:.1f} s")
        results = {mode: measure(mode, url) for mode in ("service", "baseline")}
    finally:
        drop_database(server, url)

    print(f"\n{'export of ' + format(args.rows, ',') + ' orders':<34}{'rows/s':>12}"
          f"{'MB/s':>8}{'peak RSS MB':>13}")  # fmt: skip
    for mode, r in results.items():
        label = "service (cursor -> chunks)" if mode == "service" else "baseline (fetch all)"
        print(f"{label:<34}{r['rows'] / r['seconds']:>12,.0f}"
              f"{r['bytes'] / r['seconds'] / 1e6:>8.1f}{r['peak_rss_mb']:>13.0f}")  # fmt: skip
    service, baseline = results["service"], results["baseline"]
    speed = (service["rows"] / service["seconds"]) / (baseline["rows"] / baseline["seconds"])
    memory = service["peak_rss_mb"] / baseline["peak_rss_mb"]
    print(f"\nservice/baseline: rows/s x{speed:.2f}, peak RSS x{memory:.2f}")
    verdict = "PASS" if service["peak_rss_mb"] < TARGET_RSS_MB else "FAIL"
    print(f"target: peak RSS under {TARGET_RSS_MB} MB for {args.rows:,} rows: {verdict}")


if __name__ == "__main__":
    main()
