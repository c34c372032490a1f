"""The two reference receivers the benchmark measures the service against.

- `noop`: a Starlette endpoint that reads the body and answers 202: the HTTP ceiling of
  this machine, server and load generator.
- `naive`: what a receiver written in an afternoon does: verify the signature, one
  INSERT per request on a pooled connection, answer. Same event table, same body.

Run with uvicorn: `uvicorn bench.baselines:noop` / `uvicorn --factory bench.baselines:naive`.
"""

from __future__ import annotations

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
