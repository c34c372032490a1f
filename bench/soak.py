"""Server memory over a long run: one million distinct events through one service process.

    python bench/soak.py [--events 1000000] [--round 100000] [--connections 64]

Starts the service (`python -m service serve`, production settings, signatures on) on a
fresh database, then sends rounds of distinct signed deliveries with wrk (each event once:
bench/webhooks.lua with "once"; ~5% of each round's deliveries are retries of its own
events). After every round it prints the events stored so far, the rate and the server's
RSS; at the end, the RSS growth from the first round to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._db import drop_database, fresh_database, server_url  # noqa: E402
from bench.run import SECRET, start, write_requests  # noqa: E402
from service import db  # noqa: E402
from tests.conftest import free_port  # noqa: E402


async def stored(url: str) -> int:
    conn = await db.connect(url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM events")
        return count
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="deliveries in all")
    parser.add_argument("--round", type=int, default=100_000, help="deliveries per round")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()

    server = server_url()
    url = fresh_database(server)
    port = free_port()
    env = {**os.environ, "VOUCHERIFY_WEBHOOK_SECRET": SECRET, "DATABASE_URL": url}
    process = start([sys.executable, "-m", "service", "serve", "--port", str(port)], env, port)
    worker = psutil.Process(process.pid)
    rss: list[float] = []
    started = time.monotonic()
    try:
        print(f"{'round':>5}{'sent':>11}{'stored':>11}{'events/s':>10}{'RSS MB':>8}", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            sent = 0
            for n in range(1, -(-args.events // args.round) + 1):
                size = min(args.round, args.events - sent)
                prefix = write_requests(Path(tmp), size, seed=100 + n)
                began = time.monotonic()
                with subprocess.Popen(
                    ["wrk", "-t1", f"-c{args.connections}", "-d3600s", "--timeout", "30s",
                     "-s", str(ROOT / "bench" / "webhooks.lua"), f"http://127.0.0.1:{port}",
                     "--", prefix, "once"],
                    stdout=subprocess.DEVNULL,
                ) as wrk:  # fmt: skip
                    while not Path(f"{prefix}.0.done").exists():
                        if wrk.poll() is not None:
                            raise SystemExit(f"wrk exited with {wrk.returncode}")
                        time.sleep(0.2)
                    seconds = time.monotonic() - began
                    time.sleep(2)  # the last deliveries in flight get their answers
                    wrk.terminate()
                sent += size
                rss.append(worker.memory_info().rss / 2**20)
                total = asyncio.run(stored(url))
                print(f"{n:>5}{sent:>11,}{total:>11,}{size / seconds:>10,.0f}{rss[-1]:>8.0f}",
                      flush=True)  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=30)
        drop_database(server, url)
    minutes = (time.monotonic() - started) / 60
    growth = rss[-1] - rss[0]
    print(f"\n{sent:,} deliveries in {minutes:.1f} min; RSS after the first round "
          f"{rss[0]:.0f} MB, after the last {rss[-1]:.0f} MB ({growth:+.0f} MB); "
          f"target < 150 MB per worker: {'PASS' if max(rss) < 150 else 'FAIL'}")  # fmt: skip


if __name__ == "__main__":
    main()
