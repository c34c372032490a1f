"""Customer family: customer.{confirmed,created,updated,deleted} -> `customers`."""

from __future__ import annotations

from service.db import Connection
from service.events.customers import CustomerActivity
from service.handlers import require


async def handle(conn: Connection, event: CustomerActivity) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.customer and event.data.customer.id, "data.customer.id")
