"""Custom event family: customer.custom_event -> `custom_events`."""

from __future__ import annotations

from service.events.custom_events import CustomEventSent
from service.events.times import parse_time
from service.handlers import Meta, Writes, _entities, require
from service.handlers._sql import append

INSERT_CUSTOM_EVENT = append(
    "custom_events",
    ("event_id", "custom_event_id", "type", "customer_id", "referral_code", "loyalty_code",
     "metadata", "occurred_at"),
)  # fmt: skip


def handle(w: Writes, meta: Meta, event: CustomEventSent) -> None:
    data = event.data
    custom = require(data.event, "data.event")
    name = require(custom.type, "data.event.type")
    customer_id = _entities.customer_stub(w, meta, data.customer)
    w.add(
        INSERT_CUSTOM_EVENT,
        meta.event_id,
        custom.id,
        name,
        customer_id,
        custom.referral.code if custom.referral else None,
        custom.loyalty.code if custom.loyalty else None,
        custom.metadata,
        parse_time(custom.created_at) or meta.at,
    )
