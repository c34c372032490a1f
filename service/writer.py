"""Writes one delivery: the raw event and its family's rows, in one transaction.

The raw row is inserted with `ON CONFLICT (id) DO NOTHING`, so retries, both wire shapes and
concurrent deliveries of one event id leave exactly one row: a racing second insert waits
for the first to commit, then does nothing and reports a duplicate. When the handler fails,
the whole transaction rolls back and the raw event is stored again, quarantined with the
error, so nothing accepted is lost and `replay` can retry it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

import msgspec

from service.db import UNAVAILABLE, Connection, Pool
from service.handlers import Meta, handler_failure
from service.intake import Incoming
from service.routing import UNKNOWN, normalize

INSERT_EVENT = """
INSERT INTO events (id, type, family, status, error, payload,
                    created_at, group_id, customer_id, delivery_id, project_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO NOTHING
RETURNING received_at
"""


class Outcome(enum.StrEnum):
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Written:
    outcome: Outcome
    error: str | None = None


async def write(pool: Pool, incoming: Incoming) -> Written:
    """Store `incoming`; raises one of `service.db.UNAVAILABLE` when Postgres cannot.

    The caller bounds the time (`asyncio.timeout`), so the answer beats Voucherify's 10 s.
    """
    async with pool.acquire() as conn:
        if incoming.event is None:
            # Unknown type or undecodable data: store raw, nothing to normalize.
            async with conn.transaction():
                inserted = await _insert(conn, incoming, incoming.decode_error)
            if inserted is None:
                return Written(Outcome.DUPLICATE)
            if incoming.family == UNKNOWN:
                return Written(Outcome.UNKNOWN)
            return Written(Outcome.QUARANTINED, incoming.decode_error)

        try:
            async with conn.transaction():
                received_at = await _insert(conn, incoming, None)
                if received_at is None:
                    return Written(Outcome.DUPLICATE)
                at = incoming.created_at or received_at
                meta = Meta(event_id=incoming.event_id, at=at, type=incoming.type)
                await normalize(conn, meta, incoming.family, incoming.event)
        except UNAVAILABLE:
            raise
        except Exception as exc:  # noqa: BLE001 - any handler failure quarantines the event
            error = handler_failure(incoming.family, exc)
            async with conn.transaction():
                inserted = await _insert(conn, incoming, error)
            if inserted is None:
                return Written(Outcome.DUPLICATE)
            return Written(Outcome.QUARANTINED, error)
        return Written(Outcome.PROCESSED)


async def _insert(conn: Connection, incoming: Incoming, error: str | None) -> datetime | None:
    """Insert the raw event; its received_at, or None when the id is already stored."""
    received_at: datetime | None = await conn.fetchval(
        INSERT_EVENT,
        incoming.event_id,
        incoming.type,
        incoming.family,
        "quarantined" if error else "processed",
        error,
        msgspec.Raw(incoming.body),
        incoming.created_at,
        incoming.group_id,
        incoming.customer_id,
        incoming.delivery_id,
        incoming.project_id,
    )
    return received_at
