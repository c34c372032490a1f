"""Customer family: customer.{confirmed,created,updated,deleted} -> `customers`."""

from __future__ import annotations

from service.events.customers import CustomerActivity, CustomerDeleted
from service.handlers import Meta, Writes, _entities, require


def handle(w: Writes, meta: Meta, event: CustomerActivity) -> None:
    customer = require(event.data.customer, "data.customer")
    customer_id = require(customer.id, "data.customer.id")
    _entities.full_customer(w, meta, customer, customer_id)
    if isinstance(event, CustomerDeleted):
        _entities.mark_customer_deleted(w, meta, customer_id)
        if meta.redact_deleted:
            _entities.redact_customer(w, meta, customer_id)
