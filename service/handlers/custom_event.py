"""Custom event family: customer.custom_event -> one row per tracked event."""

from __future__ import annotations

from service.db import Connection
from service.events.custom_events import CustomEventSent
from service.handlers import require


async def handle(conn: Connection, event: CustomEventSent) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.event and event.data.event.type, "data.event.type")
