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
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

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
    # When each stalled window began (wall clock, time.time()) and its median in ms: to
    # line stalls up with what else happened then (Postgres' checkpoint log lines).
    stalls: list[tuple[float, float]] = field(default_factory=list)


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
    loop = asyncio.get_running_loop()
    total = int(rate * seconds)
    pool = _Pool(loop, port, max_connections, total)
    # A sender that has been sending keeps connections open: start with as many as wrk
    # uses, so the first requests do not also time the generator's connects (the first
    # quarter-second's p99 was 43-108 ms at 5,600/s, the rest mostly under 20).
    for _ in range(min(WARM_CONNECTIONS, max_connections)):
        await pool.open()
    pool.start = start = time.perf_counter()
    wall_start = time.time()
    sent = 0
    while sent < total:
        # Everything due by now goes out; then sleep until the next one is due.
        now = time.perf_counter()
        while sent < total and start + sent / rate <= now + 0.0005:
            pool.submit(requests[sent % len(requests)], start + sent / rate)
            sent += 1
        if sent < total:
            await asyncio.sleep(start + sent / rate - time.perf_counter())
    if total:
        await pool.finished
    elapsed = time.perf_counter() - start
    pool.close()
    latencies = pool.latencies
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    medians = {window: statistics.median(w) for window, w in sorted(pool.windows.items())}
    stalls = [(wall_start + window / 4, m * 1000) for window, m in medians.items() if m > 0.1]
    worst = max(medians.values(), default=0.0) * 1000
    return OpenLoopResult(rate, total, len(latencies) / elapsed, cuts[49] * 1000,
                          cuts[98] * 1000, pool.errors, pool.acked, len(stalls), worst,
                          stalls)  # fmt: skip


class _Pool:
    """Keep-alive connections, each with at most one request in flight: a due request goes
    out on an idle one, or a new one up to `max_connections`, or waits for the first one
    free (its latency still counts from when it was due). Protocol callbacks, no task per
    request: the generator shares the two cores with the server, and its own cost comes
    off the server's (asyncio streams and a task per request: 79 us of CPU a request,
    measured; wrk ~35). Every request is counted once, answered or failed, so `finished`
    always resolves."""

    def __init__(self, loop: asyncio.AbstractEventLoop, port: int, max_connections: int,
                 total: int) -> None:  # fmt: skip
        self.loop, self.port, self.max_connections, self.total = loop, port, max_connections, total
        self.idle: list[_Connection] = []
        self.waiting: deque[tuple[bytes, float]] = deque()
        self.opened = 0  # connecting, in use or idle: a slot is taken before connecting
        self.done = 0
        self.finished: asyncio.Future[None] = loop.create_future()
        self.start = 0.0
        self.latencies: list[float] = []
        self.windows: dict[int, list[float]] = {}
        self.acked: list[str] = []
        self.errors = 0

    async def open(self) -> None:
        """Take a slot and connect (before the start: the connection goes idle)."""
        self.opened += 1
        await self._connect()

    def submit(self, request: bytes, due: float) -> None:
        while self.idle:
            conn = self.idle.pop()
            if time.perf_counter() - conn.idle_since < KEEP_ALIVE_SECONDS:
                conn.send(request, due)
                return
            conn.transport.close()  # the server may close it any moment: not reused
        self.waiting.append((request, due))
        self._open_for_waiting()

    def _open_for_waiting(self) -> None:
        if len(self.waiting) > 0 and self.opened < self.max_connections:
            self.opened += 1  # taken now: a burst of submits cannot pass the cap
            self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        """Connect in a slot already taken: the new connection takes a waiting request or
        goes idle; if it cannot be made, the slot is given back."""
        try:
            _, conn = await self.loop.create_connection(lambda: _Connection(self), "127.0.0.1",
                                                        self.port)  # fmt: skip
        except OSError:
            self.opened -= 1
            if self.opened == 0:
                # Nothing left to send on, nothing connecting: the server is gone, and
                # every waiting request fails (else the run would wait for them for ever).
                # With connections still open, the waiting go out as those come free.
                while self.waiting:
                    self.waiting.popleft()
                    self._count(None, 0, b"")
            return
        if conn.closed:  # lost before it was handed over: `lost` gave its slot back
            return
        if self.finished.done():
            conn.transport.close()
            return
        self.free(conn)

    def free(self, conn: _Connection) -> None:
        if self.waiting:
            conn.send(*self.waiting.popleft())
        else:
            conn.idle_since = time.perf_counter()
            self.idle.append(conn)

    def answered(self, conn: _Connection, due: float, status: int, body: bytes,
                 closing: bool) -> None:  # fmt: skip
        self._count(due, status, body)
        if closing:
            conn.transport.close()
        else:
            self.free(conn)

    def lost(self, conn: _Connection) -> None:
        self.opened -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.due is not None:  # in flight: that request failed
            conn.due = None
            self._count(None, 0, b"")
        if not self.finished.done():
            self._open_for_waiting()

    def _count(self, due: float | None, status: int, body: bytes) -> None:
        if due is not None:
            latency = time.perf_counter() - due
            self.latencies.append(latency)
            self.windows.setdefault(int((due - self.start) * 4), []).append(latency)
        if 200 <= status < 300:
            try:
                event_id = _ANSWER.decode(body).event_id
            except msgspec.DecodeError:  # a 2xx no receiver here sends: counted wrong
                self.errors += 1
            else:
                if event_id:
                    self.acked.append(event_id)
        else:
            self.errors += 1
        self.done += 1
        if self.done == self.total and not self.finished.done():
            self.finished.set_result(None)

    def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()


class _Connection(asyncio.Protocol):
    """One keep-alive connection: a request out, its response parsed from what arrives."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport
        self.buffer = bytearray()
        self.due: float | None = None  # of the request in flight
        self.idle_since = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes, due: float) -> None:
        self.due = due
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self.due is None:
            return  # nothing asked: not an answer to anything
        buffer = self.buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        try:
            status = int(head.split(b" ", 2)[1])
            length = _content_length(head)
        except (IndexError, ValueError):
            self.transport.close()  # unreadable: `lost` counts the request failed
            return
        if len(buffer) < end + 4 + length:
            return
        body = bytes(buffer[end + 4 : end + 4 + length])
        del buffer[: end + 4 + length]
        due, self.due = self.due, None
        self.pool.answered(self, due, status, body, b"connection: close" in head)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.lost(self)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            return int(value)
    return 0
