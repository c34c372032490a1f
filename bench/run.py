"""`make bench`: the service against the HTTP ceiling and a naive receiver, same run.

    python bench/run.py [--events 250000] [--connections 64]

Starts Postgres (DATABASE_URL's server, or the embedded one), then each receiver in turn
with uvicorn, one worker, on loopback, and drives it with wrk replaying the same pre-signed
deliveries (all families, 1-3 KB bodies, ~5% retries; bench/events.py):

- ceiling: a no-op Starlette endpoint (bench/baselines.py: noop);
- baseline: verify + one INSERT per request (bench/baselines.py: naive);
- grouped raw: verify + group commit of the raw events only, nothing normalized
  (bench/baselines.py: grouped): what the service would reach without normalizing;
- service: `python -m service serve` with its production settings, signatures on;
- service at 80%: the service again, sent 80% of its measured throughput on a fixed
  schedule by an open-loop generator (bench/openloop.py), latency counted from when
  each request was due.

Prints events/s, p50/p99 latency, errors, server RSS and CPU for each (also as CPU per
request, with this machine's Postgres' CPU per request beside it), the ratios, and
checks that every acknowledged event is in the database exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import openloop  # noqa: E402
from bench._db import (  # noqa: E402
    drop_database,
    fresh_database,
    postgres_cpu_seconds,
    server_url,
    wal_sample,
)
from bench.events import events  # noqa: E402
from bench.neighbors import Neighbors, bursts  # noqa: E402
from service import db  # noqa: E402
from tests.conftest import free_port  # noqa: E402

SECRET = "bench-webhook-secret"
# Where each reference receiver stores (the service: `events`).
TABLES = {"bench.baselines:naive": "naive_events", "bench.baselines:grouped": "grouped_events"}
WRK_THREADS = 1


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    rss_mb: float
    cpu_percent: float
    # CPU per answered request, in us: the server's processes, and this machine's
    # Postgres (None when it runs elsewhere). The latter is approximate: it sums every
    # Postgres process alive at both samples, so one that exits during the run (an
    # autovacuum worker) is left out, and another cluster on this machine counted in.
    server_us: float = 0.0
    postgres_us: float | None = None
    # WAL written per answered request, and checkpoints begun during the run (of them,
    # requested: set off by max_wal_size filling up rather than by checkpoint_timeout).
    wal_bytes: float = 0.0
    checkpoints: int = 0
    checkpoints_requested: int = 0
    # CPU the machine spent outside the run's processes and Postgres, in % of one core.
    others_percent: float = 0.0
    acked: int = 0
    stored: int | None = None


def write_requests(directory: Path, count: int, seed: int) -> str:
    """Request files for wrk (one per thread), and a small separate set for warming up.

    They are on disk before this returns: the kernel writes a file's pages back up to
    30 s after they were written (vm.dirty_expire_centisecs), and 500 MB written back
    during a later run, on the disk Postgres syncs its WAL to, stalled its commits: p99
    127-240 ms at 5,200/s open loop, against 9-23 ms with the files synced first."""
    prefix = str(directory / f"requests-{seed}")
    for name, n_events, event_seed in ((prefix, count, seed), (prefix + "-warmup", 2000,
                                                                1000 + seed)):  # fmt: skip
        files = [open(f"{name}.{n}", "w") for n in range(WRK_THREADS)]  # noqa: SIM115
        try:
            for i, (_, signature, body) in enumerate(events(n_events, SECRET, event_seed)):
                files[i % WRK_THREADS].write(f"{signature}\t{body.decode()}\n")
            for f in files:
                f.flush()
                os.fsync(f.fileno())
        finally:
            for f in files:
                f.close()
    return prefix


def remove_requests(prefix: str) -> None:
    """A run's request and acked files, once it is counted (250,000 deliveries are
    ~500 MB a run)."""
    directory, name = os.path.split(prefix)
    for path in Path(directory).glob(f"{name}.*"):
        path.unlink()
    for path in Path(directory).glob(f"{name}-warmup.*"):
        path.unlink()


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{command} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{command} did not listen on {port}")


def run_wrk(port: int, prefix: str, connections: int, seconds: int) -> str:
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency",
               "-s", str(ROOT / "bench" / "webhooks.lua"), f"http://127.0.0.1:{port}",
               "--", prefix]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(output: str) -> tuple[float, float, float, int, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    # Anchored: the thread stats' "+/- Stdev" column also ends in "%" (e.g. "71.99%").
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors_match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", output)  # fmt: skip
    errors = int(errors_match.group(1)) if errors_match else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return rps, p50, p99, errors, requests


def _tree_cpu(process: psutil.Process) -> float:
    procs = [process, *process.children(recursive=True)]
    return float(sum(p.cpu_times().user + p.cpu_times().system for p in procs))


def _tree_rss_mb(process: psutil.Process) -> float:
    """RSS of the largest worker (the target is per worker)."""
    procs = [process, *process.children(recursive=True)]
    return float(max(p.memory_info().rss for p in procs)) / 2**20


def measure(name: str, command: list[str], env: dict[str, str], server: str, prefix: str,
            connections: int, seconds: int, rate: float | None = None) -> Result:  # fmt: skip
    """Start the receiver, warm it up, then drive it: wrk with `connections` (closed
    loop, as fast as it answers), or the open-loop generator at `rate` per second."""
    port = free_port()
    process = start([*command, "--port", str(port)], env, port)
    receiver = psutil.Process(process.pid)
    try:
        # Warm up (imports, pool, JIT-free but cache-hot paths) before measuring.
        run_wrk(port, prefix + "-warmup", 8, 2)
        cpu_before, pg_before = _tree_cpu(receiver), postgres_cpu_seconds()
        wal_before = wal_sample(server)
        neighbors = Neighbors()
        neighbors.start()
        started = time.monotonic()
        if rate is None:
            output = run_wrk(port, prefix, connections, seconds)
        else:
            # uvloop, as the server uses: the generator shares the two cores with it.
            paced = uvloop.run(openloop.run(port, openloop.load_requests(prefix, port), rate,
                                            seconds))  # fmt: skip
        wall = time.monotonic() - started
        cpu_after, pg_after = _tree_cpu(receiver), postgres_cpu_seconds()
        others = neighbors.stop(cpu_after - cpu_before + pg_after - pg_before)
        wal_after = wal_sample(server)
        rss = _tree_rss_mb(receiver)
    finally:
        process.terminate()
        process.wait(timeout=30)
    cpu = (cpu_after - cpu_before) / wall * 100

    def per_request(seconds: float, requests: int) -> float:
        return seconds / max(requests, 1) * 1e6

    pg_seconds = pg_after - pg_before if pg_after else None
    checkpoints = wal_after.checkpoints - wal_before.checkpoints
    requested = wal_after.requested - wal_before.requested
    if rate is None:
        rps, p50, p99, errors, requests = parse_wrk(output)
    else:
        Path(f"{prefix}.0.acked").write_text("\n".join(paced.acked))
        rps, p50, p99, errors, requests = (paced.achieved, paced.p50_ms, paced.p99_ms,
                                           paced.errors, paced.sent)  # fmt: skip
        stalls = ", ".join(f"{_clock(at)} ({median:.0f} ms)" for at, median in paced.stalls)
        print(f"  {name}: {paced.stalled_windows} of {seconds * 4} quarter-seconds with a "
              f"median over 100 ms (worst {paced.worst_window_ms:.0f} ms)"
              + (f", from (UTC) {stalls}" if stalls else ""))  # fmt: skip
    if others.started:
        print(f"  {name}: processes others started during the run (UTC): "
              + ", ".join(f"{_clock(at)} {command}" + (f" (+{n - 1})" if n > 1 else "")
                          for at, command, n in bursts(others.started)))  # fmt: skip
    if checkpoints:
        print(f"  {name}: {checkpoints} checkpoint(s) began during the run, {requested} of "
              "them set off by max_wal_size")  # fmt: skip
    pg_us = None if pg_seconds is None else per_request(pg_seconds, requests)
    return Result(name, rps, p50, p99, errors, requests, rss, cpu,
                  per_request(cpu_after - cpu_before, requests), pg_us,
                  (wal_after.wal_bytes - wal_before.wal_bytes) / max(requests, 1), checkpoints,
                  requested, others.other_cpu_seconds / wall * 100)  # fmt: skip


def _clock(at: float) -> str:
    """A time.time() as UTC HH:MM:SS.ss, as Postgres' log and journald print it."""
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at * 100) % 100:02d}"


