"""customer.holder.assignment.{created,deleted}: who holds a voucher, in which role."""

from __future__ import annotations

from service.events._base import Activity, EventData
from service.events._blocks import Campaign, Holder, Voucher


class HolderEvent(EventData):
    holder: Holder | None = None
    voucher: Voucher | None = None
    campaign: Campaign | None = None


class HolderActivity(Activity):
    data: HolderEvent


class HolderAssignmentCreated(HolderActivity, tag="customer.holder.assignment.created"): ...


class HolderAssignmentDeleted(HolderActivity, tag="customer.holder.assignment.deleted"): ...


EVENTS = (
    HolderAssignmentCreated,
    HolderAssignmentDeleted,
)
