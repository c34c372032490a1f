"""Validation family: customer.validation.{succeeded,failed} -> `validations`."""

from __future__ import annotations

from service.db import Connection
from service.events.times import parse_time
from service.events.validations import ValidationActivity
from service.handlers import Meta, _entities, require
from service.handlers._sql import upsert

UPSERT_VALIDATION = upsert(
    "validations",
    ("id", "session_id", "status", "result", "customer_id", "created_at",
     "last_event_at", "last_event_id"),
)  # fmt: skip


async def handle(conn: Connection, meta: Meta, event: ValidationActivity) -> None:
    validation = require(event.data.validation, "data.validation")
    validation_id = require(validation.id, "data.validation.id")
    customer_id = await _entities.customer_stub(conn, meta, event.data.customer)
    await conn.execute(
        UPSERT_VALIDATION,
        validation_id,
        validation.session_id,
        validation.status,
        meta.type.rsplit(".", 1)[1],  # customer.validation.<succeeded|failed>
        validation.customer_id or customer_id,
        parse_time(validation.created_at) or meta.at,
        meta.at,
        meta.event_id,
    )
