"""Order family: customer.order.* -> `orders` and `order_items`."""

from __future__ import annotations

from service.db import Connection
from service.events.orders import OrderActivity
from service.handlers import require


async def handle(conn: Connection, event: OrderActivity) -> None:
    """Check what the normalized rows are keyed on; the rows themselves come with issue 3."""
    require(event.data.order and event.data.order.id, "data.order.id")
