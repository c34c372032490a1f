"""Customer family: customer.{confirmed,created,updated,deleted} -> `customers`."""

from __future__ import annotations

from service.db import Connection
from service.events.customers import CustomerActivity, CustomerDeleted
from service.handlers import Meta, _entities, require


async def handle(conn: Connection, meta: Meta, event: CustomerActivity) -> None:
    customer = require(event.data.customer, "data.customer")
    customer_id = require(customer.id, "data.customer.id")
    await _entities.full_customer(conn, meta, customer, customer_id)
    if isinstance(event, CustomerDeleted):
        await _entities.mark_customer_deleted(conn, meta, customer_id)
