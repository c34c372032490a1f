"""Validation family: customer.validation.{succeeded,failed} -> `validations`."""

from __future__ import annotations

from service.events.times import parse_time
from service.events.validations import ValidationActivity
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import upsert

UPSERT_VALIDATION = upsert(
    "validations",
    ("id", "session_id", "status", "result", "customer_id", "created_at",
     "last_event_at", "last_event_id"),
)  # fmt: skip


def handle(w: Writes, meta: Meta, event: ValidationActivity) -> None:
    validation = require(event.data.validation, "data.validation")
    validation_id = require(validation.id, "data.validation.id")
    customer_id = _entities.customer_stub(w, meta, event.data.customer)
    w.add(
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
