"""The reference receivers the benchmark measures the service against.

- `noop`: a Starlette endpoint that reads the body and answers 202: the HTTP ceiling of
  this machine, server and load generator.
- `naive`: what a receiver written in an afternoon does: verify the signature, one
  INSERT per request on a pooled connection, answer. Same event table, same body.
- `grouped`: the issue's group-commit sketch: verify, then one INSERT per batch of
  concurrent requests, raw events only, nothing normalized. Between it and the service
  lies the cost of normalizing every event in the same transaction.

Run with uvicorn: `uvicorn bench.baselines:noop`, `uvicorn --factory bench.baselines:naive`
or `uvicorn --factory bench.baselines:grouped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service import signing
from service.config import Settings

ACCEPTED = b'{"outcome":"accepted"}'


async def _noop(request: Request) -> Response:
    await request.body()
    return Response(ACCEPTED, 202, media_type="application/json")


noop = Starlette(routes=[Route("/webhooks/voucherify", _noop, methods=["POST"])])


class _Head(msgspec.Struct):
    id: str
    type: str


_HEAD = msgspec.json.Decoder(_Head)

# Its own table: one INSERT per request, the simplest thing that stores each event once.
TABLE = """
CREATE TABLE IF NOT EXISTS naive_events (
    id text PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = """
INSERT INTO naive_events (id, type, payload) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING
"""


def naive() -> Starlette:
    secret = os.environ["VOUCHERIFY_WEBHOOK_SECRET"]
    pool: asyncpg.Pool | None = None

    async def receive(request: Request) -> Response:
        body = await request.body()
        if not signing.verify([secret], body, request.headers.get("x-voucherify-signature")):
            return Response(status_code=401)
        head = _HEAD.decode(body)
        assert pool is not None
        await pool.execute(INSERT, head.id, head.type, body.decode())
        return Response(
            b'{"event_id":"' + head.id.encode() + b'"}', 202, media_type="application/json"
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=10, max_size=10)
        await pool.execute(TABLE)
        yield
        await pool.close()

    return Starlette(routes=[Route("/webhooks/voucherify", receive, methods=["POST"])],
                     lifespan=lifespan)  # fmt: skip


GROUPED_TABLE = TABLE.replace("naive_events", "grouped_events")
# A batch's rows as three arrays: one statement, however many events.
GROUPED_INSERT = """
INSERT INTO grouped_events (id, type, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[]) ON CONFLICT (id) DO NOTHING
"""
# As many batches in flight as the service's default (one: a batch commits while the next
# one gathers). Until the closing session of 2026-11-30 both used two.
GROUPED_WRITERS = Settings().writer_concurrency
GROUPED_MAX_BATCH = 500


def grouped() -> Starlette:
    secret = os.environ["VOUCHERIFY_WEBHOOK_SECRET"]
    queue: asyncio.Queue[tuple[str, str, str, asyncio.Future[None]]] = asyncio.Queue()

    async def write(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            while True:
                items = [await queue.get()]
                while not queue.empty() and len(items) < GROUPED_MAX_BATCH:
                    items.append(queue.get_nowait())
                ids, types, payloads, _ = zip(*items, strict=True)
                try:
                    await conn.execute(GROUPED_INSERT, list(ids), list(types), list(payloads))
                except Exception as exc:  # noqa: BLE001 - every waiting request gets it
                    for *_, future in items:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for *_, future in items:
                        if not future.done():
                            future.set_result(None)

    async def receive(request: Request) -> Response:
        body = await request.body()
        if not signing.verify([secret], body, request.headers.get("x-voucherify-signature")):
            return Response(status_code=401)
        head = _HEAD.decode(body)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.put_nowait((head.id, head.type, body.decode(), future))
        try:
            await future
        except Exception:  # noqa: BLE001 - Voucherify retries a 503
            return Response(status_code=503)
        return Response(
            b'{"event_id":"' + head.id.encode() + b'"}', 202, media_type="application/json"
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(
            os.environ["DATABASE_URL"], min_size=GROUPED_WRITERS, max_size=GROUPED_WRITERS
        )
        await pool.execute(GROUPED_TABLE)
        writers = [asyncio.create_task(write(pool)) for _ in range(GROUPED_WRITERS)]
        yield
        for task in writers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()

    return Starlette(routes=[Route("/webhooks/voucherify", receive, methods=["POST"])],
                     lifespan=lifespan)  # fmt: skip