def half_ceiling_budget(ceiling: Result, service: Result, cores: int) -> str:
    """Whether half the ceiling is within this machine's reach for the service: the CPU
    per event two cores allow at that rate (for everything on them, load generator
    included) against what the service's process and Postgres used per event."""
    rate = ceiling.rps / 2
    budget = cores * 1e6 / rate
    used = service.server_us + (service.postgres_us or 0.0)
    who = "the service and Postgres use" if service.postgres_us is not None else "the service uses"
    verdict = "within" if used < budget else "over"
    return (f"CPU per event at half the ceiling ({rate:,.0f}/s): {cores} cores allow "
            f"{budget:.0f} us for everything on them; {who} {used:.0f} us ({verdict} it "
            "before the load generator's share)")  # fmt: skip


def check_stored(url: str, prefix: str, result: Result, table: str = "events") -> None:
    acked: set[str] = set()
    for n in range(WRK_THREADS):
        path = Path(f"{prefix}.{n}.acked")
        if path.exists():
            acked.update(line for line in path.read_text().splitlines() if line)

    async def count() -> int:
        conn = await db.connect(url)
        try:
            stored: int = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE id = ANY($1::text[])", list(acked)
            )
            return stored
        finally:
            await conn.close()

    result.acked = len(acked)
    result.stored = asyncio.run(count())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--events",
        type=int,
        # More than the fastest storing receiver sends in a run (grouped raw: ~170,000 in
        # 10 s): past the end wrk starts again, and retries of stored events are cheaper.
        default=250000,
        help="distinct deliveries prepared per run (more than a run sends)",
    )
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="also measure the service with this many worker processes",
    )
    parser.add_argument(
        "--paced",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[0.5, 0.65, 0.8],
        help="shares of the service's throughput to send open loop (default 0.5,0.65,0.8)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (make bench does it)")

    server = server_url()
    python = sys.executable
    uvicorn = [python, "-m", "uvicorn", "--no-access-log", "--log-level", "warning",
               "--host", "127.0.0.1"]  # fmt: skip
    base_env = {**os.environ, "VOUCHERIFY_WEBHOOK_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        print(f"generating {args.events:,} signed deliveries per run ...", flush=True)
        runs = [
            ("ceiling (no-op Starlette)", [*uvicorn, "bench.baselines:noop"], False),
            ("baseline (1 INSERT/request)", [*uvicorn, "--factory", "bench.baselines:naive"],
             True),
            ("grouped raw (no normalizing)",
             [*uvicorn, "--factory", "bench.baselines:grouped"], True),
            ("service", [python, "-m", "service", "serve"], True),
        ]  # fmt: skip
        if args.workers > 1:
            runs.append((f"service ({args.workers} workers)",
                         [python, "-m", "service", "serve", "--workers", str(args.workers)],
                         True))  # fmt: skip
        for seed, (name, command, stores) in enumerate(runs, start=1):
            prefix = write_requests(directory, args.events, seed)
            url = fresh_database(server) if stores else None
            env = {**base_env, **({"DATABASE_URL": url} if url else {})}
            try:
                result = measure(name, command, env, server, prefix, args.connections,
                                 args.seconds)  # fmt: skip
                if url:
                    check_stored(url, prefix, result, TABLES.get(command[-1], "events"))
            finally:
                remove_requests(prefix)
                if url:
                    drop_database(server, url)
            results.append(result)
            if stores and result.requests > args.events:
                print(f"  note: {name} sent {result.requests:,} requests for {args.events:,} "
                      "prepared deliveries; the rest were retries (raise --events)")  # fmt: skip
            print(f"  {name}: {result.rps:,.0f} events/s", flush=True)

        service = results[3]
        # The target is 80%; lower shares show where the tail starts to grow.
        for seed, share in enumerate(args.paced, start=9):
            prefix = write_requests(directory, args.events, seed=seed)
            url = fresh_database(server)
            try:
                result = measure(f"service at {share:.0%}, open loop",
                                 [python, "-m", "service", "serve"],
                                 {**base_env, "DATABASE_URL": url}, server, prefix,
                                 args.connections,
                                 args.seconds, rate=service.rps * share)  # fmt: skip
                check_stored(url, prefix, result)
            finally:
                remove_requests(prefix)
                drop_database(server, url)
            results.append(result)

    # us/ev: CPU per request of the server's processes and of Postgres (when local);
    # WAL B/ev and ckpt: the server's WAL per request and checkpoints begun (cluster-wide);
    # other %: CPU the machine spent on everything else, in % of one core.
    print(f"\n{'receiver':<29}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'RSS MB':>8}{'CPU %':>7}{'us/ev':>7}{'pg us/ev':>9}{'WAL B/ev':>9}{'ckpt':>5}"
          f"{'other %':>8}{'acked':>9}{'stored':>9}")  # fmt: skip
    for r in results:
        stored = "-" if r.stored is None else f"{r.stored:,}"
        acked = "-" if r.stored is None else f"{r.acked:,}"
        pg_us = "-" if r.postgres_us is None else f"{r.postgres_us:.0f}"
        print(f"{r.name:<29}{r.rps:>10,.0f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{r.errors:>8}"
              f"{r.rss_mb:>8.0f}{r.cpu_percent:>7.0f}{r.server_us:>7.0f}{pg_us:>9}"
              f"{r.wal_bytes:>9,.0f}{r.checkpoints:>5}{r.others_percent:>8.0f}{acked:>9}"
              f"{stored:>9}")  # fmt: skip
    ceiling, baseline, grouped, service = results[:4]
    print(f"\nservice/ceiling  {service.rps / ceiling.rps:.2f}  (target >= 0.50)")
    print(half_ceiling_budget(ceiling, service, psutil.cpu_count() or 1))
    print(f"service/baseline {service.rps / baseline.rps:.2f}  (target >= 2.5)")
    print(f"grouped raw/ceiling {grouped.rps / ceiling.rps:.2f}, grouped raw/baseline "
          f"{grouped.rps / baseline.rps:.2f}, service/grouped raw {service.rps / grouped.rps:.2f}"
          " (what normalizing every event in its transaction costs)")  # fmt: skip
    for share, paced in zip(args.paced, results[-len(args.paced) :], strict=True):
        target = "  (target < 50 ms)" if share == 0.8 else ""  # the target is at 80%
        print(f"p99 at {share:.0%} of service throughput ({paced.rps:,.0f}/s answered of "
              f"{service.rps * share:,.0f}/s asked, open loop): "
              f"{paced.p99_ms:.1f} ms{target}")  # fmt: skip
    lost = [r.name for r in results if r.stored is not None and r.stored != r.acked]
    print("every acknowledged event stored exactly once:", "yes" if not lost else f"NO: {lost}")


if __name__ == "__main__":
    main()
