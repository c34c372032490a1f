"""An open-loop load generator: requests start on a fixed schedule, whatever the server does.

wrk is closed-loop: each connection waits for its answer before the next request, so a
slow server is sent less and its tail latency hides (coordinated omission). Here request
i is due at start + i / rate; it goes out on an idle keep-alive connection (64 are open
before the first is due; a new one is opened when none is idle, up to a cap), and its
latency is measured from when it was due, not from when it could be sent. That is what
"p99 at 80% of throughput" means.

Reads the same request files as bench/webhooks.lua (`<signature>\\t<body>` lines) and,
like it, writes the event ids answered 2xx to `<prefix>.0.acked`.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

WEBHOOK = "/webhooks/voucherify"
KEEP_ALIVE_SECONDS = 4.0
WARM_CONNECTIONS = 64  # open before the first request is due (bench/run.py's wrk uses 64)


@dataclass
class OpenLoopResult:
    rate: float  # what was asked
    sent: int
    achieved: float  # answers per second over the run
    p50_ms: float
    p99_ms: float
    errors: int
    acked: list[str] = field(default_factory=list)
    # Quarter-second windows (by when requests were due) whose median latency was over
    # 100 ms, and the worst window's median: stalls, as opposed to a uniformly slow server.
    stalled_windows: int = 0
    worst_window_ms: float = 0.0


class _Answer(msgspec.Struct):
    event_id: str | None = None


_ANSWER = msgspec.json.Decoder(_Answer)


def load_requests(prefix: str, port: int) -> list[bytes]:
    requests = []
    for line in Path(f"{prefix}.0").read_text().splitlines():
        signature, body = line.split("\t", 1)
        data = body.encode()
        head = (f"POST {WEBHOOK} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
                f"content-type: application/json\r\nx-voucherify-signature: {signature}\r\n"
                f"content-length: {len(data)}\r\n\r\n")  # fmt: skip
        requests.append(head.encode() + data)
    return requests


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    body = await reader.readexactly(length)
    if b"connection: close" in head.lower():
        writer.close()
        raise ConnectionResetError("server closed the connection")
    return status, body


async def run(port: int, requests: list[bytes], rate: float, seconds: float,
              max_connections: int = 512) -> OpenLoopResult:  # fmt: skip
    """Send `requests` at `rate` per second for `seconds`, with this process's garbage
    collector off meanwhile: a full collection over everything it holds pauses it for tens
    of ms (82.6 ms measured), and every request due meanwhile would count that pause as
    the server's latency (wrk, in C, has no such pauses)."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return await _run(port, requests, rate, seconds, max_connections)
    finally:
        gc.enable()
        gc.unfreeze()


async def _run(port: int, requests: list[bytes], rate: float, seconds: float,
               max_connections: int) -> OpenLoopResult:  # fmt: skip
    # (reader, writer, when it went idle): connections idle past the server's keep-alive
    # timeout (uvicorn: 5 s) are closed by it, so they are not reused.
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
    opened = 0
    available = asyncio.Condition()
    latencies: list[float] = []
    windows: dict[int, list[float]] = {}
    acked: list[str] = []
    errors = 0

    async def connection() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        nonlocal opened
        async with available:
            while not idle and opened >= max_connections:
                await available.wait()
            while idle:
                reader, writer, since = idle.pop()
                if time.perf_counter() - since < KEEP_ALIVE_SECONDS:
                    return reader, writer
                writer.close()
                opened -= 1
            opened += 1
        return await asyncio.open_connection("127.0.0.1", port)

    async def release(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        nonlocal opened
        async with available:
            if conn is None:
                opened -= 1
            else:
                idle.append((*conn, time.perf_counter()))
            available.notify()

    async def one(request: bytes, due: float) -> None:
        nonlocal errors
        conn = await connection()
        try:
            status, body = await _exchange(*conn, request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn[1].close()
            await release(None)
            return
        latency = time.perf_counter() - due
        latencies.append(latency)
        windows.setdefault(int((due - start) * 4), []).append(latency)
        await release(conn)
        if 200 <= status < 300:
            event_id = _ANSWER.decode(body).event_id
            if event_id:
                acked.append(event_id)
        else:
            errors += 1

    # A sender that has been sending keeps connections open: start with as many as wrk
    # uses, so the first requests do not also time the generator's connects (the first
    # quarter-second's p99 was 43-108 ms at 5,600/s, the rest mostly under 20).
    for _ in range(WARM_CONNECTIONS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        idle.append((reader, writer, time.perf_counter()))
        opened += 1

    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(requests[i % len(requests)], due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    elapsed = time.perf_counter() - start
    for _, writer, _ in idle:
        writer.close()
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    medians = [statistics.median(w) for w in windows.values()]
    stalled, worst = sum(m > 0.1 for m in medians), max(medians, default=0.0) * 1000
    return OpenLoopResult(rate, total, len(latencies) / elapsed, cuts[49] * 1000,
                          cuts[98] * 1000, errors, acked, stalled, worst)  # fmt: skip
