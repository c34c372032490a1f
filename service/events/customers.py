"""customer.{confirmed,created,updated,deleted}: the customer profile itself."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import Block


class UnconfirmedCustomer(Block):
    id: str | None = None


class CustomerEvent(EventData):
    unconfirmed_customer: UnconfirmedCustomer | None = None


class CustomerActivity(Activity):
    data: CustomerEvent


class CustomerConfirmed(CustomerActivity, tag="customer.confirmed"): ...


class CustomerCreated(CustomerActivity, tag="customer.created"): ...


class CustomerUpdated(CustomerActivity, tag="customer.updated"): ...


class CustomerDeleted(CustomerActivity, tag="customer.deleted"): ...


EVENTS = (
    CustomerConfirmed,
    CustomerCreated,
    CustomerUpdated,
    CustomerDeleted,
)
