"""Order family: customer.order.* -> `orders` and `order_items`."""

from __future__ import annotations

from service.events.orders import OrderActivity
from service.handlers import Meta, Writes, _entities, require


def handle(w: Writes, meta: Meta, event: OrderActivity) -> None:
    data = event.data
    order = require(data.order, "data.order")
    require(order.id, "data.order.id")
    customer_id = _entities.customer_stub(w, meta, data.customer)
    # The order's referrer where the order leaves out `referrer_id`, as its customer.
    referrer_id = _entities.customer_stub(w, meta, data.referrer)
    _entities.order(w, meta, order, full=True, customer_id=customer_id, referrer_id=referrer_id)
