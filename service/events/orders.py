"""customer.order.{created,updated,processing,paid,fulfilled,canceled}: order lifecycle."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import Customer, Order, Redemption


class OrderEvent(EventData):
    order: Order | None = None
    referrer: Customer | None = None
    redemption: Redemption | None = None


class OrderActivity(Activity):
    data: OrderEvent


class OrderCreated(OrderActivity, tag="customer.order.created"): ...


class OrderUpdated(OrderActivity, tag="customer.order.updated"): ...


class OrderProcessing(OrderActivity, tag="customer.order.processing"): ...


class OrderPaid(OrderActivity, tag="customer.order.paid"): ...


class OrderFulfilled(OrderActivity, tag="customer.order.fulfilled"): ...


class OrderCanceled(OrderActivity, tag="customer.order.canceled"): ...


EVENTS = (
    OrderCreated,
    OrderUpdated,
    OrderProcessing,
    OrderPaid,
    OrderFulfilled,
    OrderCanceled,
)
