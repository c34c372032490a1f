"""Order family: customer.order.* -> `orders` and `order_items`."""

from __future__ import annotations

from service.db import Connection
from service.events.orders import OrderActivity
from service.handlers import Meta, _entities, require


async def handle(conn: Connection, meta: Meta, event: OrderActivity) -> None:
    data = event.data
    order = require(data.order, "data.order")
    require(order.id, "data.order.id")
    customer_id = await _entities.customer_stub(conn, meta, data.customer)
    await _entities.customer_stub(conn, meta, data.referrer)
    await _entities.order(conn, meta, order, full=True, customer_id=customer_id)
